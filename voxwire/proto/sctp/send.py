"""The outbound message queue: back-pressure, stream sequence numbers and fragmentation.

Theory of operation
-------------------
``send`` appends a whole user message to one FIFO queue; nothing is cut or numbered yet. When the
association builds a packet it asks :meth:`SendQueue.next_fragment` for the next piece that fits:
the head message gets its Stream Sequence Number when its first fragment leaves (RFC 9260 §6.5:
SSNs count ordered messages per stream), and each fragment later gets the next TSN from the
association. The fragments of one message therefore carry consecutive TSNs, which is what a
receiver of DATA (not I-DATA) chunks needs to reassemble them (RFC 9260 §6.9). One FIFO across
streams keeps that invariant trivially; the cost is head-of-line blocking between streams behind a
large message, which RFC 8260's I-DATA would remove (not negotiated by WebRTC stacks today).

Back-pressure: :attr:`SendQueue.buffered_amount` counts the bytes accepted but not yet transmitted
once (the W3C ``bufferedAmount`` meaning). ``add`` refuses a message that would take it past the
configured bound with :class:`SendBufferFull`; each stream has a low-water mark and crossing it
downwards queues a :class:`BufferedAmountLow` notice.

Partial reliability (RFC 3758): a message whose lifetime expired before any fragment left is
dropped from the queue; a message abandoned after some fragments left (its lifetime passed, or the
retransmission queue gave up on a fragment) loses its remaining fragments here, and a FORWARD TSN
tells the receiver to skip it.

Stream reset (RFC 6525 §5.1.2): a stream being reset accepts no new messages; the reset request
may only be sent once everything queued before it has been given TSNs, see :meth:`has_unsent`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from voxwire.proto.sctp.common import SSN_MOD, MessageTooLarge, SendBufferFull, StreamClosing

__all__ = ["OutMessage", "SendQueue", "make_message"]


@dataclass(eq=False, slots=True)
class OutMessage:
    """One user message on its way out, with its partial-reliability policy."""

    stream_id: int
    ppid: int
    data: bytes
    ordered: bool
    max_retransmits: int | None
    expires: float | None
    #: bytes already cut into fragments
    offset: int = 0
    #: assigned when the first fragment leaves (ordered messages only)
    ssn: int = 0
    abandoned: bool = False
    #: TSNs of the fragments sent so far (for abandonment and FORWARD TSN)
    tsns: list[int] = field(default_factory=list)


def make_message(
    stream_id: int,
    ppid: int,
    data: bytes,
    ordered: bool,
    max_retransmits: int | None,
    max_lifetime: float | None,
    now: float,
    max_size: int,
) -> OutMessage:
    """Validate ``send``'s arguments (RFC 8831 §6.1, §6.6) and build the message."""
    if not data:
        raise ValueError("SCTP cannot carry an empty message (RFC 8831 §6.6 uses PPID 56/57 for that)")
    if len(data) > max_size:
        raise MessageTooLarge(f"{len(data)} bytes exceed the peer's max-message-size {max_size}")
    if max_retransmits is not None and max_lifetime is not None:
        raise ValueError("set max_retransmits or max_lifetime, not both (RFC 8831 §6.1)")
    if min(max_retransmits or 0, max_lifetime or 0) < 0:
        raise ValueError("max_retransmits and max_lifetime must be >= 0")
    expires = now + max_lifetime if max_lifetime is not None else None
    return OutMessage(stream_id, ppid, bytes(data), ordered, max_retransmits, expires)


@dataclass(slots=True)
class _Stream:
    next_ssn: int = 0
    buffered: int = 0
    low_threshold: int = 0
    queued: int = 0
    resetting: bool = False


