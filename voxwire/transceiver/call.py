"""A call: one WebRTC :class:`~voxwire.proto.session.Session`, its audio pipeline, its voice layer
and its agent.

The call is what the shared-socket :class:`~voxwire.proto.endpoint.Endpoint` routes to. It keeps the
driver shape of the session and adds two timers of its own: the inbound reorder deadline and the
outbound pacer tick. Inbound audio goes to the agent and the voice layer the moment it is
decodable; every frame the pacer releases is reported to the voice layer (playback tracking).

Agent responses run outside (the asyncio edge): the call queues the voice layer's commands and the
application collects them with :meth:`poll_command`; agent output comes back through
``call.voice`` and the application then calls :meth:`pump`.
"""

from __future__ import annotations

import functools
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from typing import Any

from voxwire.agent.base import Agent, AgentSession, Pcm
from voxwire.media.complexity import ComplexityPolicy
from voxwire.media.pipeline import InboundAudio, MediaConfig, OutboundAudio, SentFrame
from voxwire.proto import sctp
from voxwire.proto.datachannel import ChannelClosed, ChannelMessage, ChannelOpen, DataChannelManager
from voxwire.proto.session import AudioPacket, Closed, Connected, DataReceived, Session, State
from voxwire.realtime.conversation import Conversation, random_ids
from voxwire.voice.session import Command, ResponseInterrupted, TurnDetectorFactory, VoiceSession
from voxwire.wire.types import Address

log = logging.getLogger(__name__)

#: The data channel that carries the OpenAI Realtime events.
EVENTS_CHANNEL = "oai-events"


@dataclass(slots=True)
class CallTimeline:
    """Monotonic times of the setup milestones, for logs, stats and the benchmark."""

    created: float
    first_check: float | None = None
    connected: float | None = None
    first_audio_in: float | None = None
    first_audio_out: float | None = None
    closed: float | None = None


