"""A call: one WebRTC :class:`~voxwire.proto.session.Session`, its audio pipeline and its agent.

The call is what the shared-socket :class:`~voxwire.proto.endpoint.Endpoint` routes to. It keeps the
driver shape of the session and adds two timers of its own: the inbound reorder deadline and the
outbound pacer tick. Inbound audio goes to the agent the moment it is decodable; agent output is
picked up after every input and every tick, so nothing waits for a separate task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from voxwire.agent.base import Agent
from voxwire.media.pipeline import InboundAudio, MediaConfig, OutboundAudio
from voxwire.proto.session import AudioPacket, Closed, Connected, DataReceived, Session
from voxwire.wire.types import Address

log = logging.getLogger(__name__)


@dataclass
class CallTimeline:
    """Monotonic times of the setup milestones, for logs, stats and the benchmark."""

    created: float
    first_check: float | None = None
    connected: float | None = None
    first_audio_in: float | None = None
    first_audio_out: float | None = None
    closed: float | None = None


@dataclass
class Call:
    call_id: str
    session: Session
    agent: Agent
    media: MediaConfig = field(default_factory=MediaConfig)
    #: Realtime session configuration from the offer's form or the client secret (applied by the
    #: data-channel layer before the first event).
    session_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timeline = CallTimeline(created=self.session.now)
        self.inbound = InboundAudio(self.agent.sample_rate, self.media)
        self.outbound = OutboundAudio(
            self.agent.sample_rate, self.media, initial_timestamp=self.session.rng.randrange(1 << 32)
        )
        self.close_reason: str | None = None

    # -- what the endpoint needs ----------------------------------------------------------------

    @property
    def local_ufrag(self) -> str:
        return self.session.local_ufrag

    @property
    def is_closed(self) -> bool:
        return self.session.is_closed

    def accepts(self, addr: Address) -> bool:
        return self.session.accepts(addr)

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None:
        if self.timeline.first_check is None:
            self.timeline.first_check = now
        self.session.handle_datagram(data, addr, now)
        self._drain_session(now)

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

    def poll_timeout(self) -> float | None:
        if self.is_closed:
            return None
        deadlines = (self.session.poll_timeout(), self.inbound.poll_timeout(), self.outbound.poll_timeout())
        return min((d for d in deadlines if d is not None), default=None)

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        return self.session.poll_transmit()

    # -- application ----------------------------------------------------------------------------

    def close(self, now: float, reason: str) -> None:
        self.session.close(now, reason)
        self._drain_session(now)

    # -- internals ------------------------------------------------------------------------------

    def _drain_session(self, now: float) -> None:
        got_audio = False
        while (event := self.session.poll_event()) is not None:
            if isinstance(event, AudioPacket):
                packet = event.packet
                self.inbound.push(packet.sequence_number, packet.payload, now)
                got_audio = True
            elif isinstance(event, Connected):
                self.timeline.connected = now
                self.outbound.start(now)
                log.info("call %s connected (%s)", self.call_id, event.srtp_profile)
            elif isinstance(event, DataReceived):
                pass  # the data-channel layer is not wired in yet
            elif isinstance(event, Closed):
                self.timeline.closed = now
                self.close_reason = event.reason
                self.agent.close()
                log.info("call %s closed: %s", self.call_id, event.reason)
        if got_audio:
            if self.timeline.first_audio_in is None:
                self.timeline.first_audio_in = now
            self._feed_agent(now)

    def _feed_agent(self, now: float) -> None:
        pcm = self.inbound.pop_pcm()
        if pcm is not None:
            self.agent.on_audio(pcm, now)
        self._pull_agent()

    def _pull_agent(self) -> None:
        out = self.agent.poll_audio()
        if out is not None and len(out):
            self.outbound.play(out)

    def _send_due(self, now: float) -> None:
        self._pull_agent()
        for payload, timestamp, marker in self.outbound.due(now):
            if self.session.send_audio(payload, timestamp, marker, now) and self.timeline.first_audio_out is None:
                self.timeline.first_audio_out = now
