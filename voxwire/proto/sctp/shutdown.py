"""Graceful shutdown, RFC 9260 §9.2: which shutdown chunk is due, and the T2-shutdown timer.

Theory of operation
-------------------
``shutdown()`` moves an established association to SHUTDOWN-PENDING; a received SHUTDOWN moves it
to SHUTDOWN-RECEIVED. Either way queued data is still sent and retransmitted. Once nothing is left
unsent or unacknowledged (:meth:`Shutdown.drained`), the first side sends SHUTDOWN (carrying its
cumulative TSN) and the other SHUTDOWN ACK, each guarded by T2-shutdown; SHUTDOWN ACK is answered
with SHUTDOWN COMPLETE and both sides close. When both shut down at once, a SHUTDOWN received in
SHUTDOWN-SENT is answered with SHUTDOWN ACK (§9.2).
"""

from __future__ import annotations

from voxwire.proto.sctp.common import State
from voxwire.wire import sctp as w

__all__ = ["Shutdown"]

_DRAINED = {State.SHUTDOWN_PENDING: State.SHUTDOWN_SENT, State.SHUTDOWN_RECEIVED: State.SHUTDOWN_ACK_SENT}


class Shutdown:
    def __init__(self) -> None:
        self.due = False
        self.t2: float | None = None

    def drained(self, state: State, now: float, rto: float) -> State:
        """Nothing is left to send or acknowledge: the shutdown chunk of ``state`` goes out."""
        nxt = _DRAINED.get(state)
        if nxt is None:
            return state
        self.due = True
        self.t2 = now + rto
        return nxt

    def on_shutdown(self, state: State, now: float, rto: float) -> State:
        """The peer sent SHUTDOWN."""
        if state in (State.ESTABLISHED, State.SHUTDOWN_PENDING):
            return State.SHUTDOWN_RECEIVED
        if state is State.SHUTDOWN_SENT:  # both sides shut down at once
            self.due = True
            self.t2 = now + rto
            return State.SHUTDOWN_ACK_SENT
        return state

    def on_t2(self, now: float, rto: float) -> None:
        self.due = True
        self.t2 = now + rto

    def chunk(self, state: State, cumulative_tsn: int) -> w.Chunk | None:
        if state is State.SHUTDOWN_SENT:
            return w.ShutdownChunk(cumulative_tsn)
        if state is State.SHUTDOWN_ACK_SENT:
            return w.ShutdownAckChunk()
        return None

    def stop(self) -> None:
        self.due = False
        self.t2 = None
