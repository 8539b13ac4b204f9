"""``voxwire relay`` and ``voxwire transceiver``: the two tiers as separate processes.

``voxwire/cli.py`` registers them with :func:`add_relay_parser` / :func:`add_transceiver_parser` and
runs :func:`run_relay` / :func:`run_transceiver` under uvloop. Every option also reads
``VOXWIRE_<OPTION>`` from the environment (the :class:`~voxwire.cli.EnvDefaults` pattern).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from voxwire.cli import EnvDefaults, _flag, add_media_options
from voxwire.relay.core import RelayConfig
from voxwire.relay.flows import FlowTableConfig
from voxwire.relay.loop import RelaySettings, start_worker
from voxwire.wire.token import TokenKey, TokenMinter
from voxwire.wire.types import Address

__all__ = [
    "add_relay_parser",
    "add_transceiver_parser",
    "parse_addresses",
    "parse_static_transceivers",
    "parse_token_keys",
    "relay_settings",
    "run_relay",
    "run_transceiver",
]

log = logging.getLogger(__name__)


def parse_token_keys(raw: str) -> list[TokenKey]:
    """``"id:hexsecret,id:hexsecret"`` -> keys; the first one mints. ``ValueError`` names the entry
    by position, never its secret."""
    keys = []
    for i, item in enumerate(x.strip() for x in raw.split(",") if x.strip()):
        kid, sep, secret = item.partition(":")
        try:
            if not sep:
                raise ValueError
            keys.append(TokenKey(int(kid), bytes.fromhex(secret)))
        except ValueError as exc:
            detail = f": {exc}" if str(exc) and "secret" in str(exc) else ""
            raise ValueError(f"token key #{i + 1} is not 'id:hexsecret' (id 0..255, >= 16 bytes){detail}") from None
    if not keys:
        raise ValueError("no token keys: set VOXWIRE_TOKEN_KEYS='id:hexsecret[,id:hexsecret]'")
    return keys


def parse_addresses(raw: str, default_port: int | None = None) -> list[Address]:
    """``"host:port,[v6]:port"`` -> addresses (a bare host takes ``default_port``)."""
    out: list[Address] = []
    for item in (x.strip() for x in raw.split(",") if x.strip()):
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        elif item.count(":") == 1:
            host, _, port = item.partition(":")
        else:
            host, port = item, ""
        if not port and default_port is None:
            raise ValueError(f"address {item!r} needs a port")
        out.append((host, int(port) if port else int(default_port or 0)))
    return out


def parse_static_transceivers(raw: str) -> list[tuple[int, Address]]:
    """``"7=10.0.0.2:4000,8=10.0.0.3:4000"`` -> (id, address) pairs."""
    out = []
    for item in (x.strip() for x in raw.split(",") if x.strip()):
        tid, sep, addr = item.partition("=")
        if not sep:
            raise ValueError(f"static transceiver {item!r} is not 'id=host:port'")
        out.append((int(tid), parse_addresses(addr)[0]))
    return out


def _common(p: EnvDefaults) -> None:
    p.add_env_option("--token-keys", default=None, help="routing token keys 'id:hexsecret,...'; the first mints")
    p.add_env_option("--cluster", default=0, type=int, help="cluster id carried in tokens (0..255)")
    p.add_env_option("--redis-url", default=None, help="Redis for the registry and flow cache (none: static only)")
    p.add_env_option("--token-max-age", default=86400.0, type=float,
                     help="seconds a session's ufrag may open new flows (must cover the longest call)")
    p.add_env_option("--log-level", default="info", help="debug, info, warning or error")


def add_relay_parser(subparsers: Any) -> argparse.ArgumentParser:
    relay = subparsers.add_parser(
        "relay",
        help="run the UDP relay (the public address of the fleet)",
        description="Forward WebRTC datagrams between clients and transceivers, routing new flows by the "
        "routing token in the ICE ufrag.",
    )
    assert isinstance(relay, EnvDefaults)
    relay.add_env_option("--public", default="0.0.0.0:3478",
                         help="public UDP addresses, comma-separated (e.g. '0.0.0.0:3478,[::]:3478')")
    relay.add_env_option("--internal", default="127.0.0.1:0",
                         help="internal address towards transceivers; worker i binds port+i (0: any)")
    relay.add_env_option("--workers", default=1, type=int, help="worker processes sharing the port (SO_REUSEPORT)")
    relay.add_env_option("--transceivers", default="",
                         help="static transceivers 'id=host:port,...', used with or without Redis")
    relay.add_env_option("--max-flows", default=65536, type=int, help="flows per worker (the memory bound)")
    relay.add_env_option("--idle-timeout", default=60.0, type=float, help="seconds before an idle flow is removed")
    relay.add_env_option("--metrics-host", default="127.0.0.1", help="address of the Prometheus /metrics listener")
    relay.add_env_option("--metrics-port", default=None, type=int,
                         help="serve /metrics here (worker i on port+i; none: off)")
    _common(relay)
    return relay


def add_transceiver_parser(subparsers: Any) -> argparse.ArgumentParser:
    tx = subparsers.add_parser(
        "transceiver",
        help="run signaling and a transceiver behind relays",
        description="Run HTTP signaling and the WebRTC transceiver; media arrives through relays "
        "(and directly, in single-node mode).",
    )
    assert isinstance(tx, EnvDefaults)
    # The options `voxwire serve` has for signaling and sessions, under the same names and env vars.
    tx.add_env_option("--http-host", default="127.0.0.1", help="address the HTTP API listens on")
    tx.add_env_option("--http-port", default=8080, type=int, help="HTTP port")
    tx.add_env_option("--udp-host", default="127.0.0.1", help="address of the UDP socket relays send to")
    tx.add_env_option("--udp-port", default=4000, type=int, help="the one UDP port of this transceiver")
    tx.add_env_option("--advertise-address", default=None,
                      help="the relays' public addresses put in answers, comma-separated 'host:port'")
    tx.add_env_option("--agent", default="assistant", help="agent that answers calls: assistant, echo, realtime-ws")
    tx.add_env_option("--dtls-role", default="active", choices=["active", "passive"],
                      help="our a=setup when the client offers actpass")
    tx.add_env_option("--connect-timeout", default=30.0, type=float, help="seconds a call may take to connect")
    tx.add_env_option("--max-calls", default=1000, type=int, help="most concurrent calls")
    add_media_options(tx)
    tx.add_env_option("--client-secret-ttl", default=600, type=int, help="lifetime of minted client secrets, s")
    tx.add_env_option("--insecure-no-auth", default=False, type=_flag, nargs="?", const=True,
                      help="accept unauthenticated calls on a non-loopback HTTP address")
    tx.add_env_option("--transceiver-id", default=None, type=int, help="this transceiver's id (0..16777215)")
    tx.add_env_option("--relay-addresses", default="127.0.0.1",
                      help="relays allowed to send encapsulated datagrams: 'host' (any port) or 'host:port'")
    tx.add_env_option("--internal-address", default=None,
                      help="address relays reach this transceiver's UDP socket at (default: the bound one)")
    tx.add_env_option("--heartbeat", default=2.0, type=float, help="seconds between registry heartbeats")
    _common(tx)
    return tx


def relay_settings(opts: argparse.Namespace) -> RelaySettings:
    if not opts.token_keys:
        raise SystemExit("voxwire relay: no token keys: set VOXWIRE_TOKEN_KEYS='id:hexsecret[,...]'")
    try:
        keys = parse_token_keys(opts.token_keys)
        public = parse_addresses(opts.public)
        internal = parse_addresses(opts.internal, 0)[0]
        static = parse_static_transceivers(opts.transceivers)
        config = RelayConfig(
            cluster=opts.cluster,
            flows=FlowTableConfig(max_flows=opts.max_flows, idle_timeout=opts.idle_timeout),
        )
    except ValueError as exc:
        raise SystemExit(f"voxwire relay: {exc}") from None
    if opts.workers < 1:
        raise SystemExit("voxwire relay: --workers must be at least 1")
    if opts.workers > 1 and any(port == 0 for _, port in public):
        raise SystemExit("voxwire relay: several workers need a fixed public port")
    if not static and not opts.redis_url:
        raise SystemExit("voxwire relay: no transceivers: give --transceivers or --redis-url")
    return RelaySettings(public=public, internal=internal, keys=keys, config=config, redis_url=opts.redis_url,
                         static_transceivers=static, token_max_age=opts.token_max_age)


async def _serve_worker(settings: RelaySettings, index: int, metrics: Address | None = None) -> None:
    worker = await start_worker(settings, index)
    runner = await _serve_metrics(worker, (metrics[0], metrics[1] + index)) if metrics is not None else None
    print(f"voxwire relay worker {index} (pid {os.getpid()}): public {worker.public_addresses()}, "
          f"internal {worker.internal_address[0]}:{worker.internal_address[1]}"
          + (f", metrics http://{metrics[0]}:{metrics[1] + index}/metrics" if metrics is not None else ""),
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await worker.stop()


async def _serve_metrics(worker: Any, at: Address) -> Any:
    """GET /metrics for one relay worker: its flows, flow events, drops and socket errors (no
    addresses, no tokens: safe to scrape, bound to loopback by default)."""
    import prometheus_client
    from aiohttp import web

    from voxwire.observability.metrics import relay_registry

    registry = relay_registry(worker.stats)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=prometheus_client.generate_latest(registry),
                            headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, at[0], at[1]).start()
    return runner


def _worker_process(settings: RelaySettings, index: int, level: str, metrics: Address | None = None) -> None:
    import uvloop

    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        stream=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvloop.run(_serve_worker(settings, index, metrics))
    except (KeyboardInterrupt, SystemExit):
        pass


async def run_relay(opts: argparse.Namespace) -> None:
    """Worker 0 runs in this process; workers 1..N-1 in child processes sharing the public port."""
    settings = relay_settings(opts)
    metrics = (opts.metrics_host, opts.metrics_port) if opts.metrics_port is not None else None
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_worker_process, args=(settings, i, opts.log_level, metrics), daemon=True)
                for i in range(1, opts.workers)]
    for child in children:
        child.start()
    try:
        await _serve_worker(settings, 0, metrics)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            await asyncio.to_thread(child.join, 5)


async def run_transceiver(opts: argparse.Namespace) -> None:
    """Signaling + transceiver behind relays, registered in Redis when ``--redis-url`` is given."""
    from aiohttp import web

    from voxwire.agent import AGENTS
    from voxwire.aio.edge import attach_call_edge
    from voxwire.aio.load import start_load_follower
    from voxwire.aio.udp import UdpShell
    from voxwire.cli import advertised, auth_mode, freeze_startup_objects, transceiver_config
    from voxwire.relay.registry import RedisLink, TransceiverRegistration
    from voxwire.relay.transceiver_side import RelayedEndpoint, TokenUfragSource
    from voxwire.signaling.auth import Authenticator, load_api_keys
    from voxwire.signaling.http import make_app
    from voxwire.transceiver.service import Transceiver

    if opts.agent not in AGENTS:
        raise SystemExit(f"voxwire: unknown agent {opts.agent!r}; known: {', '.join(sorted(AGENTS))}")
    if opts.transceiver_id is None or not opts.token_keys:
        raise SystemExit("voxwire transceiver: --transceiver-id and --token-keys are required")
    try:
        keys = parse_token_keys(opts.token_keys)
        relays = parse_addresses(opts.relay_addresses, 0)
        minter = TokenMinter(keys[0], opts.cluster, opts.transceiver_id, os.urandom)
    except ValueError as exc:
        raise SystemExit(f"voxwire transceiver: {exc}") from None
    api_keys = load_api_keys()
    mode = auth_mode(opts, api_keys)
    loop = asyncio.get_running_loop()
    config = transceiver_config(opts, advertised(opts))
    transceiver = Transceiver(config, AGENTS[opts.agent](), wallclock_offset=time.time() - time.monotonic(),
                              ufrag_factory=TokenUfragSource(minter, time.time))
    relayed = RelayedEndpoint(transceiver.endpoint, relays, max_clients=max(4 * opts.max_calls, 1024))
    _, shell = await loop.create_datagram_endpoint(lambda: UdpShell(relayed), local_addr=(opts.udp_host, opts.udp_port))
    attach_call_edge(transceiver, shell)
    app = make_app(transceiver, shell, Authenticator(api_keys), client_secret_ttl=opts.client_secret_ttl)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    freeze_startup_objects()  # before the port opens (see voxwire serve)
    await web.TCPSite(runner, opts.http_host, opts.http_port).start()
    bound = shell.transport.get_extra_info("sockname") if shell.transport else (opts.udp_host, opts.udp_port)
    internal = parse_addresses(opts.internal_address)[0] if opts.internal_address else (bound[0], bound[1])
    registration = None
    if opts.redis_url:
        registration = TransceiverRegistration(
            RedisLink(opts.redis_url), opts.cluster, opts.transceiver_id, internal,
            load=lambda: len(transceiver.calls), interval=opts.heartbeat, ttl=3 * opts.heartbeat,
        )
    task = asyncio.create_task(registration.run()) if registration is not None else None
    load_follower = start_load_follower(transceiver.complexity)
    print(f"voxwire transceiver {opts.transceiver_id} on http://{opts.http_host}:{opts.http_port}/ "
          f"(internal udp {internal[0]}:{internal[1]}, relays {relays}, auth {mode})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        load_follower.cancel()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry for testing the two parsers before ``voxwire/cli.py`` wires them."""
    import uvloop

    parser = argparse.ArgumentParser(prog="voxwire")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=EnvDefaults)
    add_relay_parser(sub)
    add_transceiver_parser(sub)
    opts = parser.parse_args(argv)
    logging.basicConfig(level=opts.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        stream=sys.stderr)
    try:
        uvloop.run(run_relay(opts) if opts.command == "relay" else run_transceiver(opts))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
