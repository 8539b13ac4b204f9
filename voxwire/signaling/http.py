"""HTTP signaling: the OpenAI-compatible Realtime WebRTC API and the talk page.

* ``POST /v1/realtime/calls``: body ``application/sdp`` (the offer), or ``multipart/form-data`` with
  an ``sdp`` part and an optional ``session`` JSON part; answers ``201`` with ``Location`` and the
  SDP answer. It answers synchronously: nothing in it waits for I/O, because the certificate is
  made at start and an ICE-lite answer has no candidates to gather.
* ``DELETE /v1/realtime/calls/{id}`` and ``POST /v1/realtime/calls/{id}/hangup`` end a call.
* ``POST /v1/realtime/client_secrets`` mints a short-lived client secret (API key only).

Every call endpoint needs ``Authorization: Bearer`` with an API key or an unexpired client secret
(see :mod:`voxwire.signaling.auth`). Errors use OpenAI's body shape
``{"error": {"type", "code", "message", "param"}}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from voxwire.aio.udp import UdpShell
from voxwire.signaling.auth import DEFAULT_TTL, Authenticator, AuthError, ClientSecret, Principal
from voxwire.transceiver.service import CapacityExceeded, OfferRejected, Transceiver
from voxwire.wire.form import FormError, parse_content_type, parse_form
from voxwire.wire.sdp import SdpError

log = logging.getLogger(__name__)

#: Largest SDP offer accepted (bytes). Browsers send 3-8 KB.
MAX_OFFER_BYTES = 64 * 1024
#: Largest session configuration (JSON) accepted with an offer or a client secret request.
MAX_SESSION_BYTES = 64 * 1024
#: Largest multipart offer body: both parts plus 4 KiB for their delimiters and headers.
MAX_FORM_BYTES = MAX_OFFER_BYTES + MAX_SESSION_BYTES + 4 * 1024

TRANSCEIVER = web.AppKey("transceiver", Transceiver)
SHELL = web.AppKey("shell", UdpShell)
AUTH = web.AppKey("auth", Authenticator)
WALLCLOCK: web.AppKey[Callable[[], float]] = web.AppKey("wallclock")


def error_response(status: int, type_: str, code: str, message: str) -> web.Response:
    body = {"error": {"type": type_, "code": code, "message": message, "param": None}}
    return web.json_response(body, status=status)


def authenticate(request: web.Request, *, api_key_only: bool = False) -> ClientSecret | None:
    """The request's client secret (None for an API key); raises HTTPUnauthorized otherwise."""
    try:
        principal, secret = request.app[AUTH].authenticate(request.headers.get("Authorization"), request.app[WALLCLOCK]())
    except AuthError as exc:
        raise unauthorized(str(exc)) from None
    if api_key_only and principal is not Principal.API_KEY:
        raise unauthorized("This endpoint needs a server API key, not a client secret.")
    return secret


def unauthorized(message: str) -> web.HTTPUnauthorized:
    body = {"error": {"type": "invalid_request_error", "code": "invalid_api_key", "message": message, "param": None}}
    return web.HTTPUnauthorized(text=json.dumps(body), content_type="application/json")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body up to ``limit + 1`` bytes (one more than allowed: the caller can tell a
    body that is too large). ``StreamReader.read(n)`` returns what has arrived so far, which is
    less than the body when it comes in several TCP segments (a loaded server, a slow client)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def media_type(request: web.Request) -> tuple[str, dict[str, str]]:
    """The request's Content-Type, lowercased, and its parameters ("" when there is none); raises
    :class:`FormError` when the header is malformed. (aiohttp's ``request.content_type`` parses
    with the ``email`` package: about 0.15 ms per request.)"""
    header = request.headers.get("Content-Type")
    return parse_content_type(header) if header else ("", {})


async def read_offer(request: web.Request) -> tuple[str, dict[str, Any] | None] | web.Response:
    """The SDP offer and optional session configuration of a POST, or the error response."""
    too_large = error_response(
        413, "invalid_request_error", "offer_too_large", f"the SDP offer exceeds {MAX_OFFER_BYTES} bytes"
    )
    try:
        ctype, params = media_type(request)
    except FormError as exc:
        return error_response(400, "invalid_request_error", "invalid_content_type", f"malformed Content-Type: {exc}")
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        return too_large
    session: dict[str, Any] | None = None
    if ctype == "application/sdp":
        raw = await read_body(request, MAX_OFFER_BYTES)
    elif ctype == "multipart/form-data":
        body = await read_body(request, MAX_FORM_BYTES)
        if len(body) > MAX_FORM_BYTES:
            return too_large
        try:
            form = parse_form(body, params.get("boundary", ""))
        except FormError as exc:
            return error_response(400, "invalid_request_error", "invalid_form", f"malformed multipart body: {exc}")
        sdp, text = form.get("sdp"), form.get("session")
        if sdp is None:
            return error_response(400, "invalid_request_error", "missing_sdp", "the form has no 'sdp' part")
        raw = sdp
        if text is not None:
            if len(text) > MAX_SESSION_BYTES:
                return error_response(
                    413, "invalid_request_error", "session_too_large",
                    f"the 'session' part exceeds {MAX_SESSION_BYTES} bytes",
                )
            try:
                session = json.loads(text)
            except ValueError as exc:
                return error_response(
                    400, "invalid_request_error", "invalid_session", f"the 'session' part is not JSON: {exc}"
                )
            if not isinstance(session, dict):
                return error_response(
                    400, "invalid_request_error", "invalid_session", "the 'session' part must be a JSON object"
                )
    else:
        return error_response(
            415, "invalid_request_error", "unsupported_media_type",
            f"Content-Type must be application/sdp or multipart/form-data, got {ctype or 'none'}",
        )
    if len(raw) > MAX_OFFER_BYTES:
        return too_large
    try:
        return raw.decode("utf-8"), session
    except UnicodeDecodeError:
        return error_response(400, "invalid_request_error", "invalid_sdp", "the SDP offer is not valid UTF-8")


