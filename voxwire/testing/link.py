"""Virtual time and an in-memory link for two-peer protocol tests.

A :class:`Link` carries datagrams between two endpoints with a configurable one-way delay, jitter,
loss and an MTU check. Nothing sleeps: :func:`run_pair` advances a virtual clock to the earliest
deadline among the peers' timers and the packets in flight, so a test of a 30 s consent timeout
takes microseconds. Randomness comes from a seeded ``random.Random`` so failures reproduce.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from voxwire.wire.types import Address


class Driven(Protocol):
    """The sans-IO driver shape of STYLE.md, as the link needs it."""

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None: ...

    def handle_timeout(self, now: float) -> None: ...

    def poll_transmit(self) -> tuple[bytes, Address] | None: ...

    def poll_timeout(self) -> float | None: ...


class MtuExceeded(AssertionError):
    """A peer sent a datagram larger than the link's MTU."""


@dataclass
class LinkConfig:
    delay: float = 0.010
    jitter: float = 0.0
    loss: float = 0.0
    mtu: int = 1280
    #: optional predicate deciding loss per datagram (overrides ``loss``): f(data, src) -> drop?
    drop: Callable[[bytes, Address], bool] | None = None


@dataclass(order=True)
class _InFlight:
    at: float
    seq: int
    data: bytes = field(compare=False)
    src: Address = field(compare=False)
    dst: Address = field(compare=False)


class Link:
    """Datagrams in flight between addresses, delivered in arrival-time order."""

    def __init__(self, config: LinkConfig | None = None, *, seed: int = 1) -> None:
        self.config = config or LinkConfig()
        self.rng = random.Random(seed)
        self._heap: list[_InFlight] = []
        self._seq = itertools.count()
        self.sent = 0
        self.dropped = 0

    def send(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        cfg = self.config
        if len(data) > cfg.mtu:
            raise MtuExceeded(f"{len(data)} byte datagram from {src} exceeds MTU {cfg.mtu}")
        self.sent += 1
        lost = cfg.drop(data, src) if cfg.drop else self.rng.random() < cfg.loss
        if lost:
            self.dropped += 1
            return
        at = now + cfg.delay + (self.rng.uniform(0, cfg.jitter) if cfg.jitter else 0.0)
        heapq.heappush(self._heap, _InFlight(at, next(self._seq), data, src, dst))

    def next_arrival(self) -> float | None:
        return self._heap[0].at if self._heap else None

    def pop_due(self, now: float) -> Iterable[_InFlight]:
        while self._heap and self._heap[0].at <= now:
            yield heapq.heappop(self._heap)


class Network:
    """Peers at addresses joined by one :class:`Link`, stepped on a virtual clock."""

    def __init__(self, link: Link | None = None, *, start: float = 1000.0) -> None:
        self.link = link or Link()
        self.now = start
        self.peers: dict[Address, Driven] = {}

    def add(self, addr: Address, peer: Driven) -> None:
        self.peers[addr] = peer

    def flush(self) -> None:
        """Move every queued transmit of every peer onto the link."""
        for addr, peer in self.peers.items():
            while (out := peer.poll_transmit()) is not None:
                data, dst = out
                self.link.send(data, addr, dst, self.now)

    def step(self) -> bool:
        """Advance to the earliest deadline and process it. False when nothing is pending."""
        self.flush()
        deadlines = [t for p in self.peers.values() if (t := p.poll_timeout()) is not None]
        arrival = self.link.next_arrival()
        if arrival is not None:
            deadlines.append(arrival)
        if not deadlines:
            return False
        self.now = max(self.now, min(deadlines))
        for pkt in list(self.link.pop_due(self.now)):
            peer = self.peers.get(pkt.dst)
            if peer is not None:
                peer.handle_datagram(pkt.data, pkt.src, self.now)
        for peer in self.peers.values():
            t = peer.poll_timeout()
            if t is not None and t <= self.now:
                peer.handle_timeout(self.now)
        self.flush()
        return True

    def run_until(self, done: Callable[[], bool], *, timeout: float = 60.0) -> None:
        """Step until ``done()`` holds; fail if virtual time passes ``timeout`` first."""
        deadline = self.now + timeout
        while not done():
            if self.now > deadline or not self.step():
                raise AssertionError(f"condition not reached by t={self.now - deadline + timeout:.3f}s")

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, processing everything due on the way."""
        end = self.now + seconds
        while True:
            self.flush()
            deadlines = [t for p in self.peers.values() if (t := p.poll_timeout()) is not None]
            if (a := self.link.next_arrival()) is not None:
                deadlines.append(a)
            nxt = min(deadlines, default=None)
            if nxt is None or nxt > end:
                self.now = end
                return
            self.step()
