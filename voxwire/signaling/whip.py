"""WHIP (RFC 9725): the same calls, for clients that speak the WebRTC-HTTP ingestion protocol.

* ``POST /whip`` with an SDP offer -> ``201`` with ``Location: /whip/{call_id}``, an ``ETag`` naming
  the ICE session, and the answer.
* ``PATCH /whip/{id}`` with ``application/trickle-ice-sdpfrag`` (RFC 8840): trickled candidates are
  accepted and ignored (``204``): an ICE-lite server learns the client's addresses from its checks.
  New ICE credentials restart ICE (RFC 9725 §4.3.2): ``200`` with our new credentials and
  candidates as a fragment and a new ETag. ``If-Match`` must name the current ETag (or ``*``), else
  ``412``.
* ``DELETE /whip/{id}`` ends the call (``200``); ``OPTIONS`` answers CORS preflights and says no
  ICE servers are needed (an ICE-lite server with a public address needs no STUN or TURN).
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from voxwire.signaling.http import (
    SHELL,
    TRANSCEIVER,
    authenticate,
    create_call_response,
    end_call,
    error_response,
    media_type,
    read_body,
)
from voxwire.wire.form import FormError
from voxwire.wire.sdp import SdpError
from voxwire.wire.sdpfrag import MAX_SDPFRAG_SIZE, build_sdpfrag, parse_sdpfrag

SDPFRAG = "application/trickle-ice-sdpfrag"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "OPTIONS, POST, PATCH, DELETE",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Link",
}


def media_type_or_none(request: web.Request) -> str | None:
    try:
        return media_type(request)[0]
    except FormError:
        return None


def etag(call_id: str, local_ufrag: str) -> str:
    """Names the ICE session: changes exactly when an ICE restart gives us new credentials."""
    return '"' + hashlib.sha256(f"{call_id}:{local_ufrag}".encode()).hexdigest()[:20] + '"'


async def options(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={**CORS, "Accept-Post": "application/sdp"})


async def post(request: web.Request) -> web.Response:
    secret = authenticate(request)
    if media_type_or_none(request) != "application/sdp":
        return error_response(
            415, "invalid_request_error", "unsupported_media_type", "a WHIP offer must be application/sdp"
        )
    response = await create_call_response(request, secret, location_prefix="/whip/")
    if response.status == 201:
        call_id = response.headers["Location"].rsplit("/", 1)[1]
        call = request.app[TRANSCEIVER].calls[call_id]
        response.headers["ETag"] = etag(call_id, call.local_ufrag)
    response.headers.update(CORS)
    return response


async def patch(request: web.Request) -> web.Response:
    authenticate(request)
    call_id = request.match_info["call_id"]
    transceiver = request.app[TRANSCEIVER]
    call = transceiver.calls.get(call_id)
    if call is None:
        return error_response(404, "invalid_request_error", "call_not_found", f"no call {call_id}")
    if media_type_or_none(request) != SDPFRAG:
        return error_response(415, "invalid_request_error", "unsupported_media_type", f"PATCH takes {SDPFRAG}")
    current = etag(call_id, call.local_ufrag)
    match = request.headers.get("If-Match")
    if match is not None and match.strip() not in ("*", current):
        return error_response(412, "invalid_request_error", "etag_mismatch", "If-Match does not name this ICE session")
    raw = await read_body(request, MAX_SDPFRAG_SIZE)
    try:
        frag = parse_sdpfrag(raw.decode("utf-8"))
    except (SdpError, UnicodeDecodeError) as exc:
        return error_response(400, "invalid_request_error", "invalid_sdpfrag", f"invalid sdpfrag: {exc}")
    if frag.ice_ufrag is None or frag.ice_ufrag == call.session.params.remote_ufrag:
        return web.Response(status=204, headers=CORS)  # trickle: nothing to do for an ICE-lite server
    shell = request.app[SHELL]
    ufrag, pwd = transceiver.restart_ice(call_id, frag.ice_ufrag, shell.now())
    shell.drain()
    mid = frag.mids[0] if frag.mids else "0"
    body = build_sdpfrag(ufrag, pwd, mid, transceiver.config.advertised)
    headers = {**CORS, "ETag": etag(call_id, ufrag)}
    return web.Response(status=200, text=body, content_type=SDPFRAG, headers=headers)


async def delete(request: web.Request) -> web.Response:
    authenticate(request)
    return end_call(request, web.Response(status=200, headers=CORS))


def add_routes(app: web.Application) -> None:
    app.router.add_route("OPTIONS", "/whip", options)
    app.router.add_post("/whip", post)
    app.router.add_route("OPTIONS", "/whip/{call_id}", options)
    app.router.add_patch("/whip/{call_id}", patch)
    app.router.add_delete("/whip/{call_id}", delete)
