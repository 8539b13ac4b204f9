"""HTTP signaling: the OpenAI-compatible ``/v1/realtime/calls`` endpoint and the talk page.

``POST /v1/realtime/calls`` (``Content-Type: application/sdp``) answers synchronously: nothing in it
waits for I/O, because the certificate is made at start and an ICE-lite answer has no candidates to
gather. Errors use OpenAI's body shape ``{"error": {"type", "code", "message", "param"}}``.
"""

from __future__ import annotations

import logging
from importlib import resources

from aiohttp import web

from voxwire.aio.udp import UdpShell
from voxwire.transceiver.service import CapacityExceeded, OfferRejected, Transceiver
from voxwire.wire.sdp import SdpError

log = logging.getLogger(__name__)

#: Largest SDP offer accepted (bytes). Browsers send 3-8 KB.
MAX_OFFER_BYTES = 64 * 1024

TRANSCEIVER = web.AppKey("transceiver", Transceiver)
SHELL = web.AppKey("shell", UdpShell)


def error_response(status: int, type_: str, code: str, message: str) -> web.Response:
    body = {"error": {"type": type_, "code": code, "message": message, "param": None}}
    return web.json_response(body, status=status)


async def create_call(request: web.Request) -> web.Response:
    ctype = request.content_type
    if ctype != "application/sdp":
        return error_response(
            415, "invalid_request_error", "unsupported_media_type",
            f"Content-Type must be application/sdp, got {ctype or 'none'}",
        )
    if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
        return error_response(
            413, "invalid_request_error", "offer_too_large", f"the SDP offer exceeds {MAX_OFFER_BYTES} bytes"
        )
    raw = await request.content.read(MAX_OFFER_BYTES + 1)
    if len(raw) > MAX_OFFER_BYTES:
        return error_response(
            413, "invalid_request_error", "offer_too_large", f"the SDP offer exceeds {MAX_OFFER_BYTES} bytes"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return error_response(400, "invalid_request_error", "invalid_sdp", "the SDP offer is not valid UTF-8")
    transceiver = request.app[TRANSCEIVER]
    shell = request.app[SHELL]
    try:
        call, answer = transceiver.create_call(text, shell.now())
    except SdpError as exc:
        return error_response(400, "invalid_request_error", "invalid_sdp", f"invalid SDP offer: {exc}")
    except OfferRejected as exc:
        return error_response(400, "invalid_request_error", "unsupported_offer", str(exc))
    except CapacityExceeded as exc:
        return error_response(503, "server_error", "capacity_exceeded", str(exc))
    shell.drain()  # arm the new call's connect deadline
    location = f"/v1/realtime/calls/{call.call_id}"
    return web.Response(
        status=201, text=answer, content_type="application/sdp", headers={"Location": location}
    )


async def delete_call(request: web.Request) -> web.Response:
    call_id = request.match_info["call_id"]
    shell = request.app[SHELL]
    if not request.app[TRANSCEIVER].end_call(call_id, shell.now()):
        return error_response(404, "invalid_request_error", "call_not_found", f"no call {call_id}")
    shell.drain()
    return web.Response(status=204)


async def index(request: web.Request) -> web.Response:
    page = resources.files("voxwire.web").joinpath("index.html").read_text("utf-8")
    return web.Response(text=page, content_type="text/html")


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if "/" in name or name.startswith(".") or name == "index.html":
        raise web.HTTPNotFound()
    node = resources.files("voxwire.web").joinpath(name)
    if not node.is_file():
        raise web.HTTPNotFound()
    ctype = {"js": "text/javascript", "css": "text/css"}.get(name.rpartition(".")[2], "application/octet-stream")
    return web.Response(body=node.read_bytes(), content_type=ctype)


async def healthz(request: web.Request) -> web.Response:
    transceiver = request.app[TRANSCEIVER]
    return web.json_response({"ok": True, "calls": len(transceiver.calls)})


def make_app(transceiver: Transceiver, shell: UdpShell) -> web.Application:
    app = web.Application(client_max_size=MAX_OFFER_BYTES * 2)
    app[TRANSCEIVER] = transceiver
    app[SHELL] = shell
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/realtime/calls", create_call)
    app.router.add_delete("/v1/realtime/calls/{call_id}", delete_call)
    return app
