"""The asyncio shell on uvloop, as ``voxwire serve`` runs it: its clock, and one drain per read batch."""

from __future__ import annotations

import asyncio
import socket
import time

import uvloop

from voxwire.testing.sockets import sockname, udp, until
from voxwire.wire.types import Address

WORK = 0.0005  # seconds each datagram keeps the loop busy


class SlowCore:
    """Records the time it is given for each datagram and takes ``WORK`` seconds over it."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None:
        self.stamps.append(now)
        end = time.monotonic() + WORK
        while time.monotonic() < end:
            pass

    def handle_timeout(self, now: float) -> None:
        pass

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        return None

    def poll_timeout(self) -> float | None:
        return None


def test_each_datagram_of_a_batch_is_stamped_when_it_is_handled() -> None:
    """uvloop reads several queued datagrams per wake-up and its ``loop.time()`` counts whole
    milliseconds: the datagrams of a batch would share a stamp, and RTCP jitter and arrival
    statistics would see a burst where the packets came apart."""

    async def main() -> list[float]:
        core = SlowCore()
        shell = await udp(core)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for i in range(6):  # queued before the loop looks: one batch
                sender.sendto(bytes([i]), sockname(shell))
            await until(lambda: len(core.stamps) == 6)
        assert shell.transport is not None
        shell.transport.close()
        return core.stamps

    stamps = uvloop.run(main())
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) >= WORK * 0.9, gaps  # each stamp is the time of its own turn


def test_the_shell_clock_is_the_loop_clock_s_base_with_sub_millisecond_resolution() -> None:
    async def main() -> tuple[list[float], float]:
        shell = await udp(SlowCore())
        loop = asyncio.get_running_loop()
        readings = []
        for _ in range(10):  # 0.1 ms apart: a millisecond clock repeats itself here
            end = time.monotonic() + 0.0001
            while time.monotonic() < end:
                pass
            readings.append(shell.now())
        loop_now = loop.time()
        assert shell.transport is not None
        shell.transport.close()
        return readings, loop_now

    readings, loop_now = uvloop.run(main())
    assert all(b > a for a, b in zip(readings, readings[1:], strict=False)), readings
    assert abs(loop_now - readings[-1]) < 0.5  # one base: deadlines from shell.now() go to loop.call_at as they are


class EchoCore:
    """Queues each datagram back to its sender; counts drains (each asks for the timeout once)."""

    def __init__(self) -> None:
        self.outbox: list[tuple[bytes, Address]] = []
        self.drains = 0

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None:
        self.outbox.append((data, addr))

    def handle_timeout(self, now: float) -> None:
        pass

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        return self.outbox.pop(0) if self.outbox else None

    def poll_timeout(self) -> float | None:
        self.drains += 1
        return None


def test_a_read_batch_drains_once_and_every_datagram_is_answered() -> None:
    """The datagrams uvloop reads in one wake-up are all handled first, then one drain sends
    every answer (one burst, one timer re-arm, one application hook) -- none is left behind."""

    async def main() -> tuple[int, list[bytes]]:
        core = EchoCore()
        shell = await udp(core)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            for i in range(6):  # queued before the loop looks: one batch
                sender.sendto(bytes([i]), sockname(shell))
            got: list[bytes] = []

            def receive() -> bool:
                try:
                    while True:
                        got.append(sender.recv(16))
                except BlockingIOError:
                    return len(got) == 6

            await until(receive)
        assert shell.transport is not None
        shell.transport.close()
        return core.drains, got

    drains, got = uvloop.run(main())
    assert got == [bytes([i]) for i in range(6)]
    assert drains == 1
