"""``voxwire`` command line. Every option also reads ``VOXWIRE_<OPTION>`` from the environment."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from voxwire import __version__


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
    serve.add_env_option("--agent", default="echo", help="agent that answers calls")
    serve.add_env_option(
        "--dtls-role",
        default="active",
        choices=["active", "passive"],
        help="our a=setup when the client offers actpass (active: we send the ClientHello)",
    )
    serve.add_env_option("--connect-timeout", default=30.0, type=float, help="seconds a call may take to connect")
    serve.add_env_option("--max-calls", default=1000, type=int, help="most concurrent calls")
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

    from voxwire.relay.cli import add_relay_parser, add_transceiver_parser  # they import EnvDefaults

    add_relay_parser(sub)
    add_transceiver_parser(sub)
    return parser


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
    from voxwire.aio.udp import open_udp
    from voxwire.proto.session import SessionConfig
    from voxwire.signaling.auth import Authenticator, load_api_keys
    from voxwire.signaling.http import make_app
    from voxwire.transceiver.service import Transceiver, TransceiverConfig

    if opts.agent not in AGENTS:
        raise SystemExit(f"voxwire: unknown agent {opts.agent!r}; known: {', '.join(sorted(AGENTS))}")
    api_keys = load_api_keys()
    mode = auth_mode(opts, api_keys)
    loop = asyncio.get_running_loop()
    config = TransceiverConfig(
        advertised=advertised(opts),
        preferred_setup=opts.dtls_role,
        max_calls=opts.max_calls,
        session=SessionConfig(connect_timeout=opts.connect_timeout),
    )
    transceiver = Transceiver(config, AGENTS[opts.agent](), wallclock_offset=time.time() - loop.time())
    shell = await open_udp(transceiver.endpoint, opts.udp_host, opts.udp_port, after_drain=transceiver.collect)
    app = make_app(transceiver, shell, Authenticator(api_keys), client_secret_ttl=opts.client_secret_ttl)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, opts.http_host, opts.http_port)
    await site.start()
    udp = shell.transport.get_extra_info("sockname") if shell.transport else None
    print(
        f"voxwire {__version__} serving on http://{opts.http_host}:{opts.http_port}/ "
        f"(media udp {udp[0]}:{udp[1]}, agent {opts.agent})" if udp else "",
        flush=True,
    )
    if mode != "keys":
        print(
            f"voxwire: no API keys configured: {mode} mode, calls are NOT authenticated "
            "(set VOXWIRE_API_KEYS or VOXWIRE_API_KEY_FILE)",
            flush=True,
        )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    logging.basicConfig(
        level=opts.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr
    )
    import uvloop

    try:
        if opts.command == "serve":
            uvloop.run(serve(opts))
        elif opts.command == "relay":
            from voxwire.relay.cli import run_relay

            uvloop.run(run_relay(opts))
        elif opts.command == "transceiver":
            from voxwire.relay.cli import run_transceiver

            uvloop.run(run_transceiver(opts))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
