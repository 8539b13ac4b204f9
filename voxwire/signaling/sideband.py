"""Sideband control: a server-side WebSocket onto a call a browser started.

``GET /v1/realtime?call_id=rtc_...`` upgrades to a WebSocket (server API key only, as OpenAI's
server-side controls). It receives every server event of the call and may send client events, so
an application backend can watch and steer the call (update instructions, create responses,
cancel) while the audio stays between the browser and the gateway.

Each connection has a bounded outgoing queue: a backend that stops reading loses events (counted)
rather than holding memory. The socket closes when the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSMsgType, web

from voxwire.signaling.http import SHELL, TRANSCEIVER, authenticate, error_response

log = logging.getLogger(__name__)

#: Server events queued per sideband connection before new ones are dropped.
MAX_QUEUED_EVENTS = 1000
#: Largest client event accepted over the sideband socket (bytes).
MAX_EVENT_BYTES = 256 * 1024
#: How often a writer checks whether its call has ended (seconds).
CALL_CHECK_INTERVAL = 0.5


async def sideband(request: web.Request) -> web.StreamResponse:
    authenticate(request, api_key_only=True)
    call_id = request.query.get("call_id", "")
    transceiver = request.app[TRANSCEIVER]
    shell = request.app[SHELL]
    call = transceiver.calls.get(call_id)
    if call is None:
        return error_response(404, "invalid_request_error", "call_not_found", f"no call {call_id or '(missing call_id)'}")
    ws = web.WebSocketResponse(max_msg_size=MAX_EVENT_BYTES, heartbeat=30)
    await ws.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue(MAX_QUEUED_EVENTS)
    dropped = 0

    def observe(text: str) -> None:
        nonlocal dropped
        try:
            queue.put_nowait(text)
        except asyncio.QueueFull:
            dropped += 1

    async def writer() -> None:
        while not call.is_closed:
            try:
                text = await asyncio.wait_for(queue.get(), CALL_CHECK_INTERVAL)
            except TimeoutError:
                continue
            await ws.send_str(text)
        await ws.close(message=b"call ended")

    call.observers.append(observe)
    if not call.voice.opened:
        call.voice.open()  # session.created, now to the sideband
    call.pump(shell.now())
    writing = asyncio.create_task(writer())
    log.info("call %s: sideband connected", call.call_id)
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            call.voice.on_client_event(msg.data)
            call.pump(shell.now())
            transceiver.endpoint.touch(call)
            shell.drain()
    finally:
        call.observers.remove(observe)
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
        log.info("call %s: sideband closed (%d events dropped)", call.call_id, dropped)
    return ws


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/realtime", sideband)
