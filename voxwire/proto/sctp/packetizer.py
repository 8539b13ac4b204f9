"""Which DATA chunks go into the packet being built (RFC 9260 §6.1).

Theory of operation
-------------------
Retransmissions go first (§6.1 C); while any remain, no new data is sent. A fast retransmission
may exceed the congestion window for one packet (§7.2.4 step 3); otherwise every chunk needs room
in the cwnd (rule B: flight size below cwnd) and in the peer's window (rule A: the peer's rwnd, or
nothing in flight, which makes the chunk a zero-window probe). New fragments are cut to the room
left in the packet, at most MTU - 28 bytes of payload, and a fragment that would have to be cut
short to share a packet with earlier DATA waits for the next packet instead.
"""

from __future__ import annotations

from voxwire.proto.sctp.common import TSN_MOD
from voxwire.proto.sctp.retransmit import RetransmitQueue
from voxwire.proto.sctp.send import OutMessage, SendQueue
from voxwire.wire import sctp as w

__all__ = ["PacketBuilder", "fill_data"]


class PacketBuilder:
    """Control chunks of one packet, within ``mtu`` (the common header counted)."""

    def __init__(self, mtu: int) -> None:
        self.room = mtu - w.HEADER_SIZE
        self.chunks: list[w.Chunk] = []

    def add(self, chunk: w.Chunk) -> bool:
        size = w.chunk_size(chunk)
        if size > self.room:
            return False
        self.chunks.append(chunk)
        self.room -= size
        return True

    @property
    def leads_with_cookie(self) -> bool:
        return bool(self.chunks) and isinstance(self.chunks[0], w.CookieEchoChunk)


def _padded(n: int) -> int:
    return w.DATA_HEADER_SIZE + (n + 3) // 4 * 4


def data_chunk(message: OutMessage, tsn: int, data: bytes, beginning: bool, end: bool) -> w.DataChunk:
    ssn = message.ssn if message.ordered else 0  # the SSN of an unordered chunk is ignored (§3.3.1)
    return w.DataChunk(
        tsn % TSN_MOD, message.stream_id, ssn, message.ppid, data, not message.ordered, beginning, end
    )


def fill_data(rq: RetransmitQueue, queue: SendQueue, room: int, mtu: int, now: float) -> list[w.DataChunk]:
    """DATA chunks for ``room`` bytes of packet, recording them as sent."""
    rq.abandon_due(now)
    out: list[w.DataChunk] = []
    fast = rq.fast_retransmit_now
    rq.fast_retransmit_now = False
    for chunk in rq.to_retransmit():
        size = _padded(len(chunk.data))
        if size > room or not (fast or rq.may_send(len(chunk.data))):
            return out
        room -= size
        rq.resent(chunk, now)
        out.append(data_chunk(chunk.message, chunk.tsn, chunk.data, chunk.beginning, chunk.end))
    max_payload = mtu - w.HEADER_SIZE - w.DATA_HEADER_SIZE
    head = queue.head
    if head is not None and head.offset and head.expires is not None and now >= head.expires:
        rq.abandon(head)  # RFC 3758 §3.5 A3: the rest of a partly sent message expired too
    while not queue.empty:
        payload = min(max_payload, (room - w.DATA_HEADER_SIZE) & ~3)
        wanted = min(queue.head_remaining(), max_payload)
        if payload <= 0 or (wanted > payload and out):
            break
        if rq.flight >= rq.cwnd or (rq.peer_rwnd < wanted and rq.flight > 0):
            break  # §6.1 rules B and A
        piece = queue.next_fragment(payload, now)
        if piece is None:
            break
        message, fragment, beginning, end = piece
        sent = rq.sent_new(message, fragment, beginning, end, now)
        room -= _padded(len(fragment))
        out.append(data_chunk(message, sent.tsn, fragment, beginning, end))
    return out
