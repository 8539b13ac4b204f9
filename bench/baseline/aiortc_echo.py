"""A minimal aiortc echo server: the test-only baseline that voxwire is measured against.

It speaks voxwire's HTTP API and serves the same page from voxwire/web/:

    GET    /                          -> voxwire/web/index.html
    POST   /v1/realtime/calls         (Content-Type: application/sdp, body = offer)
                                      -> 201, Location: /v1/realtime/calls/{call_id}, body = answer
    DELETE /v1/realtime/calls/{id}    -> 204 (the call is closed)

Each call is one RTCPeerConnection without ICE servers that sends the received audio track back
through a MediaStreamTrack relay (decoded and re-encoded, like voxwire's echo agent). Every data
channel the client opens echoes each message back on the same channel (voxwire echoes every channel
but ``oai-events``; this baseline has no Realtime protocol, so it echoes that one too).

Loopback: aioice leaves 127.0.0.1 out of its host candidates, and neither aiortc nor aioice has a
setting for the gathered addresses. In a network namespace with only loopback it would gather
nothing, so this file wraps `aioice.ice.get_host_addresses` (a module-level function, looked up at
call time by `Connection.gather_candidates`) to add 127.0.0.1. Test-only; see `allow_loopback()`.

    python bench/baseline/aiortc_echo.py --port 8080
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
from pathlib import Path

import aioice.ice
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

WEB_DIR = Path(__file__).resolve().parents[2] / "voxwire" / "web"
CONNECT_TIMEOUT = 30.0  # seconds a call may take to connect before it is closed

log = logging.getLogger("aiortc_echo")


def allow_loopback() -> None:
    """Make aioice offer a 127.0.0.1 host candidate (it skips loopback when gathering)."""
    original = aioice.ice.get_host_addresses
    if getattr(original, "allows_loopback", False):
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        return ["127.0.0.1", *addresses] if use_ipv4 else addresses

    get_host_addresses.allows_loopback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = get_host_addresses


def error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)


class EchoServer:
    def __init__(self) -> None:
        self.calls: dict[str, RTCPeerConnection] = {}
        self.relay = MediaRelay()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_post("/v1/realtime/calls", self.create_call)
        app.router.add_delete("/v1/realtime/calls/{call_id}", self.delete_call)
        app.router.add_static("/static", WEB_DIR)
        app.on_shutdown.append(self.shutdown)
        return app

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_DIR / "index.html")

    async def create_call(self, request: web.Request) -> web.Response:
        if request.content_type != "application/sdp":
            return error(415, "invalid_request_error", "Content-Type must be application/sdp")
        offer = await request.text()
        call_id = "call_" + secrets.token_hex(8)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.calls[call_id] = pc

        @pc.on("track")
        def on_track(track):  # type: ignore[no-untyped-def]
            if track.kind == "audio":
                pc.addTrack(self.relay.subscribe(track))  # reuses the offer's sendrecv transceiver

        @pc.on("datachannel")
        def on_datachannel(channel):  # type: ignore[no-untyped-def]
            @channel.on("message")
            def on_message(message):  # type: ignore[no-untyped-def]
                channel.send(message)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("%s connection %s", call_id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self.close(call_id)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except ValueError as exc:
            await self.close(call_id)
            return error(400, "invalid_request_error", f"bad SDP offer: {exc}")
        asyncio.get_running_loop().call_later(CONNECT_TIMEOUT, self.expire, call_id)
        return web.Response(
            status=201,
            content_type="application/sdp",
            text=pc.localDescription.sdp,
            headers={"Location": f"/v1/realtime/calls/{call_id}"},
        )

    async def delete_call(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        if call_id not in self.calls:
            return error(404, "not_found", f"no call {call_id}")
        await self.close(call_id)
        return web.Response(status=204)

    def expire(self, call_id: str) -> None:
        pc = self.calls.get(call_id)
        if pc is not None and pc.connectionState != "connected":
            asyncio.ensure_future(self.close(call_id))

    async def close(self, call_id: str) -> None:
        pc = self.calls.pop(call_id, None)
        if pc is not None:
            await pc.close()
            log.info("%s closed", call_id)

    async def shutdown(self, app: web.Application) -> None:
        for call_id in list(self.calls):
            await self.close(call_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="HTTP listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="HTTP listen port (default 8080)")
    parser.add_argument("--verbose", action="store_true", help="log every call's state changes")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    allow_loopback()
    print(f"aiortc echo baseline on http://{args.host}:{args.port}/", flush=True)
    web.run_app(EchoServer().app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
