"""The one asyncio shell around a sans-IO core that owns a UDP socket.

The drain rule lives here and nowhere else: after feeding the core a datagram or a timeout, send
every queued transmit, hand every event to the application, then re-arm ONE timer at the core's
earliest deadline. Datagrams drain once per read batch: the loop hands over every datagram that
waits on the socket (uvloop reads up to 32 per wake-up), then the drain runs once for them all --
the outbox goes out in one burst and the per-drain work (re-arming the timer, the application's
hook) is paid per batch, not per datagram.

Only this shell reads the clock: :func:`time.monotonic`, the base of the loop's own clock, so
deadlines go to ``loop.call_at`` as they are.

Not ``loop.time()``: under uvloop that is libuv's clock in whole milliseconds. Every datagram of
a batch handled within one millisecond (uvloop reads up to 32 per wake-up) would carry one stamp,
and every time the transceiver keeps would be off by up to a millisecond: the RTCP jitter reported
to the client, packet arrival statistics, setup phase times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from time import monotonic
from typing import Protocol

from voxwire.wire.types import Address

log = logging.getLogger(__name__)

#: Kernel buffer asked for each direction of a shared media socket (the kernel doubles it and
#: caps it at net.core.rmem_max / wmem_max).
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


class Core(Protocol):
    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None: ...

    def handle_timeout(self, now: float) -> None: ...

    def poll_transmit(self) -> tuple[bytes, Address] | None: ...

    def poll_timeout(self) -> float | None: ...


class UdpShell(asyncio.DatagramProtocol):
    """Feeds one core from one socket. ``after_drain`` runs after each drain (the application's
    chance to collect events); it must not block."""

    def __init__(self, core: Core, *, after_drain: Callable[[], object] | None = None) -> None:
        self.core = core
        self.after_drain = after_drain
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._drain_soon = False
        self.send_errors = 0

    def now(self) -> float:
        return monotonic()

    # -- asyncio callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDPTransport is not a subclass of asyncio.DatagramTransport; it has sendto().
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # One socket carries every call: the default ~208 KiB receive buffer overflows when a
            # few browsers burst 256 KiB data channel messages at once (measured drops).
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.core.handle_datagram(data, addr if len(addr) == 2 else (addr[0], addr[1]), monotonic())
        if not self._drain_soon:  # the first of a batch: drain once the loop has read the rest
            self._drain_soon = True
            self.loop.call_soon(self._drain_batch)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable from a client that left) are normal on a shared socket.
        log.debug("udp error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    # -- the drain rule -------------------------------------------------------------------------

    def _drain_batch(self) -> None:
        self._drain_soon = False
        self.drain()

    def drain(self) -> None:
        """Send every transmit, let the application collect events, re-arm the one timer."""
        core = self.core
        transport = self.transport
        if transport is not None:
            sendto = transport.sendto
            while (out := core.poll_transmit()) is not None:
                sendto(out[0], out[1])
        if self.after_drain is not None:
            self.after_drain()
            if transport is not None:  # the application may have queued more (audio, close)
                while (out := core.poll_transmit()) is not None:
                    transport.sendto(out[0], out[1])
        self._rearm(core.poll_timeout())

    def _rearm(self, at: float | None) -> None:
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        # The loop may run a handle up to one clock resolution (uvloop: 1 ms) early: treat it as due.
        now = max(monotonic(), self._timer_at or 0.0)
        self._timer = None
        self._timer_at = None
        self.core.handle_timeout(now)
        self.drain()


async def open_udp(core: Core, host: str, port: int, **kw: Callable[[], object] | None) -> UdpShell:
    loop = asyncio.get_running_loop()
    _, shell = await loop.create_datagram_endpoint(lambda: UdpShell(core, **kw), local_addr=(host, port))
    return shell
