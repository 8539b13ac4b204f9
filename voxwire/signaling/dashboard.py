"""The operator's view and the talk page's client secrets: routes added to the signaling app.

* ``GET /dashboard``: the dashboard page (static; it holds no data). Its data comes from
  ``GET /dashboard/api/overview`` (JSON), ``GET /dashboard/api/sessions/{call_id}`` (one call, with its
  history) and ``GET /dashboard/api/stream`` (server-sent events: the overview once per monitor
  tick). The API needs a server API key (``Authorization: Bearer``; open in development mode, as
  every endpoint is); client addresses appear only there.
* ``GET /metrics``: Prometheus text exposition (:mod:`voxwire.observability.metrics`), API key too
  (Prometheus sends it with ``authorization: {credentials: ...}``).
* ``POST /session``: mints a client secret for the talk page, the way OpenAI recommends: the page
  asks its own server, which holds the API key, never the page. In development mode anyone on
  loopback gets one; with API keys configured the request must carry an API key (the page asks
  for it and keeps it in memory only), unless the operator made the talk page public
  (:func:`allow_public_talk_page`: anyone who can load the page may talk). Minting is rate limited.
  The answer has the shape of ``POST /v1/realtime/client_secrets``.

:func:`add_routes` also starts the call monitor's timer (one tick per ``interval``; every tick
samples each live call once and wakes the event streams), reports each call that signaling creates
to the monitor (a middleware on the offer routes, which also measures the request), and puts a
traffic counter in front of the UDP shell's core.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from voxwire.observability.calls import CallMonitor
from voxwire.observability.metrics import CONTENT_TYPE, LiveCollector, Metrics, install_traffic_counter
from voxwire.observability.tracing import OtlpHttpExporter, get_tracer
from voxwire.signaling.http import (
    AUTH,
    CLIENT_SECRET_TTL,
    SHELL,
    TRANSCEIVER,
    WALLCLOCK,
    authenticate,
    error_response,
)

log = logging.getLogger(__name__)

__all__ = ["MONITOR", "add_routes", "allow_public_talk_page", "attach_relay"]

#: Seconds between monitor ticks (samples, event-stream updates).
INTERVAL = 1.0
#: Each tick's call sampling is spread over this many equal steps of the interval (a tenth of the
#: calls each), so the loop is never held for all of them at once.
SAMPLE_SLICES = 10
#: Lifetime of a talk page's client secret: it only has to create the call (and end it).
TALK_SECRET_TTL = 600
#: Client secrets minted per second for talk pages, and the burst.
MINT_RATE, MINT_BURST = 5.0, 20
#: Concurrent dashboard event streams.
MAX_STREAMS = 32

OFFER_ROUTES = ("/v1/realtime/calls", "/whip")
#: The talk page reads it from its own navigation timing (no request): this server has /session.
#: A page served by another server (the aiortc baseline) then asks for no client secret.
TALK_PAGE_HINT = 'voxwire-session;desc="/session"'


class Tick:
    """Wakes every waiting event stream once per monitor tick; the overview each stream sends is
    built once per tick, however many dashboards watch."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closing = False
        self.streams = 0
        self._payloads: dict[bool, bytes] = {}

    def fire(self) -> None:
        self._payloads.clear()
        self._event.set()
        self._event = asyncio.Event()

    def payload(self, monitor: CallMonitor, addresses: bool) -> bytes:
        if addresses not in self._payloads:
            data = json.dumps(monitor.overview(addresses), separators=(",", ":"))
            self._payloads[addresses] = f"event: overview\ndata: {data}\n\n".encode()
        return self._payloads[addresses]

    async def wait(self) -> None:
        await self._event.wait()


class TalkPagePolicy:
    """Who may mint a talk-page client secret without an API key (see the module docstring)."""

    def __init__(self) -> None:
        self.public = False


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.at = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


MONITOR = web.AppKey("voxwire_monitor", CallMonitor)
METRICS = web.AppKey("voxwire_metrics", Metrics)
_TICK = web.AppKey("voxwire_monitor_tick", Tick)
_MINT_LIMIT = web.AppKey("voxwire_mint_limit", TokenBucket)
TALK_PAGE = web.AppKey("voxwire_talk_page", TalkPagePolicy)


# -- wiring ---------------------------------------------------------------------------------------