class SendQueue:
    """Messages accepted by ``send`` and not yet fully handed out as fragments."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._queue: deque[OutMessage] = deque()
        self._streams: dict[int, _Stream] = {}
        self.buffered_amount = 0
        #: streams whose buffered amount just fell to their low-water mark, for events
        self.low_notices: list[int] = []
        #: messages dropped unsent because their lifetime expired
        self.expired = 0

    def _stream(self, stream_id: int) -> _Stream:
        s = self._streams.get(stream_id)
        if s is None:
            s = self._streams[stream_id] = _Stream()
        return s

    # ----------------------------------------------------------------------------------------------
    # Producer side

    def add(self, message: OutMessage) -> None:
        """Queue ``message``; raises :class:`SendBufferFull` or :class:`StreamClosing`."""
        stream = self._stream(message.stream_id)
        if stream.resetting:
            raise StreamClosing(f"stream {message.stream_id} is being reset")
        size = len(message.data)
        if self.buffered_amount + size > self._limit:
            raise SendBufferFull(
                f"{size} byte message does not fit: {self.buffered_amount} of {self._limit} bytes buffered"
            )
        self._queue.append(message)
        self.buffered_amount += size
        stream.buffered += size
        stream.queued += 1

    def buffered_amount_of(self, stream_id: int) -> int:
        s = self._streams.get(stream_id)
        return s.buffered if s else 0

    def set_low_threshold(self, stream_id: int, threshold: int) -> None:
        if threshold < 0:
            raise ValueError(f"low-water mark must be >= 0, got {threshold}")
        self._stream(stream_id).low_threshold = threshold

    # ----------------------------------------------------------------------------------------------
    # Consumer side

    @property
    def empty(self) -> bool:
        return not self._queue

    @property
    def head(self) -> OutMessage | None:
        return self._queue[0] if self._queue else None

    def head_remaining(self) -> int:
        """Unsent bytes of the message at the head of the queue (0 when empty)."""
        return len(self._queue[0].data) - self._queue[0].offset if self._queue else 0

    def next_fragment(self, max_payload: int, now: float) -> tuple[OutMessage, bytes, bool, bool] | None:
        """Cut the next fragment of at most ``max_payload`` bytes: (message, data, B, E). Drops
        abandoned and expired heads on the way (RFC 3758 §3.5 A3)."""
        while self._queue:
            msg = self._queue[0]
            if msg.offset == 0 and msg.expires is not None and now >= msg.expires:
                msg.abandoned = True
                self.expired += 1
            if msg.abandoned:
                self._pop_head(len(msg.data) - msg.offset)
                continue
            beginning = msg.offset == 0
            if beginning and msg.ordered:
                stream = self._streams[msg.stream_id]
                msg.ssn = stream.next_ssn
                stream.next_ssn = (stream.next_ssn + 1) % SSN_MOD
            piece = msg.data[msg.offset : msg.offset + max_payload]
            msg.offset += len(piece)
            end = msg.offset >= len(msg.data)
            if end:
                self._pop_head(len(piece))
            else:
                self._consume(msg.stream_id, len(piece))
            return msg, piece, beginning, end
        return None

    def _pop_head(self, remaining: int) -> None:
        msg = self._queue.popleft()
        self._streams[msg.stream_id].queued -= 1
        self._consume(msg.stream_id, remaining)

    def _consume(self, stream_id: int, size: int) -> None:
        stream = self._streams[stream_id]
        before = stream.buffered
        stream.buffered -= size
        self.buffered_amount -= size
        if before > stream.low_threshold >= stream.buffered:
            self.low_notices.append(stream_id)

    # ----------------------------------------------------------------------------------------------
    # Stream reset (RFC 6525)

    def begin_reset(self, stream_id: int) -> None:
        self._stream(stream_id).resetting = True

    def has_unsent(self, stream_id: int) -> bool:
        """True while a message queued on ``stream_id`` still has fragments without a TSN."""
        s = self._streams.get(stream_id)
        return bool(s and s.queued)

    def finish_reset(self, stream_ids: tuple[int, ...]) -> None:
        """The peer performed our reset: SSNs start again at 0 and the streams are usable."""
        for sid in stream_ids:
            s = self._stream(sid)
            s.next_ssn = 0
            s.resetting = False
