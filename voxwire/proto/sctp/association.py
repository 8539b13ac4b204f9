"""One SCTP association over DTLS (RFC 8261) for WebRTC data channels (RFC 8831). Sans-IO.

Theory of operation
-------------------
The association is driven like every voxwire core: :meth:`SctpAssociation.handle_packet` takes one
SCTP packet (one DTLS application-data record, RFC 8261 §5), :meth:`handle_timeout` advances time,
and :meth:`poll_transmit` / :meth:`poll_event` / :meth:`poll_timeout` drain it. Each transmit is one
SCTP packet of at most ``config.mtu`` bytes for one DTLS record. There is one path and no
addresses: DTLS carries the packets, so multi-homing and address parameters do not exist here.

Setup (``handshake.py``). Either side may start (:meth:`connect` sends INIT, RFC 9260 §5.1), and in
WebRTC both usually do; a valid COOKIE ECHO, or a COOKIE ACK for the initiator, establishes the
association. With SNAP (draft-hancke-tsvwg-snap) :meth:`start_snap` takes the peer's INIT from the
SDP and is ESTABLISHED at once. Association restart (§5.2.4 action A) is not supported.

Data. ``send`` queues a message (``send.py``); packets are built in :meth:`poll_transmit`:
control chunks first (COOKIE ECHO leads, RFC 9260 §6.10), then a SACK when one is due (or can
ride along with DATA), FORWARD TSN, RE-CONFIG, HEARTBEAT, then DATA -- retransmissions before new
fragments, within the congestion and receive windows (``retransmit.py``). Received DATA goes to
``recv.py``. INIT, INIT ACK, SHUTDOWN COMPLETE and ABORT travel alone (§6.10).

Timers: T1-init / T1-cookie (§5.1), T3-rtx (§6.3), delayed SACK (§6.2), T2-shutdown (§9.2), the
heartbeat of an idle path (§8.3) and the RE-CONFIG retransmission (RFC 6525 §5.1.1). One
consecutive-error counter (§8.1) counts T3 expiries and unanswered heartbeats; with
``max_retransmits`` set, passing it fails the association.

Errors follow STYLE.md: anything wrong in a received packet (checksum, ports, tag, chunk in the
wrong state) is dropped and counted in :attr:`counters`, never raised; local misuse raises a
:class:`SctpError`; a peer that breaks the protocol is sent an ABORT and the association closes
with a :class:`Closed` event. ``handshake.py`` also answers some bad handshake input.
"""

from __future__ import annotations

import random
from collections import deque

from voxwire.proto.sctp.common import (
    MAX_STREAM_ID,
    TSN_MOD,
    BufferedAmountLow,
    Closed,
    Connected,
    SctpConfig,
    SctpEvent,
    SctpStateError,
    State,
    StreamsReset,
)
from voxwire.proto.sctp.handshake import PRE_ESTABLISHED, Handshake, PeerParams, snap_peer
from voxwire.proto.sctp.heartbeat import Heartbeat
from voxwire.proto.sctp.packetizer import PacketBuilder, fill_data
from voxwire.proto.sctp.reconfig import StreamResetter
from voxwire.proto.sctp.recv import Receiver
from voxwire.proto.sctp.retransmit import RetransmitQueue
from voxwire.proto.sctp.send import SendQueue, make_message
from voxwire.proto.sctp.shutdown import Shutdown
from voxwire.wire import sctp as w
from voxwire.wire.errors import ParseError

__all__ = ["SctpAssociation", "State"]


# Local operations as a table: (operation, state) -> next state. Anything else is SctpStateError.
_API: dict[tuple[str, State], State] = {
    ("connect", State.CLOSED): State.COOKIE_WAIT,
    ("start_snap", State.CLOSED): State.ESTABLISHED,
    ("shutdown", State.ESTABLISHED): State.SHUTDOWN_PENDING,
    ("shutdown", State.SHUTDOWN_PENDING): State.SHUTDOWN_PENDING,
}
_ACCEPTS_SEND = PRE_ESTABLISHED | {State.ESTABLISHED}
_SENDS_DATA = frozenset(
    {State.COOKIE_ECHOED, State.ESTABLISHED, State.SHUTDOWN_PENDING, State.SHUTDOWN_RECEIVED}
)


