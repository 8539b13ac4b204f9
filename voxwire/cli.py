"""``voxwire`` command line. Every option also reads ``VOXWIRE_<OPTION>`` from the environment."""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from voxwire import __version__

if TYPE_CHECKING:  # the relay mode of `serve` imports these lazily, like every other subcommand
    import socket

    from voxwire.proto.endpoint import Endpoint
    from voxwire.relay.loop import RelayWorker
    from voxwire.relay.registry import RedisLink
    from voxwire.relay.transceiver_side import RelayedEndpoint
    from voxwire.transceiver.service import TransceiverConfig
    from voxwire.wire.token import TokenKey


class EnvDefaults(argparse.ArgumentParser):
    """An ArgumentParser whose options default to ``VOXWIRE_<NAME>`` environment variables."""

    def add_env_option(
        self, flag: str, *, help: str, default: object = None, type: Callable[[str], Any] = str, **kw: Any
    ) -> None:
        env = "VOXWIRE_" + flag.lstrip("-").replace("-", "_").upper()
        raw = os.environ.get(env)
        value = type(raw) if raw is not None else default
        self.add_argument(
            flag, default=value, type=type, help=f"{help} [env {env}; default: {default}]", **kw
        )


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def auth_mode(opts: argparse.Namespace, api_keys: tuple[str, ...]) -> str:
    """'keys', 'development' (no keys, loopback only) or 'insecure'; SystemExit when refused."""
    if api_keys:
        return "keys"
    loopback = ipaddress.ip_address(opts.http_host).is_loopback
    if loopback:
        return "development"
    if opts.insecure_no_auth:
        return "insecure"
    raise SystemExit(
        f"voxwire: refusing to serve unauthenticated calls on {opts.http_host}: set VOXWIRE_API_KEYS or "
        "VOXWIRE_API_KEY_FILE, listen on loopback, or pass --insecure-no-auth"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxwire", description="Voice AI over standard WebRTC.")
    parser.add_argument("--version", action="version", version=f"voxwire {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=EnvDefaults)

    serve = sub.add_parser(
        "serve",
        help="run signaling and the transceiver (one HTTP port, one UDP port)",
        description="Run HTTP signaling and the WebRTC transceiver in one process. Every option "
        "can also be set with the environment variable named in its help.",
    )
    assert isinstance(serve, EnvDefaults)
    serve.add_env_option("--http-host", default="127.0.0.1", help="address the HTTP API listens on")
    serve.add_env_option("--http-port", default=8080, type=int, help="HTTP port")
    serve.add_env_option("--udp-host", default="127.0.0.1", help="address the shared media UDP socket binds")
    serve.add_env_option("--udp-port", default=3478, type=int, help="the one UDP port for all sessions")
    serve.add_env_option(
        "--advertise-address",
        default=None,
        help="address put in the answer's candidate (NAT 1:1, load balancer, relay); "
        "comma-separated for several; default: the --udp-host address (127.0.0.1 if it is a wildcard)",
    )
    serve.add_env_option(
        "--agent",
        default="assistant",
        help="agent that answers calls: assistant (offline speech-to-speech), echo, realtime-ws",
    )
    serve.add_env_option(
        "--dtls-role",
        default="active",
        choices=["active", "passive"],
        help="our a=setup when the client offers actpass (active: we send the ClientHello)",
    )
    serve.add_env_option("--connect-timeout", default=30.0, type=float, help="seconds a call may take to connect")
    serve.add_env_option("--max-calls", default=1000, type=int, help="most concurrent calls")
    add_media_options(serve)
    serve.add_env_option(
        "--client-secret-ttl",
        default=600,
        type=int,
        help="default lifetime of minted client secrets, seconds (10..7200)",
    )
    serve.add_env_option(
        "--insecure-no-auth",
        default=False,
        type=_flag,
        nargs="?",
        const=True,
        help="accept unauthenticated calls on a non-loopback address (API keys come from "
        "VOXWIRE_API_KEYS or the file named by VOXWIRE_API_KEY_FILE; with none, only loopback is served)",
    )
    serve.add_env_option("--log-level", default="info", help="debug, info, warning or error")
    serve.add_env_option(
        "--log-format", default="text", choices=["text", "json"], help="log lines: text (logfmt) or json, one event per line"
    )
    serve.add_env_option(
        "--trace-export", default="none", help="call traces as OTLP JSON: none, file:PATH or otlp:URL"
    )
    serve.add_env_option(
        "--public-talk-page",
        default=False,
        type=_flag,
        nargs="?",
        const=True,
        help="anyone who can load the talk page may get a client secret (rate limited), even with API keys",
    )
    # Single-machine relay mode: off unless --relay-port is given (then media arrives through the relay).
    serve.add_env_option(
        "--relay-port",
        default=None,
        type=int,
        help="run an embedded relay on this public UDP port (0: any free port) in the same process: answers "
        "advertise the relay, session ufrags carry routing tokens (none: no relay, media goes straight to "
        "--udp-port)",
    )
    serve.add_env_option(
        "--relay-host", default=None, help="address the embedded relay's public socket binds (none: the --udp-host)"
    )
    serve.add_env_option(
        "--token-keys",
        default=None,
        help="relay mode: routing token keys 'id:hexsecret,...', the first mints (none: a random key per process)",
    )
    serve.add_env_option("--transceiver-id", default=0, type=int, help="relay mode: the id tokens name (0..16777215)")
    serve.add_env_option("--cluster", default=0, type=int, help="relay mode: cluster id carried in tokens (0..255)")
    serve.add_env_option(
        "--redis-url",
        default=None,
        help="relay mode: Redis for the relay's flow cache and this transceiver's registry entry (none: no Redis)",
    )

    from voxwire.relay.cli import add_relay_parser, add_transceiver_parser  # they import EnvDefaults

    add_relay_parser(sub)
    add_transceiver_parser(sub)
    from voxwire.loadgen.cli import add_loadgen_parser

    add_loadgen_parser(sub)
    return parser


def add_media_options(parser: EnvDefaults) -> None:
    parser.add_env_option("--opus-complexity", default=5, type=int,
                          help="Opus encoder complexity 0..10 while the event loop has room")
    parser.add_env_option("--opus-complexity-under-load", default=1, type=int,
                          help="Opus encoder complexity once the event loop is 70%% busy (back above 35%%)")
    parser.add_env_option("--opus-mode", default="voip", choices=("voip", "lowdelay"),
                          help="outbound Opus: voip (speech modes with in-band FEC) or lowdelay (CELT only: "
                               "about a third of the encoding CPU and 4 ms less delay, no FEC)")


def transceiver_config(opts: argparse.Namespace, advertise: tuple[tuple[str, int], ...]) -> TransceiverConfig:
    """The transceiver's configuration from the options ``serve`` and ``transceiver`` share."""
    from voxwire.media.pipeline import MediaConfig
    from voxwire.proto.session import SessionConfig
    from voxwire.transceiver.service import TransceiverConfig

    try:
        media = MediaConfig(opus_complexity=opts.opus_complexity,
                            opus_complexity_under_load=opts.opus_complexity_under_load, opus_mode=opts.opus_mode)
    except ValueError as exc:
        raise SystemExit(f"voxwire {opts.command}: {exc}") from None
    return TransceiverConfig(
        advertised=advertise,
        preferred_setup=opts.dtls_role,
        max_calls=opts.max_calls,
        session=SessionConfig(connect_timeout=opts.connect_timeout),
        media=media,
    )


def advertised(opts: argparse.Namespace) -> tuple[tuple[str, int], ...]:
    raw = opts.advertise_address
    if not raw:
        host = opts.udp_host
        raw = "127.0.0.1" if ipaddress.ip_address(host).is_unspecified else host
    out = []
    for item in raw.split(","):
        item = item.strip()
        host, sep, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
        ipaddress.ip_address(host)  # a ValueError names the bad address
        out.append((host, int(port) if sep else opts.udp_port))
    return tuple(out)


async def serve(opts: argparse.Namespace) -> None:
    from aiohttp import web

    from voxwire.agent import AGENTS
    from voxwire.aio.edge import attach_call_edge
    from voxwire.aio.load import start_load_follower
    from voxwire.aio.udp import UdpShell, open_udp
    from voxwire.observability import tracing
    from voxwire.signaling import dashboard
    from voxwire.signaling.auth import Authenticator, load_api_keys
    from voxwire.signaling.http import make_app
    from voxwire.transceiver.service import Transceiver

    if opts.agent not in AGENTS:
        raise SystemExit(f"voxwire: unknown agent {opts.agent!r}; known: {', '.join(sorted(AGENTS))}")
    api_keys = load_api_keys()
    mode = auth_mode(opts, api_keys)
    loop = asyncio.get_running_loop()
    relay = await EmbeddedRelay.start(opts) if opts.relay_port is not None else None
    if relay is None and opts.redis_url:
        logging.getLogger(__name__).warning("voxwire serve: --redis-url is used only with --relay-port; ignored")
    try:
        config = transceiver_config(opts, relay.advertised if relay is not None else advertised(opts))
        transceiver = Transceiver(
            config,
            AGENTS[opts.agent](),
            wallclock_offset=time.time() - time.monotonic(),
            ufrag_factory=relay.ufrag_factory if relay is not None else None,
        )
        if relay is None:
            shell = await open_udp(transceiver.endpoint, opts.udp_host, opts.udp_port)
        else:
            core = relay.wrap(transceiver.endpoint, opts.max_calls)
            _, shell = await loop.create_datagram_endpoint(
                lambda: UdpShell(core), sock=relay.take_udp_socket()
            )
            relay.register(lambda: len(transceiver.calls))
        attach_call_edge(transceiver, shell)
        try:
            tracing.configure(opts.trace_export)
        except ValueError as exc:
            raise SystemExit(f"voxwire serve: {exc}") from None
        app = make_app(transceiver, shell, Authenticator(api_keys), client_secret_ttl=opts.client_secret_ttl)
        if relay is not None:
            dashboard.attach_relay(app, relay.worker)
        if opts.public_talk_page:
            dashboard.allow_public_talk_page(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, opts.http_host, opts.http_port)
        freeze_startup_objects()  # before the port opens: whoever connects then sees the banner next
        await site.start()
        udp = shell.transport.get_extra_info("sockname") if shell.transport else None
        load_follower = start_load_follower(transceiver.complexity)
        print(
            f"voxwire {__version__} serving on http://{opts.http_host}:{opts.http_port}/ "
            f"(media udp {udp[0]}:{udp[1]}, agent {opts.agent})" if udp else "",
            flush=True,
        )
        if relay is not None:
            print(relay.describe(), flush=True)
        if mode != "keys":
            print(
                f"voxwire: no API keys configured: {mode} mode, calls are NOT authenticated "
                "(set VOXWIRE_API_KEYS or VOXWIRE_API_KEY_FILE)",
                flush=True,
            )
        try:
            await asyncio.Event().wait()
        finally:
            load_follower.cancel()
            await runner.cleanup()
    finally:
        if relay is not None:
            await relay.stop()


class EmbeddedRelay:
    """``voxwire serve --relay-port``: the relay tier in the one ``serve`` process.

    A relay worker (:func:`voxwire.relay.loop.start_worker`) runs on this process's event loop, in
    front of this process's transceiver, which is its one static (pinned) transceiver. The
    transceiver's endpoint is wrapped in a :class:`~voxwire.relay.transceiver_side.RelayedEndpoint`
    that trusts only the worker's internal address, session ufrags are routing tokens
    (``--token-keys``, else a random key per process), and answers advertise the relay's public
    address (``--advertise-address`` overrides it; its port defaults to the relay's). Redis (the
    relay's flow cache and this transceiver's registry entry) only with ``--redis-url``.

    Order (:meth:`start`): bind the transceiver's UDP socket (so its port is known even with
    ``--udp-port 0``), start the worker with that address, then the caller builds the transceiver
    with :attr:`advertised` and :attr:`ufrag_factory` and serves :meth:`take_udp_socket` through
    :meth:`wrap`.
    """

    def __init__(
        self,
        opts: argparse.Namespace,
        keys: Sequence[TokenKey],
        udp_sock: socket.socket,
        internal: tuple[str, int],
        worker: RelayWorker,
    ) -> None:
        from voxwire.relay.transceiver_side import TokenUfragSource
        from voxwire.wire.token import TokenMinter

        self.opts = opts
        self.worker = worker
        self.transceiver_id: int = opts.transceiver_id
        self.ufrag_factory = TokenUfragSource(TokenMinter(keys[0], opts.cluster, opts.transceiver_id, os.urandom), time.time)
        self._udp_sock: socket.socket | None = udp_sock
        #: Where the relay reaches this transceiver (its static directory entry and registry address).
        self.internal = internal
        self._random_key = not opts.token_keys
        self._registration: asyncio.Task[None] | None = None
        self._link: RedisLink | None = None
        public = worker.public_addresses()[0]
        host = public[0]
        if not opts.advertise_address and ipaddress.ip_address(host).is_unspecified and ":" in host:
            host = "::1"  # the relay's IPv6 socket is IPv6-only: 127.0.0.1 would not reach it
        self.advertised = advertised(
            argparse.Namespace(advertise_address=opts.advertise_address, udp_host=host, udp_port=public[1])
        )

    @classmethod
    async def start(cls, opts: argparse.Namespace) -> EmbeddedRelay:
        import socket

        from voxwire.relay.cli import parse_token_keys
        from voxwire.relay.core import RelayConfig
        from voxwire.relay.loop import RelaySettings, start_worker
        from voxwire.wire.token import TokenKey

        try:
            keys = parse_token_keys(opts.token_keys) if opts.token_keys else [TokenKey(0, os.urandom(32))]
            if not 0 <= opts.cluster <= 0xFF or not 0 <= opts.transceiver_id <= 0xFFFFFF:
                raise ValueError("--cluster must be 0..255 and --transceiver-id 0..16777215")
            config = RelayConfig(cluster=opts.cluster)
        except ValueError as exc:
            raise SystemExit(f"voxwire serve: {exc}") from None
        udp_host = opts.udp_host
        ip = ipaddress.ip_address(udp_host)
        if opts.relay_port == opts.udp_port and (opts.relay_host or udp_host) == udp_host:
            raise SystemExit(f"voxwire serve: --relay-port and --udp-port are both {opts.udp_port}: move one")
        sock = socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((udp_host, opts.udp_port))
            sock.setblocking(False)
            # The relay's internal socket talks to the transceiver over the same address (loopback
            # of the family when the transceiver binds a wildcard).
            internal_host = ("::1" if ip.version == 6 else "127.0.0.1") if ip.is_unspecified else udp_host
            internal = (internal_host, sock.getsockname()[1])
            settings = RelaySettings(
                public=[(opts.relay_host or udp_host, opts.relay_port)],
                internal=(internal_host, 0),
                keys=keys,
                config=config,
                redis_url=opts.redis_url or None,
                static_transceivers=[(opts.transceiver_id, internal)],
            )
            worker = await start_worker(settings)
        except BaseException:
            sock.close()
            raise
        return cls(opts, keys, sock, internal, worker)

    def take_udp_socket(self) -> socket.socket:
        sock, self._udp_sock = self._udp_sock, None
        assert sock is not None, "the UDP socket was already taken"
        return sock

    def wrap(self, endpoint: Endpoint[Any], max_calls: int) -> RelayedEndpoint:
        """The transceiver's endpoint behind the relay: only the worker's internal address may send
        encapsulated datagrams; plain ones (direct clients) still work."""
        from voxwire.relay.transceiver_side import RelayedEndpoint

        return RelayedEndpoint(endpoint, [self.worker.internal_address], max_clients=max(4 * max_calls, 1024))

    def register(self, load: Callable[[], int]) -> None:
        """Heartbeat this transceiver into the Redis registry (with ``--redis-url`` only)."""
        if not self.opts.redis_url:
            return
        from voxwire.relay.registry import RedisLink, TransceiverRegistration

        self._link = RedisLink(self.opts.redis_url)
        registration = TransceiverRegistration(self._link, self.opts.cluster, self.transceiver_id, self.internal,
                                               load=load)
        self._registration = asyncio.create_task(registration.run())

    def describe(self) -> str:
        public = ", ".join(f"{h}:{p}" for h, p in self.worker.public_addresses())
        internal = self.worker.internal_address
        return (
            f"voxwire: relay mode: public udp {public} -> transceiver {self.transceiver_id} (relay internal "
            f"{internal[0]}:{internal[1]}), answers advertise {', '.join(f'{h}:{p}' for h, p in self.advertised)}, "
            f"token key {'random per process' if self._random_key else 'from --token-keys'}, "
            f"redis {'on' if self.opts.redis_url else 'off'}"
        )

    async def stop(self) -> None:
        if self._registration is not None:
            self._registration.cancel()
            await asyncio.gather(self._registration, return_exceptions=True)
        if self._link is not None:
            await self._link.close()
        await self.worker.stop()
        if self._udp_sock is not None:
            self._udp_sock.close()


def freeze_startup_objects() -> None:
    """Keep the cyclic garbage collector off what start-up built (modules, the agent's models, the
    web app), which lives as long as the process. Left in the oldest generation, it is walked by
    every full collection, which then stalls the event loop mid-call: a full collection took
    15-45 ms right after start-up with the echo agent (measured with ``gc.callbacks``); frozen,
    only what calls allocate is left to walk (~6k objects with 30 echo calls, from ~94k)."""
    gc.collect()
    gc.freeze()


def main(argv: Sequence[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    from voxwire.observability.logging import setup_logging

    # loadgen has no --log-level of its own: it reports on stdout and logs warnings only.
    setup_logging(getattr(opts, "log_level", "warning"), getattr(opts, "log_format", "text"))
    import uvloop

    try:
        if opts.command == "serve":
            uvloop.run(serve(opts))
        elif opts.command == "relay":
            from voxwire.relay.cli import run_relay

            uvloop.run(run_relay(opts))
        elif opts.command == "loadgen":
            from voxwire.loadgen.cli import exit_status, run_loadgen

            return exit_status(uvloop.run(run_loadgen(opts)))
        elif opts.command == "transceiver":
            from voxwire.relay.cli import run_transceiver

            uvloop.run(run_transceiver(opts))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