async def create_call(request: web.Request) -> web.Response:
    return await create_call_response(request, authenticate(request), location_prefix="/v1/realtime/calls/")


async def create_call_response(
    request: web.Request, secret: ClientSecret | None, *, location_prefix: str
) -> web.Response:
    """Read the offer, make the call, answer 201 (shared by the Realtime API and WHIP)."""
    offer = await read_offer(request)
    if isinstance(offer, web.Response):
        return offer
    text, session = offer
    if secret is not None:  # the secret's configuration first, the request's on top (OpenAI's order)
        session = {**secret.session, **(session or {})}
    transceiver = request.app[TRANSCEIVER]
    shell = request.app[SHELL]
    try:
        call, answer = transceiver.create_call(text, shell.now(), session=session)
    except SdpError as exc:
        return error_response(400, "invalid_request_error", "invalid_sdp", f"invalid SDP offer: {exc}")
    except OfferRejected as exc:
        return error_response(400, "invalid_request_error", "unsupported_offer", str(exc))
    except CapacityExceeded as exc:
        return error_response(503, "server_error", "capacity_exceeded", str(exc))
    shell.drain()  # arm the new call's connect deadline
    return web.Response(
        status=201, text=answer, content_type="application/sdp", headers={"Location": location_prefix + call.call_id}
    )


async def create_client_secret(request: web.Request) -> web.Response:
    authenticate(request, api_key_only=True)
    if request.content_length is not None and request.content_length > MAX_SESSION_BYTES:
        return error_response(413, "invalid_request_error", "request_too_large", "the request body is too large")
    try:
        body = json.loads(await read_body(request, MAX_SESSION_BYTES) or b"{}")
    except ValueError as exc:
        return error_response(400, "invalid_request_error", "invalid_json", f"the body is not JSON: {exc}")
    if not isinstance(body, dict):
        return error_response(400, "invalid_request_error", "invalid_json", "the body must be a JSON object")
    expires = body.get("expires_after", {})
    session = body.get("session", {})
    if not isinstance(expires, dict) or not isinstance(session, dict):
        return error_response(
            400, "invalid_request_error", "invalid_type", "expires_after and session must be JSON objects"
        )
    if expires.get("anchor", "created_at") != "created_at":
        return error_response(
            400, "invalid_request_error", "invalid_value", "expires_after.anchor must be 'created_at'"
        )
    ttl = expires.get("seconds", request.app[CLIENT_SECRET_TTL])
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        return error_response(400, "invalid_request_error", "invalid_type", "expires_after.seconds must be an integer")
    try:
        secret = request.app[AUTH].mint(session, ttl, request.app[WALLCLOCK]())
    except ValueError as exc:
        return error_response(400, "invalid_request_error", "invalid_value", str(exc))
    return web.json_response({"value": secret.value, "expires_at": int(secret.expires_at), "session": session})


async def delete_call(request: web.Request) -> web.Response:
    authenticate(request)
    return end_call(request, web.Response(status=204))


async def hangup_call(request: web.Request) -> web.Response:
    authenticate(request, api_key_only=True)
    return end_call(request, web.json_response({}, status=200))


def end_call(request: web.Request, ok: web.Response) -> web.Response:
    call_id = request.match_info["call_id"]
    shell = request.app[SHELL]
    if not request.app[TRANSCEIVER].end_call(call_id, shell.now()):
        return error_response(404, "invalid_request_error", "call_not_found", f"no call {call_id}")
    shell.drain()
    return ok


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


CLIENT_SECRET_TTL = web.AppKey("client_secret_ttl", int)


def make_app(
    transceiver: Transceiver,
    shell: UdpShell,
    auth: Authenticator | None = None,
    *,
    client_secret_ttl: int = DEFAULT_TTL,
    wallclock: Callable[[], float] = time.time,
) -> web.Application:
    app = web.Application(client_max_size=MAX_OFFER_BYTES + MAX_SESSION_BYTES + 4096)
    app[TRANSCEIVER] = transceiver
    app[SHELL] = shell
    app[AUTH] = auth or Authenticator(())
    app[CLIENT_SECRET_TTL] = client_secret_ttl
    app[WALLCLOCK] = wallclock
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/realtime/calls", create_call)
    app.router.add_delete("/v1/realtime/calls/{call_id}", delete_call)
    app.router.add_post("/v1/realtime/calls/{call_id}/hangup", hangup_call)
    app.router.add_post("/v1/realtime/client_secrets", create_client_secret)
    from voxwire.signaling import dashboard, sideband, whip  # they build on this module's handlers

    whip.add_routes(app)
    sideband.add_routes(app)
    dashboard.add_routes(app)
    return app