class SctpAssociation:
    """The SCTP association of one WebRTC session."""

    def __init__(
        self,
        *,
        rng: random.Random,
        config: SctpConfig | None = None,
        local_port: int = 5000,
        remote_port: int = 5000,
        max_message_size: int = 262144,
        remote_max_message_size: int = 262144,
        cookie_key: bytes | None = None,
    ) -> None:
        config = config or SctpConfig()
        if not 0 < max_message_size <= config.receive_window:
            raise ValueError(
                f"max_message_size must be 1..receive_window ({config.receive_window}), got {max_message_size}"
            )
        if remote_max_message_size < 0:
            raise ValueError("remote_max_message_size must be >= 0 (0: no limit, RFC 8841 §6)")
        self._config = config
        self._rng = rng
        self._local_port = local_port
        self._remote_port = remote_port
        self._max_message = max_message_size
        self._remote_max_message = remote_max_message_size or (1 << 62)
        key = cookie_key if cookie_key is not None else rng.randbytes(32)
        self._local_tag = rng.randrange(1, 1 << 32)
        self._local_initial_tsn = rng.randrange(0, 1 << 32)
        self._hs = Handshake(config, self._local_tag, self._local_initial_tsn, key)
        self._state = State.CLOSED
        self._finished = False
        self._now = 0.0
        self._queue = SendQueue(config.send_buffer)
        # Set once the peer is known (the TCB of RFC 9260 §2.5 / §14).
        self._peer_tag: int | None = None
        self._peer_forward_tsn = False
        self._peer_reconfig = False
        self._max_out_stream = MAX_STREAM_ID
        self._rq: RetransmitQueue | None = None
        self._rx: Receiver | None = None
        self._resetter: StreamResetter | None = None
        self._raw: deque[bytes] = deque()
        self._control: list[w.Chunk] = []
        self._events: deque[SctpEvent] = deque()
        self._shutdown = Shutdown()
        self._errors = 0
        self._hb = Heartbeat(config.heartbeat_interval, rng)
        self.counters: dict[str, int] = {}

    # ----------------------------------------------------------------------------------------------
    # Queries

    @property
    def state(self) -> State:
        return self._state

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by :meth:`send` and not yet transmitted once."""
        return self._queue.buffered_amount

    def buffered_amount_of(self, stream_id: int) -> int:
        return self._queue.buffered_amount_of(stream_id)

    def set_buffered_amount_low_threshold(self, stream_id: int, threshold: int) -> None:
        """:class:`BufferedAmountLow` fires when the stream's unsent bytes fall to ``threshold``."""
        self._queue.set_low_threshold(stream_id, threshold)

    @property
    def stats(self) -> dict[str, int]:
        """Drop counters and retransmission figures, merged from the parts."""
        out = dict(self.counters)
        for part in (self._rq, self._rx, self._resetter):
            if part is not None:
                out.update(part.counters)
        out["expired_unsent"] = self._queue.expired
        return out

    @property
    def rto(self) -> float:
        return self._rq.rto.rto if self._rq is not None else self._hs.rto

    @property
    def receive_held(self) -> int:
        """Bytes held for reordering and reassembly (bounded by the receive window)."""
        return self._rx.held if self._rx is not None else 0

    @property
    def srtt(self) -> float | None:
        """Smoothed round-trip time (RFC 6298), once measured."""
        return self._rq.rto.srtt if self._rq is not None else None

    @property
    def cwnd(self) -> int:
        return self._rq.cwnd if self._rq is not None else 0

    def local_init_chunk(self) -> bytes:
        """Our INIT chunk for SNAP's ``a=sctp-init`` (unpadded; base64 it for the SDP)."""
        return w.serialize_chunk(self._hs.init)

    # ----------------------------------------------------------------------------------------------
    # Local operations

    def _transition(self, op: str) -> None:
        nxt = _API.get((op, self._state))
        if nxt is None or self._finished:
            state = "finished" if self._finished else self._state.value
            raise SctpStateError(f"SCTP association in state {state} cannot {op}")
        self._state = nxt

    def connect(self, now: float) -> None:
        """Send INIT (RFC 9260 §5.1 A) and start T1-init."""
        self._now = now
        self._transition("connect")
        self._raw.append(self._packet(0, (self._hs.init,)))
        self._hs.start(now)

    def start_snap(self, remote_init: bytes | w.InitChunk, now: float) -> None:
        """Establish from the peer's INIT signalled in SDP (SNAP); raises ParseError if invalid."""
        peer = snap_peer(remote_init)
        self._now = now
        self._transition("start_snap")
        self._create_tcb(peer)
        self._establish()

    def send(
        self,
        stream_id: int,
        ppid: int,
        data: bytes,
        *,
        now: float,
        ordered: bool = True,
        max_retransmits: int | None = None,
        max_lifetime: float | None = None,
    ) -> None:
        """Queue one message for :meth:`poll_transmit`. ``max_retransmits`` / ``max_lifetime``
        (seconds) make it partially reliable (RFC 3758, RFC 8831 §6.1); at most one of them. Raises
        :class:`SendBufferFull` (back-pressure), :class:`MessageTooLarge`, :class:`StreamClosing`
        or :class:`SctpStateError`."""
        self._now = now
        self._opportunity()
        if self._finished or self._state not in _ACCEPTS_SEND:
            raise SctpStateError(f"SCTP association in state {self._state.value} cannot send")
        if not 0 <= stream_id <= self._max_out_stream:
            raise ValueError(f"stream id {stream_id} outside 0..{self._max_out_stream}")
        if self._rq is not None and not self._peer_forward_tsn:
            max_retransmits = max_lifetime = None  # no FORWARD TSN: the peer could never skip
        max_size = self._remote_max_message
        message = make_message(
            stream_id, ppid, data, ordered, max_retransmits, max_lifetime, self._now, max_size
        )
        self._queue.add(message)

    def reset_streams(self, stream_ids: list[int] | tuple[int, ...], now: float) -> None:
        """Reset our outgoing ``stream_ids`` (RFC 6525 §5.1.2), as closing a data channel does."""
        self._now = now
        self._opportunity()
        if self._finished or self._state is not State.ESTABLISHED or self._resetter is None:
            raise SctpStateError(f"SCTP association in state {self._state.value} cannot reset streams")
        if not self._peer_reconfig:
            raise SctpStateError("the peer did not announce RE-CONFIG support (RFC 6525 §4)")
        ids = tuple(dict.fromkeys(stream_ids))
        for sid in ids:
            if not 0 <= sid <= MAX_STREAM_ID:
                raise ValueError(f"stream id {sid} outside 0..{MAX_STREAM_ID}")
            self._queue.begin_reset(sid)
        self._resetter.request(ids)

    def shutdown(self, now: float) -> None:
        """Graceful close (RFC 9260 §9.2): deliver what is queued, then SHUTDOWN."""
        self._now = now
        self._transition("shutdown")

    def abort(self, reason: str, now: float) -> None:
        """Send ABORT with a User-Initiated Abort cause (RFC 9260 §9.1) and close at once."""
        self._now = now
        if self._finished:
            return
        self._send_abort(w.CAUSE_USER_INITIATED_ABORT, reason.encode()[:256])
        self._close(reason, by_peer=False)

    # ----------------------------------------------------------------------------------------------
    # Input

    def handle_packet(self, data: bytes, now: float) -> None:
        """One SCTP packet from the peer. Never raises for remote input."""
        self._now = now
        self._opportunity()
        if self._finished:
            self._count("after_close")
            return
        try:
            packet = w.parse_packet(data)
        except ParseError:
            self._count("malformed")
            return
        if packet.destination_port != self._local_port or packet.source_port != self._remote_port:
            self._count("bad_port")
            return
        if not self._tag_ok(packet):
            self._count("bad_tag")
            return
        had_data = False
        for chunk in packet.chunks:
            if isinstance(chunk, w.DataChunk):
                had_data = True
            if not self._on_chunk(chunk, now) or self._finished:
                break
        rx = self._rx
        if rx is not None and not self._finished:
            rx.packet_done(had_data, now)
            if rx.overflow:
                self._fail("receive buffer overflow", w.CAUSE_PROTOCOL_VIOLATION)

    def _deliver(self, rx: Receiver) -> None:
        self._events.extend(rx.delivered)
        rx.delivered.clear()

    def _tag_ok(self, packet: w.SctpPacket) -> bool:
        first = packet.chunks[0]
        if isinstance(first, w.InitChunk):  # RFC 9260 §8.5.1 A, §6.10: INIT travels alone with tag 0
            return packet.verification_tag == 0 and len(packet.chunks) == 1
        if isinstance(first, w.AbortChunk | w.ShutdownCompleteChunk) and first.reflected:
            return packet.verification_tag == self._peer_tag  # §8.5.1 B, C: T bit set
        return packet.verification_tag == self._local_tag

    def _on_chunk(self, chunk: w.Chunk, now: float) -> bool:
        """Process one chunk; False stops processing the rest of the packet."""
        rq, rx = self._rq, self._rx
        if isinstance(chunk, w.DataChunk):
            if rx is None or self._state in (State.COOKIE_WAIT, State.CLOSED):
                self._count("data_before_established")
            else:
                rx.on_data(chunk)
                self._deliver(rx)  # before any event a later chunk of this packet causes
        elif isinstance(chunk, w.SackChunk):
            if rq is None or self._state in PRE_ESTABLISHED - {State.COOKIE_ECHOED}:
                self._count("sack_before_established")
            elif not rq.on_sack(chunk, now):
                self._fail("SACK for a TSN never sent", w.CAUSE_PROTOCOL_VIOLATION)
                return False
            else:
                self._after_ack()
        elif isinstance(chunk, w.InitChunk):
            if (refused := self._hs.on_init(chunk, self._state, now)) is not None:
                self._count(refused)
        elif isinstance(chunk, w.InitAckChunk):
            peer = self._hs.on_init_ack(chunk, self._state, now)
            if isinstance(peer, str):
                self._count(peer)
                if self._hs.failure is not None:
                    self._close(self._hs.failure, by_peer=False)
            else:
                self._create_tcb(peer)
                self._state = State.COOKIE_ECHOED
        elif isinstance(chunk, w.CookieEchoChunk):
            self._on_cookie_echo(chunk, now)
        elif isinstance(chunk, w.CookieAckChunk):
            if self._state is State.COOKIE_ECHOED:
                self._establish()
        elif isinstance(chunk, w.HeartbeatChunk):
            self._control.append(w.HeartbeatAckChunk(chunk.info))  # §8.3
        elif isinstance(chunk, w.HeartbeatAckChunk):
            self._on_heartbeat_ack(chunk, now)
        elif isinstance(chunk, w.AbortChunk):
            detail = ", ".join(
                f"cause {c.code}" + (f" {c.info[:64]!r}" if c.info else "") for c in chunk.causes
            )
            self._close(f"peer abort ({detail or 'no cause'})", by_peer=True)
            return False
        elif isinstance(chunk, w.ForwardTsnChunk):
            if rx is not None and self._state not in (State.CLOSED, State.COOKIE_WAIT):
                rx.on_forward_tsn(chunk)
                self._deliver(rx)
        elif isinstance(chunk, w.ReconfigChunk):
            self._on_reconfig(chunk, now)
        elif isinstance(chunk, w.ShutdownChunk | w.ShutdownAckChunk | w.ShutdownCompleteChunk):
            self._on_shutdown_chunk(chunk, now)
        elif isinstance(chunk, w.ErrorChunk):
            self._count("error_chunks")
        elif isinstance(chunk, w.UnknownChunk):
            return self._on_unknown(chunk)
        return True

    def _on_unknown(self, chunk: w.UnknownChunk) -> bool:
        """RFC 9260 §3.2: the two high bits of the type say whether to go on and whether to report."""
        self._count("unknown_chunks")
        if chunk.type & 0x40 and self._peer_tag is not None:
            raw = w.serialize_chunk(chunk)
            self._control.append(w.ErrorChunk((w.ErrorCause(w.CAUSE_UNRECOGNIZED_CHUNK, raw[:512]),)))
        return bool(chunk.type & 0x80)

    # --- handshake (the Handshake part judges INIT, INIT ACK and COOKIE ECHO) ----------------------

    def _on_cookie_echo(self, echo: w.CookieEchoChunk, now: float) -> None:
        peer = self._hs.on_cookie_echo(echo, self._peer_tag, now)
        if isinstance(peer, str):
            self._count(peer)
            return
        if self._peer_tag is None:
            self._create_tcb(peer)
        self._control.append(w.CookieAckChunk())
        if self._state in PRE_ESTABLISHED:
            self._establish()

    def _create_tcb(self, peer: PeerParams) -> None:
        self._peer_tag = peer.tag
        self._peer_forward_tsn = peer.forward_tsn
        self._peer_reconfig = peer.reconfig
        self._max_out_stream = min(MAX_STREAM_ID, peer.inbound_streams - 1)
        self._rq = RetransmitQueue(self._config, self._local_initial_tsn, peer.a_rwnd)
        self._rx = Receiver(self._config, peer.initial_tsn, self._max_message)
        self._resetter = StreamResetter(self._local_initial_tsn, peer.initial_tsn)

    def _establish(self) -> None:
        self._state = State.ESTABLISHED
        self._hs.stop()
        self._hb.schedule(self._now, self.rto)
        self._events.append(Connected())

    # --- acknowledgement, heartbeat, reconfig, shutdown --------------------------------------------

    def _after_ack(self) -> None:
        self._errors = 0  # §8.1: the peer answered, so the path works
        self._hb.schedule(self._now, self.rto)

    def _on_heartbeat_ack(self, chunk: w.HeartbeatAckChunk, now: float) -> None:
        rtt = self._hb.on_ack(chunk.info, now, self.rto)
        if rtt is None or self._rq is None:
            self._count("bad_heartbeat_ack")
            return
        self._errors = 0
        self._rq.rto.sample(rtt)  # §8.3: a HEARTBEAT ACK is an RTT measurement

    def _on_reconfig(self, chunk: w.ReconfigChunk, now: float) -> None:
        resetter, rx = self._resetter, self._rx
        if resetter is None or rx is None or self._state in PRE_ESTABLISHED:
            self._count("reconfig_before_established")
            return
        replies, by_peer, ours = resetter.on_chunk(chunk, rx.cum_tsn, now, self.rto)
        self._control.extend(replies)
        for streams in by_peer:
            rx.reset_streams(streams or None)
            self._events.append(StreamsReset(streams, by_peer=True))
        for streams in ours:
            self._queue.finish_reset(streams)
            self._events.append(StreamsReset(streams, by_peer=False))

    def _on_shutdown_chunk(
        self, chunk: w.ShutdownChunk | w.ShutdownAckChunk | w.ShutdownCompleteChunk, now: float
    ) -> None:
        state, rq = self._state, self._rq
        if isinstance(chunk, w.ShutdownChunk):
            if rq is None or state in PRE_ESTABLISHED:
                self._count("shutdown_before_established")
                return
            rq.on_sack(w.SackChunk(chunk.cumulative_tsn, rq.peer_a_rwnd), now)  # §9.2: acks like a SACK
            self._state = self._shutdown.on_shutdown(state, now, self.rto)
        elif isinstance(chunk, w.ShutdownAckChunk):
            if state in (State.SHUTDOWN_SENT, State.SHUTDOWN_ACK_SENT) and self._peer_tag is not None:
                self._raw.append(self._packet(self._peer_tag, (w.ShutdownCompleteChunk(),)))
                self._close("shutdown", by_peer=False)
        elif state is State.SHUTDOWN_ACK_SENT:
            self._close("shutdown", by_peer=True)

    # ----------------------------------------------------------------------------------------------
    # Time

    def poll_timeout(self) -> float | None:
        """The earliest deadline, or None when nothing is scheduled."""
        if self._finished:
            return None
        deadlines = [self._hs.deadline, self._shutdown.t2, self._hb.deadline]
        if self._rq is not None:
            deadlines.append(self._rq.t3_deadline)
        if self._rx is not None:
            deadlines.append(self._rx.sack_deadline)
        if self._resetter is not None:
            deadlines.append(self._resetter.deadline)
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timeout(self, now: float) -> None:
        self._now = now
        self._opportunity()
        if self._finished:
            return
        if self._hs.deadline is not None and now >= self._hs.deadline:
            if not self._hs.on_timer(now, self._state):
                self._close("handshake timed out", by_peer=False)
            elif self._state is State.COOKIE_WAIT:
                self._raw.append(self._packet(0, (self._hs.init,)))
        if self._shutdown.t2 is not None and now >= self._shutdown.t2:
            self._errors += 1
            if not self._check_errors():
                assert self._rq is not None, "shutdown states have a TCB"
                self._rq.rto.back_off()
                self._shutdown.on_t2(now, self.rto)
        rq, rx = self._rq, self._rx
        if rq is not None and rq.t3_deadline is not None and now >= rq.t3_deadline:
            self._errors += 1
            rq.on_t3_expiry(now)
            self._check_errors()
        if rx is not None and rx.sack_deadline is not None and now >= rx.sack_deadline:
            rx.sack_now = True
            rx.sack_deadline = None
        if self._hb.deadline is not None and now >= self._hb.deadline and not self._finished:
            idle = self._state is State.ESTABLISHED and rq is not None and rq.t3_deadline is None
            if idle:
                self._count("heartbeats_sent")
            if self._hb.on_timer(now, self.rto, idle):
                self._errors += 1  # the last HEARTBEAT went unanswered
                self._check_errors()
        resetter = self._resetter
        if (
            resetter
            and resetter.deadline
            and now >= resetter.deadline
            and self._state is not State.ESTABLISHED
        ):
            resetter.deadline = None  # requests go out only while established

    def _check_errors(self) -> bool:
        limit = self._config.max_retransmits
        if limit is not None and self._errors > limit:
            self._fail("too many retransmissions", w.CAUSE_PROTOCOL_VIOLATION)
            return True
        return False

    # ----------------------------------------------------------------------------------------------
    # Output

    def poll_event(self) -> SctpEvent | None:
        if not self._events and self._queue.low_notices:
            self._events.extend(BufferedAmountLow(s) for s in self._queue.low_notices)
            self._queue.low_notices.clear()
        return self._events.popleft() if self._events else None

    def _opportunity(self) -> None:
        if self._rq is not None:
            self._rq.begin_burst()

    def poll_transmit(self) -> bytes | None:
        """The next SCTP packet to hand to DTLS, or None."""
        if self._hs.replies:  # answers to the peer's handshake chunks, each alone (§6.10)
            tag, reply = self._hs.replies.popleft()
            return self._packet(tag, (reply,))
        if self._raw:
            return self._raw.popleft()
        if self._finished or self._peer_tag is None:
            return None
        rq, rx = self._rq, self._rx
        assert rq is not None and rx is not None, "a peer tag comes with a TCB"
        now = self._now
        if self._queue.empty and rq.empty:
            self._state = self._shutdown.drained(self._state, now, self.rto)
        packet = PacketBuilder(self._config.mtu)
        add = packet.add
        echo = self._hs.cookie_echo()
        if echo is not None and add(echo):
            self._hs.cookie_echo_due = False
        while self._control and add(self._control[0]):
            self._control.pop(0)
        closing = self._shutdown.chunk(self._state, rx.cum_tsn % TSN_MOD) if self._shutdown.due else None
        if closing is not None and add(closing):
            self._shutdown.due = False
        sack = rx.make_sack() if rx.sack_pending and self._state is not State.COOKIE_WAIT else None
        packet.room -= w.chunk_size(sack) if sack is not None else 0
        if rq.forward_tsn_due and self._peer_forward_tsn:
            forward = rq.forward_tsn()
            if forward is not None and not add(forward):
                rq.forward_tsn_due = True
        resetter = self._resetter
        if (
            resetter
            and self._state is State.ESTABLISHED
            and resetter.request_ready(now, self._queue.has_unsent)
        ):
            request = resetter.take_request(now, self.rto, rq.next_tsn - 1, self._queue.has_unsent)
            if request is not None:
                add(w.ReconfigChunk((request,)))
        if self._hb.due and add(self._hb.chunk(now)):
            self._hb.due = False
        # RFC 9260 §5.1 C: before the COOKIE ACK, DATA may only ride with the COOKIE ECHO.
        sends_data = self._state in _SENDS_DATA and (
            self._state is not State.COOKIE_ECHOED or packet.leads_with_cookie
        )
        data = fill_data(rq, self._queue, packet.room, self._config.mtu, now) if sends_data else []
        head = packet.chunks
        if sack is not None and (rx.sack_now or data or head):
            head.insert(1 if packet.leads_with_cookie else 0, sack)
            rx.sack_sent()
        if not head and not data:
            return None
        return self._packet(self._peer_tag, (*head, *data))

    # ----------------------------------------------------------------------------------------------
    # Internals

    def _packet(self, tag: int, chunks: tuple[w.Chunk, ...]) -> bytes:
        return w.serialize_packet(w.SctpPacket(self._local_port, self._remote_port, tag, chunks))

    def _send_abort(self, code: int, info: bytes) -> None:
        if self._peer_tag is not None:
            self._raw.append(self._packet(self._peer_tag, (w.AbortChunk((w.ErrorCause(code, info),)),)))

    def _fail(self, reason: str, code: int) -> None:
        self._send_abort(code, reason.encode())
        self._close(reason, by_peer=False)

    def _close(self, reason: str, *, by_peer: bool) -> None:
        self._finished = True
        self._state = State.CLOSED
        self._hs.stop()
        self._shutdown.stop()
        self._hb.stop()
        self._control.clear()
        self._events.append(Closed(reason, by_peer))

    def _count(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1
