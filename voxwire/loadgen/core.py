"""Many synthetic WebRTC callers in one process: the load generator's engine.

Theory of operation
-------------------
Each call is a :class:`~voxwire.loadgen.client.LoadClient` (``client.py``: the sans-IO test client
with a lean media path and echo matching) sending pre-encoded frames (``audio.py``); what was
measured is summed up in ``report.py``. This module is the driver: sockets, one schedule, HTTP.

Every call owns one UDP socket: the server keys its sessions by the client's address, so calls
must have distinct source ports, and the local port then names the call for free on the way back.
The answer's first UDP candidate is all a call needs, so it works the same directly and through a
relay.

**One schedule for all calls.** :class:`LoadGen` runs a single timer on a 1 ms slot grid anchored
on a monotonic clock. Each call is given a phase (one of the 20 slots of a 20 ms frame, spread by
the golden ratio so that any number of calls is spread evenly) and sends one pre-encoded Opus frame
each time its slot comes round: exactly 50 packets per second per call, never bunched into one
burst per frame. The same tick runs the calls' protocol timers (ICE checks and consent, DTLS and
SCTP retransmissions) from a heap of deadlines, so nothing else wakes the loop. If the process
falls behind, the overdue slots are sent late rather than skipped, and the lateness of the
generator itself is recorded (``sched_late``): a measurement taken while the generator was late
is flagged, not trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import math
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voxwire.loadgen.audio import load_frames
from voxwire.loadgen.client import LoadClient
from voxwire.loadgen.report import WindowStats, across_calls, call_summary, percentile
from voxwire.proto.certificate import Certificate

SLOT_SECONDS = 0.001
SLOTS_PER_FRAME = 20
_GOLDEN = (math.sqrt(5) - 1) / 2
_EVENTS_CHANNEL = "oai-events"


class _CallProtocol(asyncio.DatagramProtocol):
    __slots__ = ("gen", "call", "transport")

    def __init__(self, gen: LoadGen, call: LoadClient) -> None:
        self.gen = gen
        self.call = call
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        call = self.call
        call.handle_datagram(data, (addr[0], addr[1]), time.monotonic())
        if call._transmits or not (128 <= data[0] <= 191):
            self.gen._drain(self)

    def error_received(self, exc: Exception) -> None:
        self.gen.counters["socket_errors"] = self.gen.counters.get("socket_errors", 0) + 1


@dataclass
class LoadConfig:
    url: str
    token: str | None = None
    data_channel: bool = False
    #: Realtime session configuration sent with the offer (multipart), e.g. {"turn_detection": None}.
    session: dict[str, Any] | None = None
    bind: str = "127.0.0.1"
    connect_timeout: float = 10.0
    late_threshold: float = 0.02
    #: Seconds an echo may take before its frame counts as lost.
    grace: float = 0.5
    seed: int | None = None
    #: Start sending audio as soon as a call is connected (off: idle media until set_media(True)).
    media_on_connect: bool = True


class LoadGen:
    """Drives many :class:`LoadClient` calls from one event loop (see the module docstring)."""

    def __init__(self, config: LoadConfig, frames: Sequence[bytes]) -> None:
        self.config = config
        self.frames = frames
        self.certificate = Certificate.generate()
        self.rng = random.Random(config.seed if config.seed is not None else secrets.randbits(64))
        self.calls: list[LoadClient] = []
        self.failed: list[LoadClient] = []
        self.counters: dict[str, int] = {}
        self._protocols: dict[int, _CallProtocol] = {}  # id(call) -> protocol
        self._buckets: list[list[_CallProtocol]] = [[] for _ in range(SLOTS_PER_FRAME)]
        self._timers: list[tuple[float, int, _CallProtocol]] = []
        self._deadline: dict[int, float] = {}
        self._connected: dict[int, asyncio.Future[None]] = {}
        self._index = 0
        self._t0 = 0.0
        self._slot = 0
        self._handle: asyncio.TimerHandle | None = None
        self._http: Any = None
        self.sched_late_max = 0.0  # since the last window reset
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        import aiohttp

        self.loop = asyncio.get_running_loop()
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=30)
        )
        self._t0 = time.monotonic()
        self._slot = 0
        self._arm()

    async def stop(self, hang_up: bool = True) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if hang_up and self._http is not None:
            await asyncio.gather(*(self._hang_up(c) for c in self.calls), return_exceptions=True)
        for proto in list(self._protocols.values()):
            if proto.transport is not None:
                proto.transport.close()
        self._protocols.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- calls ----------------------------------------------------------------------------------

    async def add_call(self) -> LoadClient:
        """Set up one call (POST, ICE, DTLS) and start its media; returns it connected, or with
        ``error`` set (then it is in :attr:`failed`)."""
        loop = asyncio.get_running_loop()
        index = self._index
        self._index += 1
        rng = random.Random(self.rng.getrandbits(64))
        call = LoadClient(self.certificate, time.monotonic(), rng, self.frames,
                          frame_offset=rng.randrange(len(self.frames)), late_threshold=self.config.late_threshold)
        proto = _CallProtocol(self, call)
        try:
            await loop.create_datagram_endpoint(lambda: proto, local_addr=(self.config.bind, 0))
        except OSError as exc:
            call.error = f"socket: {exc}"
            self.failed.append(call)
            return call
        assert proto.transport is not None
        local = proto.transport.get_extra_info("sockname")[:2]
        offer = call.offer_with_candidate((local[0], local[1]), data_channel=self.config.data_channel)
        call.timeline.post = time.monotonic()
        try:
            answer = await self._post(call, offer)
            call.answer(answer, time.monotonic())
        except Exception as exc:  # any HTTP or SDP failure ends this call only
            call.error = f"signaling: {type(exc).__name__}: {exc}"
            proto.transport.close()
            self.failed.append(call)
            return call
        key = id(call)
        self._protocols[key] = proto
        done = loop.create_future()
        self._connected[key] = done
        self._drain(proto)
        try:
            await asyncio.wait_for(done, self.config.connect_timeout)
        except TimeoutError:
            call.error = "connect timeout" + (f" ({call.closed_reason})" if call.closed_reason else "")
        finally:
            self._connected.pop(key, None)
        if call.error is not None:
            self._forget(proto)
            self.failed.append(call)
            await self._hang_up(call)
            return call
        if self.config.data_channel and call.channels is not None:
            with contextlib.suppress(Exception):
                call.open_channel(_EVENTS_CHANNEL, time.monotonic())
                self._drain(proto)
        self.calls.append(call)
        call.media_on = self.config.media_on_connect
        self._buckets[int((index * _GOLDEN) % 1.0 * SLOTS_PER_FRAME)].append(proto)
        return call

    async def ramp(self, count: int, rate: float) -> list[LoadClient]:
        """Add ``count`` calls at ``rate`` new calls per second (setups overlap)."""
        tasks = []
        interval = 1.0 / rate if rate > 0 else 0.0
        start = time.monotonic()
        for i in range(count):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self.add_call()))
        return list(await asyncio.gather(*tasks))

    def set_media(self, on: bool) -> None:
        """Pause or resume sending audio on every call (consent checks go on)."""
        for call in self.calls:
            call.media_on = on

    async def _post(self, call: LoadClient, offer: str) -> str:
        import aiohttp

        headers = {}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        url = self.config.url.rstrip("/") + "/v1/realtime/calls"
        if self.config.session is not None:
            form = aiohttp.FormData()
            form.add_field("sdp", offer, content_type="application/sdp")
            form.add_field("session", json.dumps(self.config.session), content_type="application/json")
            body: Any = form
        else:
            body = offer
            headers["Content-Type"] = "application/sdp"
        async with self._http.post(url, data=body, headers=headers) as resp:
            text = await resp.text()
            if resp.status not in (200, 201):
                raise RuntimeError(f"HTTP {resp.status}: {text[:200]}")
            location = resp.headers.get("Location")
            if location:
                call.url = location if location.startswith("http") else self.config.url.rstrip("/") + location
            return str(text)

    async def _hang_up(self, call: LoadClient) -> None:
        if call.url is None or self._http is None:
            return
        headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
        with contextlib.suppress(Exception):
            async with self._http.delete(call.url, headers=headers) as resp:
                await resp.read()
        call.url = None

    async def hang_up_all(self) -> None:
        """End every call (DELETE) and close its socket."""
        await self.hang_up(self.calls)

    async def hang_up(self, calls: Sequence[LoadClient]) -> None:
        """End these calls (DELETE) and close their sockets; the others go on."""
        ending = {id(c) for c in calls}
        calls = [c for c in self.calls if id(c) in ending]
        self.calls = [c for c in self.calls if id(c) not in ending]
        await asyncio.gather(*(self._hang_up(c) for c in calls), return_exceptions=True)
        for call in calls:
            proto = self._protocols.get(id(call))
            if proto is not None:
                self._forget(proto)

    def _forget(self, proto: _CallProtocol) -> None:
        key = id(proto.call)
        self._protocols.pop(key, None)
        self._deadline.pop(key, None)
        for bucket in self._buckets:
            if proto in bucket:
                bucket.remove(proto)
        if proto.transport is not None:
            proto.transport.close()

    # -- the drain rule and the one timer -------------------------------------------------------

    def _drain(self, proto: _CallProtocol) -> None:
        call = proto.call
        transport = proto.transport
        if transport is not None:
            while (out := call.poll_transmit()) is not None:
                transport.sendto(out[0], out[1])
        key = id(call)
        if call.srtp is not None and call.timeline.keys is None:
            call.timeline.keys = time.monotonic()
        if call.srtp is not None and key in self._connected and not self._connected[key].done():
            self._connected[key].set_result(None)
        deadline = call.poll_timeout()
        if deadline is not None and self._deadline.get(key) != deadline and key in self._protocols:
            self._deadline[key] = deadline
            heapq.heappush(self._timers, (deadline, key, proto))

    def _arm(self) -> None:
        assert self.loop is not None
        at = self._t0 + self._slot * SLOT_SECONDS
        # loop.time() and time.monotonic() are both CLOCK_MONOTONIC here but may differ by an
        # offset; convert once per tick.
        self._handle = self.loop.call_at(self.loop.time() + (at - time.monotonic()), self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        due_slot = int((now - self._t0) / SLOT_SECONDS)
        late = now - (self._t0 + self._slot * SLOT_SECONDS)
        if late > self.sched_late_max:
            self.sched_late_max = late
        buckets = self._buckets
        while self._slot <= due_slot:
            for proto in buckets[self._slot % SLOTS_PER_FRAME]:
                call = proto.call
                if call.media_on and proto.transport is not None:
                    proto.transport.sendto(call.media_packet(time.monotonic()), call.remote)
            self._slot += 1
        timers = self._timers
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            deadline, key, proto = heapq.heappop(timers)
            if self._deadline.get(key) != deadline:
                continue
            del self._deadline[key]
            proto.call.handle_timeout(now)
            self._drain(proto)
        self._arm()

    # -- measurement ----------------------------------------------------------------------------

    def mark(self) -> dict[int, int]:
        """Each live call's next frame index, to open a window (reset the schedule lateness too)."""
        self.sched_late_max = 0.0
        return {id(c): c.frames_sent for c in self.calls}

    def window(self, opened: dict[int, int], start: float, closed: dict[int, int] | None = None) -> WindowStats:
        """Stats of the frames sent between ``opened`` (a :meth:`mark`) and ``closed`` (a later
        mark, or now), for the calls alive at both. Call it ``grace`` seconds after ``closed``."""
        closed = closed if closed is not None else {id(c): c.frames_sent for c in self.calls}
        stats = WindowStats(start=start, end=time.monotonic(), calls=0, sched_late_ms=self.sched_late_max * 1000)
        for call in self.calls:
            key = id(call)
            if key not in opened or key not in closed:
                continue
            sent, lost, late, delays = call.window(opened[key], closed[key])
            stats.calls += 1
            stats.sent += sent
            stats.lost += lost
            stats.late += late
            if lost or late:
                stats.glitched_calls += 1
            if delays:
                delays.sort()
                stats.delays_ms.append(1000 * delays[len(delays) // 2])
                stats.p99_delay_ms.append(1000 * delays[min(len(delays) - 1, int(0.99 * len(delays)))])
                stats.max_late_ms = max(stats.max_late_ms, 1000 * (delays[-1] - delays[0]))
        return stats


# The engine's import surface (voxwire.loadgen.cli and bench/capacity.py import from here).
__all__ = [
    "LoadClient",
    "LoadConfig",
    "LoadGen",
    "WindowStats",
    "across_calls",
    "call_summary",
    "load_frames",
    "percentile",
]