@dataclass(slots=True, eq=False)  # a call is itself: identity, not field-by-field equality
class Call:
    call_id: str
    session: Session
    agent: Agent
    media: MediaConfig = field(default_factory=MediaConfig)
    #: Realtime session configuration from the offer's form or the client secret (validated by the
    #: transceiver), part of the session the call starts with; not kept (read
    #: ``voice.conversation.settings``).
    session_config: InitVar[dict[str, Any] | None] = None
    turn_detector: TurnDetectorFactory | None = None
    #: The data channels, when the offer had an application section.
    channels: DataChannelManager | None = None
    #: Told when the call has agent commands to collect (:meth:`poll_command`).
    on_command: Callable[[Call], None] | None = None
    #: Also get every server event (sideband connections of the application's backend).
    observers: list[Callable[[str], None]] = field(default_factory=list)
    #: The transceiver's encoder complexity policy (None: this call's own, from ``media``).
    complexity: ComplexityPolicy | None = None
    #: Told when the voice layer has news outside a datagram or timer of this call (a batched VAD
    #: scored its audio): the application then calls :meth:`pump` and drains the socket.
    on_wake: Callable[[Call], None] | None = None
    #: Told when the call has work that may wait a few milliseconds: input audio to decode and
    #: hand to the agent, the next outbound frame to encode ahead of its tick. The application
    #: then calls :meth:`work` when it chooses (the transceiver's edge does it in slices, between
    #: the loop's pacer ticks). None: input is decoded in the datagram's turn and frames are
    #: encoded at their ticks.
    on_work: Callable[[Call], None] | None = None
    # Set in __post_init__, declared for slots=True (one Call per call: ~50 bytes less).
    timeline: CallTimeline = field(init=False, repr=False)
    inbound: InboundAudio = field(init=False, repr=False)
    outbound: OutboundAudio = field(init=False, repr=False)
    voice: VoiceSession = field(init=False, repr=False)
    agent_session: AgentSession = field(init=False, repr=False)
    #: An agent session with ``on_packet(payload, rtp_timestamp, now)`` takes the caller's Opus
    #: packets as they arrive, undecoded (``passthrough``); the others get decoded PCM.
    _on_packet: Callable[[bytes, int, float], None] | None = field(init=False, repr=False)
    #: Told at once when a response's playback is cut short (``AgentSession.interrupted``).
    _on_interrupted: Callable[[str, int], None] | None = field(init=False, repr=False)
    close_reason: str | None = field(init=False, repr=False)
    _commands: list[Command] = field(init=False, repr=False)
    _events_channel: int | None = field(init=False, repr=False)
    #: on_work was told and work() has not run since.
    _work_waiting: bool = field(init=False, repr=False)
    counters: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self, session_config: dict[str, Any] | None) -> None:
        rng = self.session.rng
        self.timeline = CallTimeline(created=self.session.now)
        rate = self.agent.sample_rate
        self.inbound = InboundAudio(rate, self.media)
        self.outbound = OutboundAudio(
            rate, self.media, initial_timestamp=rng.randrange(1 << 32), complexity=self.complexity
        )
        # The agent's defaults and the offer's configuration are part of the starting session, which
        # calls configured alike share (not a session.update and a copy per call).
        configs = (getattr(self.agent, "session_defaults", None), session_config)
        conversation = Conversation(
            random_ids(rng.randbytes),
            model=f"voxwire-{self.agent.name}",
            defaults=tuple(json.dumps({**c, "type": "realtime"}, sort_keys=True) for c in configs if c),
        )
        self.voice = VoiceSession(conversation, self.outbound, rate, turn_detector=self.turn_detector)
        if self.on_wake is not None:
            self.voice.on_wake = functools.partial(self.on_wake, self)
        self.agent_session = self.agent.start(self)
        self._on_packet = getattr(self.agent_session, "on_packet", None)
        self._on_interrupted = getattr(self.agent_session, "interrupted", None)
        self.close_reason = None
        self._commands = []
        self._events_channel = None
        self._work_waiting = False
        self.counters = {}

    # -- CallContext (what the agent may do) ----------------------------------------------------

    def play(self, pcm: Pcm, now: float | None = None) -> None:
        """Queue audio outside any response (streaming agents such as echo). Given ``now``, one
        20 ms frame that nothing waits before is encoded and leaves at once, without the queue."""
        if now is not None and (frame := self.outbound.release_now(pcm, now)) is not None:
            self._send_frame(frame, now)
            return
        self.outbound.play(pcm)

    def play_encoded(self, payload: bytes, now: float | None = None) -> None:
        """Queue one 20 ms Opus payload as it is, outside any response (``passthrough``). Given
        ``now``, a payload that nothing waits before leaves at once, without the queue."""
        if now is not None and (frame := self.outbound.release_now(payload, now)) is not None:
            self._send_frame(frame, now)
            return
        self.outbound.play_encoded(payload)

    # -- what the endpoint needs ----------------------------------------------------------------

    # The endpoint asks both after every datagram: one attribute hop each, not two properties.
    @property
    def local_ufrag(self) -> str:
        return self.session.params.local_ufrag

    @property
    def is_closed(self) -> bool:
        return self.session.state is State.CLOSED

    def accepts(self, addr: Address) -> bool:
        return self.session.accepts(addr)

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> bool:
        """Take one datagram; False when it moved no timer of this call and did not close it (a
        pass-through packet that left at once: the session kept its deadline memo, the pacer is
        idle again), so the endpoint need not ask :meth:`poll_timeout` again."""
        if self.timeline.first_check is None:
            self.timeline.first_check = now
        session = self.session
        known = session.deadline_known
        session.handle_datagram(data, addr, now)
        return self._drain_session(now) or not (known and session.deadline_known)

    def handle_timeout(self, now: float) -> None:
        session = self.session
        deadline = session.poll_timeout()
        if deadline is not None and now >= deadline:
            session.handle_timeout(now)
            self._drain_session(now)
        if self.is_closed:
            return
        deadline = self.inbound.poll_timeout()
        if deadline is not None and now >= deadline:
            self.inbound.handle_timeout(now)
            self._feed_agent(now)
        deadline = self.outbound.poll_timeout()
        if deadline is not None and now >= deadline:
            self._send_due(now)
        channels = self.channels
        if channels is not None and self.session.srtp is not None:
            deadline = channels.poll_timeout()
            if deadline is not None and now >= deadline:
                channels.handle_timeout(now)
                self._drain_channels(now)
        self.pump(now)

    def poll_timeout(self) -> float | None:
        session = self.session
        if session.state is State.CLOSED:
            return None
        # Called after every datagram of every call: no list, no generator, few calls.
        best = session.poll_timeout()
        if self._on_packet is None:  # a pass-through call never feeds its inbound pipeline
            deadline = self.inbound.poll_timeout()
            if deadline is not None and (best is None or deadline < best):
                best = deadline
        deadline = self.outbound.pacer.poll_timeout()
        if deadline is not None and (best is None or deadline < best):
            best = deadline
        if self.channels is not None and session.srtp is not None:  # SCTP runs once DTLS is up
            deadline = self.channels.poll_timeout()
            if deadline is not None and (best is None or deadline < best):
                best = deadline
        return best

    def share_transmits(self, outbox: deque[tuple[bytes, Address]]) -> None:
        self.session.share_transmits(outbox)

    def unshare_transmits(self) -> None:
        self.session.unshare_transmits()

    # -- application ----------------------------------------------------------------------------

    def wake(self, now: float) -> None:
        """News from outside this call's datagrams and timers (agent output, turns a batched VAD
        decided): send the frames whose ticks have come -- the first frame of a response leaves
        now, not one timer round trip later -- and move events and commands along."""
        self._send_due_audio(now)
        self.pump(now)

    def work(self, now: float) -> None:
        """Do what :attr:`on_work` announced: decode the input audio that arrived, feed it to the
        agent and the voice layer, send what a streaming agent queued for now, and encode the
        next outbound frame so that its tick only has to encrypt and send it. A frame it sends
        does not queue the call again: the ``prepare`` at the end encodes the next one."""
        self._work_waiting = True  # what this visit announces, this visit does
        try:
            if not self.is_closed:
                self._feed_agent(now)
                if self._send_due_audio(now):
                    self.pump(now)
                self.outbound.prepare()
        finally:
            self._work_waiting = False

    def _announce_work(self) -> None:
        if not self._work_waiting and self.on_work is not None:
            self._work_waiting = True
            self.on_work(self)

    def poll_command(self) -> Command | None:
        """Agent work the voice layer asked for (start or cancel a response)."""
        return self._commands.pop(0) if self._commands else None

    def pump(self, now: float) -> None:
        """Move the voice layer's output along: commands to the application, server events to the
        client's event channel. Call after feeding the voice layer from outside (agent output)."""
        voice = self.voice
        if not voice.has_output():
            return  # the common case, after each frame sent: nothing to move
        while (command := voice.poll_command()) is not None:
            if not isinstance(command, ResponseInterrupted):
                self._commands.append(command)
            elif self._on_interrupted is not None:
                self._on_interrupted(command.response_id, command.audio_end_ms)
        if self._commands and self.on_command is not None:
            self.on_command(self)
        if self._send_server_events(now):
            self._send_sctp()

    def _send_server_events(self, now: float) -> bool:
        """The voice layer's server events onto the oai-events channel; True if any was queued."""
        channel, channels = self._events_channel, self.channels
        sent = False
        while (text := self.voice.poll_server_event()) is not None:
            for observer in self.observers:
                observer(text)
            if channel is None or channels is None:
                self._count("server_event_without_channel")
                continue
            try:
                channels.send(channel, text, now=now)
                sent = True
            except sctp.SctpError:
                self._count("server_event_send_failed")
        return sent

    def _send_sctp(self) -> None:
        channels = self.channels
        if channels is None or self.session.srtp is None:
            return  # SNAP: the association may be up before DTLS; packets wait for keys
        while (packet := channels.poll_transmit()) is not None:
            self.session.send_data(packet)

    def close(self, now: float, reason: str) -> None:
        self.session.close(now, reason)
        self._drain_session(now)

    # -- internals ------------------------------------------------------------------------------

    def _drain_session(self, now: float) -> bool:
        """Act on the session's events; True unless all of them were pass-through audio that
        left at once (:meth:`handle_datagram`: the endpoint then skips this call's deadline)."""
        got_audio = moved = False
        while (event := self.session.poll_event()) is not None:
            if isinstance(event, AudioPacket):
                packet = event.packet
                if self._on_packet is not None:
                    self._on_packet(packet.payload, packet.timestamp, now)
                else:
                    self.inbound.push(packet.sequence_number, packet.payload, now)
                got_audio = True
                continue
            moved = True
            if isinstance(event, Connected):
                self.timeline.connected = now
                self.outbound.start(now)
                log.info("call %s connected (%s)", self.call_id, event.srtp_profile)
                log.debug("call %s client address %s:%d", self.call_id, *event.remote)
                if self.channels is None:
                    self.session.release_dtls()  # DTLS was only for the keys
                else:
                    if self.channels.association.state is sctp.State.CLOSED:
                        self.channels.association.connect(now)  # no SNAP: the INIT handshake
                    self._drain_channels(now)
            elif isinstance(event, DataReceived):
                if self.channels is None:
                    self._count("data_without_channels")
                else:
                    self.channels.handle_packet(event.data, now)
                    self._drain_channels(now)
            elif isinstance(event, Closed):
                self.timeline.closed = now
                self.close_reason = event.reason
                self.agent_session.close()
                log.info("call %s closed: %s", self.call_id, event.reason)
        if got_audio:
            if self.timeline.first_audio_in is None:
                self.timeline.first_audio_in = now
            if self._on_packet is None:  # else the packets went to the agent as they are
                if self.on_work is not None:
                    self._announce_work()  # decoded in work(), out of the datagram's turn
                    return True
                self._feed_agent(now)
                moved = True
            # A streaming agent (echo, passthrough) queued a frame whose tick is already due: send
            # it now rather than through a timer round trip (the pacer decides, as at a timeout).
            # Nothing queued is the pass-through's common case: its frame left as it arrived.
            if self.outbound.pacer.poll_timeout() is not None:
                if self._send_due_audio(now):
                    self.pump(now)
                # A frame that still waits (behind another, or early): the pacer has a deadline.
                moved = moved or self.outbound.pacer.poll_timeout() is not None
        return moved

    def _send_frame(self, frame: SentFrame, now: float) -> None:
        if self.session.send_audio(frame.payload, frame.timestamp, frame.marker, now):
            if self.timeline.first_audio_out is None:
                self.timeline.first_audio_out = now
            if frame.tag is not None:  # only a response's frames concern the voice layer
                self.voice.on_frame_sent(frame)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _drain_channels(self, now: float) -> None:
        """Channel events to the voice layer (or back, on other channels), SCTP packets to DTLS."""
        channels = self.channels
        assert channels is not None
        while (event := channels.poll_event()) is not None:
            if isinstance(event, ChannelOpen):
                if event.channel.label == EVENTS_CHANNEL and self._events_channel is None:
                    self._events_channel = event.channel.id
                    self.voice.open()
                    log.info("call %s: %s channel open", self.call_id, EVENTS_CHANNEL)
            elif isinstance(event, ChannelMessage):
                if event.channel_id == self._events_channel:
                    self.voice.on_client_event(event.data)
                else:
                    self._echo_message(event.channel_id, event.data, now)
            elif isinstance(event, ChannelClosed) and event.channel_id == self._events_channel:
                self._events_channel = None
            elif isinstance(event, sctp.Closed):
                log.info("call %s: data channels closed: %s", self.call_id, event.reason)
        self.pump(now)
        self._send_sctp()

    def _echo_message(self, channel_id: int, data: str | bytes, now: float) -> None:
        """Channels other than oai-events echo what they receive (a diagnostic loopback)."""
        assert self.channels is not None
        try:
            self.channels.send(channel_id, data, now=now)
        except sctp.SctpError:
            self._count("echo_dropped")

    def _feed_agent(self, now: float) -> None:
        pcm = self.inbound.pop_pcm()
        if pcm is not None:
            self.agent_session.on_audio(pcm, now)
            self.voice.on_input_audio(pcm)
            self.pump(now)

    def _send_due_audio(self, now: float) -> bool:
        """Send what the pacer says is due at ``now``, if anything; True if it was. A live
        stream's frame that arrived early for the grid goes now (:meth:`OutboundAudio.catch_up`)."""
        outbound = self.outbound
        if outbound.poll_timeout() is None:
            return False  # nothing queued (a pass-through frame left as it arrived)
        outbound.catch_up(now)
        deadline = outbound.poll_timeout()
        if deadline is None or now < deadline:
            return False
        self._send_due(now)
        return True

    def _send_due(self, now: float) -> None:
        for frame in self.outbound.due(now):
            self._send_frame(frame, now)
        if self.on_work is not None and self.outbound.needs_encoding():
            self._announce_work()  # encode the next frame ahead of its tick
