"""Outstanding DATA: acknowledgement, retransmission, congestion control, partial reliability.

Theory of operation
-------------------
Every DATA chunk sent stays in :class:`RetransmitQueue` (in TSN order, TSNs unwrapped to ints)
until the peer's Cumulative TSN Ack passes it. A SACK (RFC 9260 §6.2.1) removes the cumulatively
acknowledged chunks, marks gap-acknowledged ones, and counts a *miss indication* on each
unacknowledged chunk below the highest TSN the SACK newly acknowledged (the HTNA rule of §7.2.4).
The third miss marks a chunk for fast retransmission (once per chunk) and, outside fast recovery,
halves the congestion window (§7.2.4). A T3-rtx expiry (§6.3.3) marks every outstanding chunk for
retransmission, collapses the window to one MTU (§7.2.3) and doubles the RTO (§6.3.3 E2).

Congestion window (§7.2.1, §7.2.2): starts at min(4 MTU, max(2 MTU, 4380)); in slow start a SACK
that advances the cumulative ack while the window was in full use grows it by at most one MTU; in
congestion avoidance it grows by one MTU per window's worth of acknowledged bytes. Flight size
counts chunk bytes (payload + 16-byte header) of chunks in flight: chunks marked for retransmission
leave the flight until they are sent again. The peer's window is the last a_rwnd minus the payload
still in flight (§6.2.1).

RTO (RFC 6298 §2 with RFC 9260 §6.3.1's constants): one RTT sample per round trip, taken from a
chunk transmitted once (Karn's rule, RFC 6298 §3); SRTT/RTTVAR with alpha 1/8, beta 1/4; the result
is clamped to [rto_min, rto_max].

Partial reliability (RFC 3758 §3.5): a chunk due for retransmission whose message was sent
``1 + max_retransmits`` times, or whose lifetime has passed, abandons its whole message. The
Advanced.Peer.Ack.Point then moves over leading abandoned chunks, and while it is ahead of the
cumulative ack a FORWARD TSN names it, with the (stream, SSN) of each skipped ordered message. When
a message is abandoned before its last fragment left, the receiver may already hold every fragment
that did leave, and then no FORWARD TSN would ever be needed -- yet it would keep the fragments and
wait for that SSN forever. So the unsent rest gets one TSN of its own, abandoned at once and never
sent, which forces a FORWARD TSN that skips the message.
Gap-acknowledged chunks are not reneged on: WebRTC receivers never renege (RFC 9260 §6.2 allows
it), so a gap ack is final here.
"""

from __future__ import annotations

from dataclasses import dataclass

from voxwire.proto.sctp.common import TSN_MOD, SctpConfig, unwrap
from voxwire.proto.sctp.send import OutMessage
from voxwire.wire.sctp import DATA_HEADER_SIZE, ForwardTsnChunk, SackChunk

__all__ = ["RetransmitQueue", "RtoEstimator", "Sent"]

_ALPHA = 1 / 8  # RFC 6298 §2.3
_BETA = 1 / 4
_CLOCK_GRANULARITY = 0.001


class RtoEstimator:
    """RFC 6298 §2: smoothed RTT, its variation, and the retransmission timeout."""

    def __init__(self, config: SctpConfig) -> None:
        self._min = config.rto_min
        self._max = config.rto_max
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = config.rto_initial

    def sample(self, rtt: float) -> None:
        rtt = max(rtt, 0.0)
        if self.srtt is None:  # RFC 6298 §2.2
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:  # §2.3
            self.rttvar = (1 - _BETA) * self.rttvar + _BETA * abs(self.srtt - rtt)
            self.srtt = (1 - _ALPHA) * self.srtt + _ALPHA * rtt
        self.rto = min(self._max, max(self._min, self.srtt + max(_CLOCK_GRANULARITY, 4 * self.rttvar)))

    def back_off(self) -> None:
        """RFC 6298 §5.5 / RFC 9260 §6.3.3 E2: double, up to the maximum."""
        self.rto = min(self._max, self.rto * 2)


#: Packets of new data one transmission opportunity may send (RFC 9260 §7.2.4 Max.Burst).
MAX_BURST = 4


@dataclass(eq=False, slots=True)
class Sent:
    """One DATA chunk the peer has not cumulatively acknowledged yet."""

    tsn: int
    message: OutMessage
    data: bytes
    beginning: bool
    end: bool
    sent_at: float
    transmissions: int = 1
    acked: bool = False
    abandoned: bool = False
    retransmit: bool = False
    in_flight: bool = True
    misses: int = 0
    fast_retransmitted: bool = False

    @property
    def size(self) -> int:
        return len(self.data) + DATA_HEADER_SIZE