def add_routes(app: web.Application, *, interval: float = INTERVAL) -> None:
    transceiver = app[TRANSCEIVER]
    shell = app[SHELL]
    metrics = Metrics()
    tracer = get_tracer()
    tracer.wallclock_offset = time.time() - shell.now()
    if isinstance(tracer.exporter, OtlpHttpExporter):
        tracer.exporter.on_error = metrics.trace_export_errors.inc
    core = shell.core
    traffic = install_traffic_counter(shell)
    sock = shell.transport.get_extra_info("sockname") if shell.transport is not None else None
    monitor = CallMonitor(
        transceiver, shell.now, metrics, tracer, traffic=traffic, interval=interval,
        transceiver_name=f"udp {sock[0]}:{sock[1]}" if sock else "local",
    )
    if hasattr(core, "is_relay") and hasattr(core, "counters"):  # behind relays (RelayedEndpoint)
        monitor.extra_counters["relayed_endpoint"] = lambda: dict(core.counters)
        monitor.relay_name = "external"
    metrics.registry.register(LiveCollector(monitor.live_state))
    app[MONITOR] = monitor
    app[METRICS] = metrics
    app[TALK_PAGE] = TalkPagePolicy()
    app[_TICK] = Tick()
    app[_MINT_LIMIT] = TokenBucket(MINT_RATE, MINT_BURST)
    app.middlewares.append(_track_offers)
    app.cleanup_ctx.append(_monitor_timer)
    app.on_shutdown.append(_close_streams)
    app.router.add_get("/dashboard", dashboard_page)
    app.router.add_get("/dashboard/api/overview", overview)
    app.router.add_get("/dashboard/api/sessions/{call_id}", session_detail)
    app.router.add_get("/dashboard/api/stream", stream)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_post("/session", mint_session)


def attach_relay(app: web.Application, worker: Any, name: str = "embedded") -> None:
    """Show an embedded relay worker (``stats()``) on the dashboard and in /metrics."""
    monitor = app[MONITOR]
    monitor.relay = worker
    monitor.relay_name = name


def allow_public_talk_page(app: web.Application) -> None:
    """Let anyone who can load the talk page mint a client secret (rate limited), keys or not."""
    app[TALK_PAGE].public = True


@web.middleware
async def _track_offers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Report each call signaling creates to the monitor (with the request's duration), and tell
    the talk page (``GET /``) that this server mints its client secrets at /session."""
    if request.path == "/" and request.method in ("GET", "HEAD"):
        response = await handler(request)
        response.headers["Server-Timing"] = TALK_PAGE_HINT
        return response
    if request.method != "POST" or request.path not in OFFER_ROUTES:
        return await handler(request)
    started = request.app[SHELL].now()
    response = await handler(request)
    location = response.headers.get("Location") if response.status == 201 else None
    if location:
        request.app[MONITOR].call_created(location.rsplit("/", 1)[1], started)
    return response


async def _monitor_timer(app: web.Application) -> AsyncIterator[None]:
    monitor, tick = app[MONITOR], app[_TICK]

    async def run() -> None:
        step = monitor.interval / SAMPLE_SLICES
        while True:
            for part in range(SAMPLE_SLICES):
                monitor.sample(part, SAMPLE_SLICES)
                if part == 0:
                    tick.fire()
                await asyncio.sleep(step)

    task = asyncio.get_running_loop().create_task(run(), name="call-monitor")
    task.add_done_callback(_report_crash)
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the call monitor stopped", exc_info=task.exception())


async def _close_streams(app: web.Application) -> None:
    tick = app[_TICK]
    tick.closing = True
    tick.fire()


# -- handlers -------------------------------------------------------------------------------------


def _viewer(request: web.Request) -> bool:
    """Check the API key (raises 401); True when the viewer may see client addresses."""
    authenticate(request, api_key_only=True)
    return True


async def dashboard_page(request: web.Request) -> web.Response:
    page = resources.files("voxwire.web").joinpath("dashboard.html").read_text("utf-8")
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


async def overview(request: web.Request) -> web.Response:
    addresses = _viewer(request)
    return web.json_response(request.app[MONITOR].overview(addresses), headers={"Cache-Control": "no-store"})


async def session_detail(request: web.Request) -> web.Response:
    addresses = _viewer(request)
    call_id = request.match_info["call_id"]
    detail = request.app[MONITOR].detail(call_id, addresses)
    if detail is None:
        return error_response(404, "invalid_request_error", "call_not_found", f"no live call {call_id}")
    return web.json_response(detail, headers={"Cache-Control": "no-store"})


async def stream(request: web.Request) -> web.StreamResponse:
    addresses = _viewer(request)
    tick, monitor = request.app[_TICK], request.app[MONITOR]
    if tick.streams >= MAX_STREAMS:
        return error_response(503, "server_error", "too_many_streams", "too many dashboard streams are open")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    tick.streams += 1
    try:
        while not tick.closing:
            await response.write(tick.payload(monitor, addresses))
            await tick.wait()
    except ConnectionResetError:
        pass  # the viewer went away
    finally:
        tick.streams -= 1
    return response


async def metrics_endpoint(request: web.Request) -> web.Response:
    authenticate(request, api_key_only=True)
    request.app[MONITOR].sync()  # phases and ended calls up to now, before the histograms are written
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


async def mint_session(request: web.Request) -> web.Response:
    """A client secret for the talk page (see the module docstring for who may have one)."""
    app = request.app
    auth = app[AUTH]
    if not auth.development_mode and not app[TALK_PAGE].public:
        authenticate(request, api_key_only=True)
    if not app[_MINT_LIMIT].take():
        return error_response(429, "rate_limit_error", "rate_limit_exceeded", "too many sessions requested; retry")
    ttl = min(app[CLIENT_SECRET_TTL], TALK_SECRET_TTL)
    secret = auth.mint({}, ttl, app[WALLCLOCK]())
    body = {"value": secret.value, "expires_at": int(secret.expires_at), "session": {}}
    return web.json_response(body, headers={"Cache-Control": "no-store"})
