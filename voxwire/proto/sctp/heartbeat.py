"""HEARTBEAT on the association's one path (RFC 9260 §8.3).

Theory of operation
-------------------
While data is outstanding the T3-rtx timer watches the path; when the path is idle a HEARTBEAT
goes out every HB.interval plus an RTO with +-50% jitter (§8.3). Its Heartbeat Info is a random
nonce and the send time, so the HEARTBEAT ACK that echoes it both proves the peer is there (the
association clears its error counter) and yields an RTT sample (§8.3). An unanswered HEARTBEAT
counts one error when the next one is due, an RTO later.
"""

from __future__ import annotations

import random
import struct

from voxwire.wire.sctp import HeartbeatChunk

__all__ = ["Heartbeat"]

_INFO = struct.Struct("!Qd")  # nonce, send time


class Heartbeat:
    def __init__(self, interval: float, rng: random.Random) -> None:
        self._interval = interval
        self._rng = rng
        self._nonce: int | None = None
        self.deadline: float | None = None
        self.due = False

    def schedule(self, now: float, rto: float) -> None:
        """(Re)arm the idle timer unless a HEARTBEAT is waiting for its answer."""
        if self._nonce is None:
            self.deadline = now + self._interval + rto * (0.5 + self._rng.random())

    def stop(self) -> None:
        self.deadline = None
        self.due = False

    def on_timer(self, now: float, rto: float, idle: bool) -> bool:
        """The timer fired: send a HEARTBEAT if idle. True when the previous one went unanswered."""
        self.deadline = None
        if not idle:
            self._nonce = None
            self.schedule(now, rto)
            return False
        missed = self._nonce is not None
        self._nonce = self._rng.getrandbits(64)
        self.due = True
        self.deadline = now + rto
        return missed

    def chunk(self, now: float) -> HeartbeatChunk:
        return HeartbeatChunk(_INFO.pack(self._nonce or 0, now))

    def on_ack(self, info: bytes, now: float, rto: float) -> float | None:
        """The RTT the HEARTBEAT ACK measures, or None if it answers nothing we sent."""
        if len(info) != _INFO.size or self._nonce is None:
            return None
        nonce, sent = _INFO.unpack(info)
        if nonce != self._nonce:
            return None
        self._nonce = None
        self.schedule(now, rto)
        return float(now - sent)
