"""WebRTC data channels (RFC 8831) with DCEP (RFC 8832) on top of one SCTP association. Sans-IO.

Theory of operation
-------------------
A :class:`DataChannelManager` owns the :class:`SctpAssociation` and offers the same driver shape
(``handle_packet`` / ``handle_timeout`` / ``poll_transmit`` / ``poll_event`` / ``poll_timeout``);
after each input it turns association events into channel events. One channel is one SCTP stream
id, used in both directions (RFC 8831 §6.5).

Opening. :meth:`open_channel` picks the lowest free stream id of our parity -- even for the DTLS
client, odd for the DTLS server (RFC 8832 §6), so both sides can open channels without colliding --
and sends DATA_CHANNEL_OPEN on it (PPID 50, reliable and ordered). The channel is usable at once:
user messages may follow the OPEN, but are sent ordered until the DATA_CHANNEL_ACK (or any message
from the peer on that stream) arrives (§6). A DATA_CHANNEL_OPEN from the peer creates the channel
with its parameters and is answered with DATA_CHANNEL_ACK. A *negotiated* channel (``negotiated_id``)
was agreed out of band: no DCEP, any id. :class:`ChannelOpen` fires once the association is up.

Messages (RFC 8831 §6.6): strings go as UTF-8 with PPID 51, binary with PPID 53; an empty string or
empty binary message is one zero byte with PPID 56 / 57, since SCTP cannot carry an empty message.
The deprecated partial PPIDs 52 / 54, unknown PPIDs, invalid UTF-8 and messages on streams without a
channel are dropped and counted.

Closing (RFC 8831 §6.7): :meth:`close` resets our outgoing stream; a peer seeing its incoming
stream reset resets its outgoing stream too, and the channel is closed when both directions are
reset; then :class:`ChannelClosed` fires and the id may be reused. When the association closes,
every channel closes with it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from voxwire.proto.sctp import (
    BufferedAmountLow,
    Closed,
    Connected,
    MessageReceived,
    SctpAssociation,
    SctpError,
    State,
    StreamsReset,
)
from voxwire.wire.dcep import DataChannelAck, DataChannelOpen, Ppid, parse_dcep, serialize_dcep
from voxwire.wire.errors import ParseError

__all__ = [
    "ChannelBufferedAmountLow",
    "ChannelClosed",
    "ChannelMessage",
    "ChannelOpen",
    "ChannelStateError",
    "DataChannel",
    "DataChannelEvent",
    "DataChannelManager",
]

_MAX_ID = 65534  # RFC 8831 §6.5: 65535 is reserved


@dataclass(frozen=True, slots=True)
class DataChannel:
    """A channel's negotiated properties (``max_packet_lifetime`` in milliseconds, as in W3C)."""

    id: int
    label: str
    protocol: str = ""
    ordered: bool = True
    max_retransmits: int | None = None
    max_packet_lifetime: int | None = None
    negotiated: bool = False
    priority: int = 256


@dataclass(frozen=True, slots=True)
class ChannelOpen:
    channel: DataChannel


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    channel_id: int
    data: str | bytes


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    channel_id: int


@dataclass(frozen=True, slots=True)
class ChannelBufferedAmountLow:
    channel_id: int


DataChannelEvent = (
    ChannelOpen | ChannelMessage | ChannelClosed | ChannelBufferedAmountLow | Connected | Closed
)


class ChannelStateError(SctpError):
    """The channel does not exist or is not open."""


class _Phase(Enum):
    OPEN = "open"
    CLOSING = "closing"


@dataclass(slots=True)
class _Channel:
    info: DataChannel
    phase: _Phase = _Phase.OPEN
    #: our OPEN has been acknowledged (always true for remote and negotiated channels)
    acked: bool = True
    announced: bool = False
    outgoing_reset: bool = False
    incoming_reset: bool = False


