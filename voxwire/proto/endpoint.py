"""Many sessions on one UDP socket: a sans-IO demultiplexer.

Theory of operation
-------------------
Every datagram reaching the shared socket is routed in two steps (the order str0m and pion's UDPMux
use too):

1. **Known remote address.** Once a session's ICE agent has validated a client address, every
   datagram from that address goes to that session, whatever its kind. One dict lookup.
2. **STUN USERNAME.** A datagram from an unknown address is only considered when it is a STUN
   message; the local half of its USERNAME (``serverUfrag:clientUfrag``, RFC 8445 §7.2.2) names the
   session. If that session validates the check, the address is learned for step 1.

Everything else is dropped and counted by reason in :attr:`Endpoint.counters`. Nothing from an
unknown address can create state: sessions are only made by signaling (:meth:`add`).

The endpoint merges its sessions' timers with a heap of ``(deadline, ufrag)`` entries refreshed
whenever a session is touched, so :meth:`poll_timeout` is O(1) and :meth:`handle_timeout` touches only
the sessions that are due. A datagram touches its session unless the session says it moved nothing
the endpoint keeps (``handle_datagram`` returns False: a pass-through media packet that left at
once), which spares a deadline computation per packet; ``tests/conftest.py`` checks after every
poll of every test that each kept deadline is still the session's own.

Its sessions queue their datagrams on one shared outbox (``share_transmits``), in the order they
made them: :meth:`poll_transmit` is one ``popleft``, not a walk over the sessions a datagram
touched (3 Python calls fewer per media packet, cProfile).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from voxwire.wire import stun
from voxwire.wire.types import Address


class Demuxable(Protocol):
    """What the endpoint needs of a session (a :class:`~voxwire.proto.session.Session` or a call
    that wraps one)."""

    @property
    def local_ufrag(self) -> str: ...

    def accepts(self, addr: Address) -> bool: ...

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> bool:
        """Take one datagram; False when it moved nothing the endpoint keeps (the session's
        deadline and closed state are what they were), so it need not ask them again."""
        ...

    def handle_timeout(self, now: float) -> None: ...

    def poll_timeout(self) -> float | None: ...

    def share_transmits(self, outbox: deque[tuple[bytes, Address]]) -> None: ...

    def unshare_transmits(self) -> None: ...

    @property
    def is_closed(self) -> bool: ...


S = TypeVar("S", bound=Demuxable)


@dataclass(frozen=True, slots=True)
class SessionRemoved(Generic[S]):
    """A closed session was taken out of the endpoint; the application frees what it holds."""

    session: S


class Endpoint(Generic[S]):
    """Routes datagrams of one socket to sessions and merges their transmits and timers."""

    def __init__(self) -> None:
        self._by_ufrag: dict[str, S] = {}
        self._by_addr: dict[Address, S] = {}
        self._addrs_of: dict[str, set[Address]] = {}
        self._timers: list[tuple[float, str]] = []
        self._deadline: dict[str, float | None] = {}
        self._dirty: deque[S] = deque()
        self._outbox: deque[tuple[bytes, Address]] = deque()
        self._removed: deque[SessionRemoved[S]] = deque()
        self.counters: dict[str, int] = {}

    # -- sessions -------------------------------------------------------------------------------

    def add(self, session: S) -> None:
        ufrag = session.local_ufrag
        if ufrag in self._by_ufrag:
            raise ValueError(f"a session with ufrag {ufrag!r} already exists")
        self._by_ufrag[ufrag] = session
        self._addrs_of[ufrag] = set()
        session.share_transmits(self._outbox)
        self._touch(session)

    def rekey(self, session: S, old_ufrag: str) -> None:
        """The session's local ufrag changed (ICE restart): route by the new one, keep its addresses."""
        ufrag = session.local_ufrag
        if ufrag in self._by_ufrag:
            raise ValueError(f"a session with ufrag {ufrag!r} already exists")
        if self._by_ufrag.get(old_ufrag) is not session:
            raise KeyError(f"no session with ufrag {old_ufrag!r}")
        del self._by_ufrag[old_ufrag]
        self._by_ufrag[ufrag] = session
        self._addrs_of[ufrag] = self._addrs_of.pop(old_ufrag)
        self._deadline.pop(old_ufrag, None)  # its heap entries go stale; _touch re-arms the timer
        self._touch(session)

    def get(self, ufrag: str) -> S | None:
        return self._by_ufrag.get(ufrag)

    def __len__(self) -> int:
        return len(self._by_ufrag)

    def __iter__(self) -> Iterator[S]:
        return iter(self._by_ufrag.values())

    def poll_removed(self) -> SessionRemoved[S] | None:
        return self._removed.popleft() if self._removed else None

    # -- driver shape ---------------------------------------------------------------------------

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None:
        session = self._by_addr.get(addr)
        if session is None:
            session = self._route_new(data)
            if session is None:
                return
            session.handle_datagram(data, addr, now)
            if session.accepts(addr) and not session.is_closed:
                self._by_addr[addr] = session
                self._addrs_of[session.local_ufrag].add(addr)
        elif not session.handle_datagram(data, addr, now):
            return  # media that moved no timer (most datagrams of a pass-through call)
        self._dirty.append(session)  # _touch(), inlined: this runs per datagram

    def handle_timeout(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, ufrag = heapq.heappop(timers)
            session = self._by_ufrag.get(ufrag)
            if session is None or self._deadline.get(ufrag) != deadline:
                continue  # stale heap entry
            self._deadline[ufrag] = None
            session.handle_timeout(now)
            self._touch(session)

    def poll_timeout(self) -> float | None:
        self._settle()
        timers = self._timers
        while timers:
            deadline, ufrag = timers[0]
            if self._deadline.get(ufrag) == deadline and ufrag in self._by_ufrag:
                return deadline
            heapq.heappop(timers)
        return None

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        outbox = self._outbox
        if outbox:
            return outbox.popleft()
        if self._dirty:  # all sent: refresh the touched sessions' timers, collect the closed
            self._settle()
        return None

    def touch(self, session: S) -> None:
        """Tell the endpoint the application acted on ``session`` (sent audio, closed it...)."""
        self._touch(session)

    # -- internals ------------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _route_new(self, data: bytes) -> S | None:
        if not stun.is_stun(data):
            self._count("drop_unknown_source")
            return None
        username = stun.peek_username(data)
        if username is None:
            self._count("drop_stun_without_username")
            return None
        local, sep, _ = username.partition(b":")
        if not sep:
            self._count("drop_stun_bad_username")
            return None
        session = self._by_ufrag.get(local.decode("ascii", "replace"))
        if session is None:
            self._count("drop_stun_unknown_ufrag")
        return session

    def _touch(self, session: S) -> None:
        self._dirty.append(session)

    def _settle(self) -> None:
        """Refresh timers and removals for sessions touched since the last poll."""
        dirty = self._dirty
        while dirty:
            self._after_drain(dirty.popleft())

    def _after_drain(self, session: S) -> None:
        ufrag = session.local_ufrag
        if ufrag not in self._by_ufrag:
            return
        if session.is_closed:
            del self._by_ufrag[ufrag]
            for addr in self._addrs_of.pop(ufrag, ()):
                self._by_addr.pop(addr, None)
            self._deadline.pop(ufrag, None)
            session.unshare_transmits()  # what it queued is in the outbox; later datagrams are not
            self._removed.append(SessionRemoved(session))
            return
        deadline = session.poll_timeout()
        if deadline != self._deadline.get(ufrag):
            self._deadline[ufrag] = deadline
            if deadline is not None:
                heapq.heappush(self._timers, (deadline, ufrag))