class RetransmitQueue:
    """Chunks in flight and the sender's congestion state for the one path WebRTC has."""

    def __init__(self, config: SctpConfig, initial_tsn: int, peer_a_rwnd: int) -> None:
        self._mtu = config.mtu
        self._burst_limit = MAX_BURST * config.mtu
        self.rto = RtoEstimator(config)
        self._chunks: list[Sent] = []
        #: Cumulative TSN Ack Point: the highest TSN the peer acknowledged cumulatively
        self.cum_ack = initial_tsn - 1
        #: RFC 3758 §3.5 Advanced.Peer.Ack.Point
        self.adv_ack = initial_tsn - 1
        self.next_tsn = initial_tsn
        self.cwnd = min(4 * self._mtu, max(2 * self._mtu, 4380))  # RFC 9260 §7.2.1
        self.ssthresh = peer_a_rwnd
        self._pba = 0  # partial_bytes_acked, §7.2.2
        self._fast_recovery_exit: int | None = None
        self.peer_a_rwnd = peer_a_rwnd
        self.flight = 0  # bytes of chunks in flight (payload + header)
        self._outstanding_payload = 0
        self._rtt_probe: Sent | None = None
        self._marked = 0  # chunks marked for retransmission
        self._with_policy = 0  # chunks of partially reliable messages (RFC 3758), for abandon_due
        self.t3_deadline: float | None = None
        #: a fast retransmission may go out now, ignoring cwnd for one packet (§7.2.4 step 3)
        self.fast_retransmit_now = False
        self.forward_tsn_due = False
        self.counters = {"retransmitted": 0, "fast_retransmits": 0, "t3_expiries": 0, "abandoned": 0}
        self.last_data_sent: float | None = None

    # ----------------------------------------------------------------------------------------------
    # Queries

    @property
    def empty(self) -> bool:
        """Nothing sent is waiting for its cumulative acknowledgement."""
        return not self._chunks

    @property
    def peer_rwnd(self) -> int:
        return max(0, self.peer_a_rwnd - self._outstanding_payload)

    def begin_burst(self) -> None:
        """A new transmission opportunity (a packet in, a timer, a send): at most
        :data:`MAX_BURST` new packets may leave from here (RFC 9260 §7.2.4's Max.Burst; RFC 4960
        §6.1). Without it a whole congestion window leaves in one burst -- ~55 datagrams within
        0.1 ms for a 64 KiB message -- and overflows the peer's socket buffer; the tail of a message
        lost that way waits a full RTO, since no later packet can trigger fast retransmit."""
        self._burst_limit = self.flight + MAX_BURST * self._mtu

    def may_send(self, payload: int) -> bool:
        """RFC 9260 §6.1 rules A and B: within the peer's window (or a lone probe) and the cwnd,
        and within this opportunity's burst."""
        if self.flight >= min(self.cwnd, self._burst_limit):
            return False
        return payload <= self.peer_rwnd or self.flight == 0

    def to_retransmit(self) -> list[Sent]:
        return [c for c in self._chunks if c.retransmit] if self._marked else []

    # ----------------------------------------------------------------------------------------------
    # Sending

    def sent_new(self, message: OutMessage, data: bytes, beginning: bool, end: bool, now: float) -> Sent:
        """Record a fresh chunk; returns it with its TSN assigned."""
        chunk = Sent(self.next_tsn, message, data, beginning, end, now)
        self.next_tsn += 1
        message.tsns.append(chunk.tsn)
        self._chunks.append(chunk)
        if message.max_retransmits is not None or message.expires is not None:
            self._with_policy += 1
        self._add_flight(chunk)
        if self._rtt_probe is None:
            self._rtt_probe = chunk
        self._after_send(now)
        return chunk

    def resent(self, chunk: Sent, now: float) -> None:
        """``chunk`` (marked for retransmission) went out again."""
        self._unmark(chunk)
        chunk.transmissions += 1
        chunk.sent_at = now
        if self._rtt_probe is chunk:
            self._rtt_probe = None  # Karn: no sample from a retransmitted chunk
        self._add_flight(chunk)
        self.counters["retransmitted"] += 1
        self._after_send(now)

    def _after_send(self, now: float) -> None:
        # RFC 9260 §7.2.1: after an idle period of an RTO, the window shrinks back towards its start.
        if self.last_data_sent is not None and now - self.last_data_sent > self.rto.rto and self.flight == 0:
            self.cwnd = max(self.cwnd // 2, 4 * self._mtu)
        self.last_data_sent = now
        if self.t3_deadline is None:  # §6.3.2 R1
            self.t3_deadline = now + self.rto.rto

    def _add_flight(self, chunk: Sent) -> None:
        chunk.in_flight = True
        self.flight += chunk.size
        self._outstanding_payload += len(chunk.data)

    def _leave_flight(self, chunk: Sent) -> None:
        if chunk.in_flight:
            chunk.in_flight = False
            self.flight -= chunk.size
            self._outstanding_payload -= len(chunk.data)

    # ----------------------------------------------------------------------------------------------
    # Acknowledgement (RFC 9260 §6.2.1, §7.2)

    def on_sack(self, sack: SackChunk, now: float) -> bool:
        """Process a SACK; False when it acknowledges TSNs we never sent (a protocol violation)."""
        cum = unwrap(sack.cumulative_tsn, self.cum_ack, TSN_MOD)
        if cum < self.cum_ack:
            return True  # §6.2.1 D i: an old, reordered SACK
        if cum >= self.next_tsn:
            return False
        flight_before = self.flight
        cum_bytes = 0
        acked_bytes = 0
        htna: int | None = None
        cut = cum - self.cum_ack
        for chunk in self._chunks[:cut]:
            if not chunk.acked and not chunk.abandoned:
                cum_bytes += chunk.size
                htna = chunk.tsn
            self._acknowledge(chunk, now)
            if chunk.message.max_retransmits is not None or chunk.message.expires is not None:
                self._with_policy -= 1
        del self._chunks[:cut]
        cum_advanced = cum > self.cum_ack
        self.cum_ack = cum
        self.adv_ack = max(self.adv_ack, cum)
        acked_bytes = cum_bytes
        for start, end in sack.gap_blocks:
            lo = max(cum + start, cum + 1)
            hi = min(cum + end, self.next_tsn - 1)
            for tsn in range(lo, hi + 1):
                chunk = self._chunks[tsn - cum - 1]
                if not chunk.acked:
                    if not chunk.abandoned:
                        acked_bytes += chunk.size
                    self._acknowledge(chunk, now)
                    htna = tsn if htna is None else max(htna, tsn)
        self.peer_a_rwnd = sack.a_rwnd
        if htna is not None:
            self._count_misses(htna)
        if self._fast_recovery_exit is not None and cum >= self._fast_recovery_exit:
            self._fast_recovery_exit = None
        if cum_advanced and self._fast_recovery_exit is None:
            self._grow_cwnd(cum_bytes, acked_bytes, flight_before)
        if not self._chunks:
            self._pba = 0
            self.t3_deadline = None  # §6.3.2 R2
        elif cum_advanced:
            self.t3_deadline = now + self.rto.rto  # §6.3.2 R3
        self.abandon_due(now)
        return True

    def _acknowledge(self, chunk: Sent, now: float) -> None:
        chunk.acked = True
        self._unmark(chunk)
        self._leave_flight(chunk)
        if chunk is self._rtt_probe:
            self._rtt_probe = None
            if chunk.transmissions == 1:
                self.rto.sample(now - chunk.sent_at)

    def _count_misses(self, htna: int) -> None:
        entered = False
        for chunk in self._chunks:
            if chunk.tsn >= htna:
                break
            if chunk.acked or chunk.abandoned or chunk.fast_retransmitted or chunk.retransmit:
                continue
            chunk.misses += 1
            if chunk.misses >= 3:  # §7.2.4: the third miss indication
                chunk.fast_retransmitted = True
                self._mark(chunk)
                self.counters["fast_retransmits"] += 1
                entered = True
        if entered:
            self.fast_retransmit_now = True
            if self._fast_recovery_exit is None:  # §7.2.4 step 2 (once per recovery)
                self.ssthresh = max(self.cwnd // 2, 4 * self._mtu)
                self.cwnd = self.ssthresh
                self._pba = 0
                self._fast_recovery_exit = self.next_tsn - 1

    def _grow_cwnd(self, cum_bytes: int, acked_bytes: int, flight_before: int) -> None:
        fully_used = flight_before + self._mtu > self.cwnd
        if self.cwnd <= self.ssthresh:  # slow start, §7.2.1
            if fully_used:
                self.cwnd += min(cum_bytes, self._mtu)
        else:  # congestion avoidance, §7.2.2
            self._pba += acked_bytes
            if self._pba >= self.cwnd and fully_used:
                self._pba -= self.cwnd
                self.cwnd += self._mtu

    def _mark(self, chunk: Sent) -> None:
        self._leave_flight(chunk)
        if not chunk.retransmit:
            chunk.retransmit = True
            self._marked += 1

    def _unmark(self, chunk: Sent) -> None:
        if chunk.retransmit:
            chunk.retransmit = False
            self._marked -= 1

    # ----------------------------------------------------------------------------------------------
    # Timeout (RFC 9260 §6.3.3)

    def on_t3_expiry(self, now: float) -> None:
        self.counters["t3_expiries"] += 1
        self.ssthresh = max(self.cwnd // 2, 4 * self._mtu)  # §7.2.3
        self.cwnd = self._mtu
        self._pba = 0
        self._fast_recovery_exit = None
        self.rto.back_off()  # E2
        for chunk in self._chunks:  # E3
            if not chunk.acked and not chunk.abandoned:
                self._mark(chunk)
        self._rtt_probe = None
        self.abandon_due(now)
        self.t3_deadline = None
        if self._chunks and not self.to_retransmit():
            # only abandoned or acked chunks remain: keep the timer for the FORWARD TSN (RFC 3758 C5)
            self.t3_deadline = now + self.rto.rto
            self.forward_tsn_due = self.adv_ack > self.cum_ack

    # ----------------------------------------------------------------------------------------------
    # Partial reliability (RFC 3758 §3.5)

    def abandon_due(self, now: float) -> None:
        """Abandon messages whose chunks are due for retransmission but out of retransmissions or
        lifetime, then advance the Advanced.Peer.Ack.Point."""
        for chunk in self._chunks if self._with_policy else ():
            if chunk.abandoned or chunk.acked:
                continue
            msg = chunk.message
            expired = msg.expires is not None and now >= msg.expires
            spent = (
                chunk.retransmit
                and msg.max_retransmits is not None
                and chunk.transmissions > msg.max_retransmits
            )
            if msg.abandoned or expired or spent:
                self.abandon(msg)
        before = self.adv_ack
        i = self.adv_ack - self.cum_ack
        while i < len(self._chunks) and self._chunks[i].abandoned:
            i += 1
        self.adv_ack = self.cum_ack + i
        if self.adv_ack > before or (self.adv_ack > self.cum_ack and self.forward_tsn_due):
            self.forward_tsn_due = True
        if self.adv_ack > self.cum_ack and self.t3_deadline is None:
            self.t3_deadline = now + self.rto.rto  # resends the FORWARD TSN if it is lost (C5)

    def abandon(self, msg: OutMessage) -> None:
        """Give up on ``msg``: its chunks are never sent again and a FORWARD TSN will skip it."""
        first = not msg.abandoned
        if first:
            msg.abandoned = True
            self.counters["abandoned"] += 1
        if first and msg.tsns and msg.offset < len(msg.data):
            # Fragments are out but the end never left, and the peer may hold all that did: give
            # the unsent rest one TSN, abandoned at once, so a FORWARD TSN must name this message
            # and the receiver drops its fragments and skips its SSN.
            placeholder = Sent(self.next_tsn, msg, b"", False, True, 0.0, transmissions=0, in_flight=False)
            placeholder.abandoned = True
            self.next_tsn += 1
            msg.tsns.append(placeholder.tsn)
            self._chunks.append(placeholder)
            self._with_policy += 1
        base = self.cum_ack + 1
        for tsn in msg.tsns:
            if tsn >= base:
                chunk = self._chunks[tsn - base]
                if not chunk.abandoned:
                    chunk.abandoned = True
                    self._unmark(chunk)
                    self._leave_flight(chunk)
                    if chunk is self._rtt_probe:
                        self._rtt_probe = None

    def forward_tsn(self) -> ForwardTsnChunk | None:
        """The FORWARD TSN to send now, if the Advanced.Peer.Ack.Point is ahead (RFC 3758 C3)."""
        self.forward_tsn_due = False
        if self.adv_ack <= self.cum_ack:
            return None
        last_ssn: dict[int, int] = {}
        for chunk in self._chunks[: self.adv_ack - self.cum_ack]:
            msg = chunk.message
            if msg.ordered:
                last_ssn[msg.stream_id] = msg.ssn  # chunks are in TSN order, so SSNs ascend per stream
        return ForwardTsnChunk(self.adv_ack % TSN_MOD, tuple(sorted(last_ssn.items())))