class DataChannelManager:
    """The data channels of one session."""

    def __init__(self, association: SctpAssociation, *, dtls_client: bool) -> None:
        self.association = association
        self._parity = 0 if dtls_client else 1
        self._channels: dict[int, _Channel] = {}
        self._events: deque[DataChannelEvent] = deque()
        self._connected = association.state is State.ESTABLISHED
        self._closed = False
        self._now = 0.0  # of the latest input, for the replies events trigger
        self.counters: dict[str, int] = {}

    # ----------------------------------------------------------------------------------------------
    # Channels

    @property
    def channels(self) -> dict[int, DataChannel]:
        return {cid: ch.info for cid, ch in self._channels.items()}

    def open_channel(
        self,
        label: str,
        *,
        protocol: str = "",
        ordered: bool = True,
        max_retransmits: int | None = None,
        max_packet_lifetime: int | None = None,
        negotiated_id: int | None = None,
        priority: int = 256,
        now: float,
    ) -> DataChannel:
        """Open a channel; DCEP unless ``negotiated_id`` is given (then both sides open it alike)."""
        self._now = now
        if self._closed:
            raise ChannelStateError("the SCTP association is closed")
        open_msg = DataChannelOpen.for_channel(
            label,
            protocol,
            ordered=ordered,
            max_retransmits=max_retransmits,
            max_packet_lifetime=max_packet_lifetime,
            priority=priority,
        )
        serialized = serialize_dcep(open_msg)  # validates label and protocol lengths
        if negotiated_id is not None:
            if not 0 <= negotiated_id <= _MAX_ID or negotiated_id in self._channels:
                raise ValueError(f"channel id {negotiated_id} is out of range or in use")
            cid = negotiated_id
        else:
            cid = self._free_id()
        info = DataChannel(
            cid,
            label,
            protocol,
            ordered,
            max_retransmits,
            max_packet_lifetime,
            negotiated_id is not None,
            priority,
        )
        channel = _Channel(info, acked=negotiated_id is not None)
        if negotiated_id is None:
            self.association.send(cid, Ppid.DCEP, serialized, now=now)
        self._channels[cid] = channel
        self._announce(channel)
        return info

    def _free_id(self) -> int:
        for cid in range(self._parity, _MAX_ID + 1, 2):
            if cid not in self._channels:
                return cid
        raise ChannelStateError("no free stream id for a new data channel")

    def _announce(self, channel: _Channel) -> None:
        if self._connected and not channel.announced:
            channel.announced = True
            self._events.append(ChannelOpen(channel.info))

    def send(self, channel_id: int, data: str | bytes, *, now: float) -> None:
        """Send one message: str as a string, bytes as binary (RFC 8831 §6.6). Raises
        :class:`ChannelStateError`, or the association's back-pressure errors."""
        self._now = now
        channel = self._channels.get(channel_id)
        if channel is None or channel.phase is not _Phase.OPEN:
            raise ChannelStateError(f"data channel {channel_id} is not open")
        if isinstance(data, str):
            payload, ppid = (data.encode("utf-8"), Ppid.STRING) if data else (b"\0", Ppid.STRING_EMPTY)
        else:
            payload, ppid = (bytes(data), Ppid.BINARY) if data else (b"\0", Ppid.BINARY_EMPTY)
        info = channel.info
        lifetime = info.max_packet_lifetime / 1000 if info.max_packet_lifetime is not None else None
        self.association.send(
            channel_id,
            ppid,
            payload,
            ordered=info.ordered or not channel.acked,  # RFC 8832 §6: ordered until the ACK
            max_retransmits=info.max_retransmits,
            max_lifetime=lifetime,
            now=now,
        )

    def close(self, channel_id: int, *, now: float) -> None:
        """Close by resetting our outgoing stream (RFC 8831 §6.7); idempotent."""
        self._now = now
        channel = self._channels.get(channel_id)
        if channel is None or channel.phase is _Phase.CLOSING:
            return
        channel.phase = _Phase.CLOSING
        if self.association.state is State.ESTABLISHED:
            self.association.reset_streams([channel_id], now)
        else:
            self._finish(channel_id)

    def buffered_amount(self, channel_id: int) -> int:
        return self.association.buffered_amount_of(channel_id)

    def set_buffered_amount_low_threshold(self, channel_id: int, threshold: int) -> None:
        self.association.set_buffered_amount_low_threshold(channel_id, threshold)

    # ----------------------------------------------------------------------------------------------
    # Driver shape

    def handle_packet(self, data: bytes, now: float) -> None:
        self._now = now
        self.association.handle_packet(data, now)
        self._pump()

    def handle_timeout(self, now: float) -> None:
        self._now = now
        self.association.handle_timeout(now)
        self._pump()

    def poll_timeout(self) -> float | None:
        return self.association.poll_timeout()

    def poll_transmit(self) -> bytes | None:
        data = self.association.poll_transmit()
        self._pump()
        return data

    def poll_event(self) -> DataChannelEvent | None:
        self._pump()
        return self._events.popleft() if self._events else None

    # ----------------------------------------------------------------------------------------------
    # Association events

    def _pump(self) -> None:
        while (event := self.association.poll_event()) is not None:
            if isinstance(event, MessageReceived):
                self._on_message(event)
            elif isinstance(event, StreamsReset):
                self._on_reset(event)
            elif isinstance(event, BufferedAmountLow):
                channel = self._channels.get(event.stream_id)
                if channel is not None and channel.announced:
                    self._events.append(ChannelBufferedAmountLow(event.stream_id))
            elif isinstance(event, Connected):
                self._connected = True
                self._events.append(event)
                for channel in self._channels.values():
                    self._announce(channel)
            elif isinstance(event, Closed):
                self._closed = True
                for cid in list(self._channels):
                    self._finish(cid)
                self._events.append(event)

    def _on_message(self, event: MessageReceived) -> None:
        sid, ppid, data = event.stream_id, event.ppid, event.data
        if ppid == Ppid.DCEP:
            self._on_dcep(sid, data)
            return
        channel = self._channels.get(sid)
        if channel is None or channel.phase is not _Phase.OPEN:
            self._count("no_channel")
            return
        channel.acked = True  # RFC 8832 §6: a message from the peer implies the ACK
        if ppid == Ppid.STRING:
            try:
                self._events.append(ChannelMessage(sid, data.decode("utf-8")))
            except UnicodeDecodeError:
                self._count("bad_utf8")
        elif ppid == Ppid.BINARY:
            self._events.append(ChannelMessage(sid, data))
        elif ppid == Ppid.STRING_EMPTY:
            self._events.append(ChannelMessage(sid, ""))
        elif ppid == Ppid.BINARY_EMPTY:
            self._events.append(ChannelMessage(sid, b""))
        else:
            self._count("unknown_ppid")

    def _on_dcep(self, sid: int, data: bytes) -> None:
        try:
            message = parse_dcep(data)
        except ParseError:
            self._count("bad_dcep")
            return
        channel = self._channels.get(sid)
        if isinstance(message, DataChannelAck):
            if channel is None:
                self._count("ack_without_channel")
            else:
                channel.acked = True
            return
        if channel is not None:
            self._count("open_for_busy_stream")
            return
        if sid % 2 == self._parity:
            self._count("open_with_our_parity")  # RFC 8832 §6; accepted when the id is free
        info = DataChannel(
            sid,
            message.label,
            message.protocol,
            message.ordered,
            message.max_retransmits,
            message.max_packet_lifetime,
            False,
            message.priority,
        )
        self._channels[sid] = channel = _Channel(info)
        try:
            self.association.send(sid, Ppid.DCEP, serialize_dcep(DataChannelAck()), now=self._now)
        except SctpError:
            self._count("ack_not_sent")
        self._announce(channel)

    def _on_reset(self, event: StreamsReset) -> None:
        ids = event.stream_ids or tuple(self._channels)  # empty: every stream (RFC 6525 §4.1)
        for sid in ids:
            channel = self._channels.get(sid)
            if channel is None:
                continue
            if event.by_peer:
                channel.incoming_reset = True
                if channel.phase is _Phase.OPEN:  # the peer closed: close our direction too
                    channel.phase = _Phase.CLOSING
                    try:
                        self.association.reset_streams([sid], self._now)
                    except SctpError:
                        channel.outgoing_reset = True
            else:
                channel.outgoing_reset = True
            if channel.incoming_reset and channel.outgoing_reset:
                self._finish(sid)

    def _finish(self, channel_id: int) -> None:
        if self._channels.pop(channel_id, None) is not None:
            self._events.append(ChannelClosed(channel_id))

    def _count(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1
