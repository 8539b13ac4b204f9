"""The transceiver: turns SDP offers into calls on one shared UDP socket.

Everything per-process is prepared once (the DTLS certificate and its fingerprint, the advertised
candidates), so answering an offer costs parsing, a few random strings and building the answer.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voxwire.agent.base import Agent
from voxwire.media.pipeline import MediaConfig
from voxwire.proto.certificate import Certificate
from voxwire.proto.datachannel import DataChannelManager
from voxwire.proto.dtls import DtlsRole
from voxwire.proto.endpoint import Endpoint
from voxwire.proto.sctp import SctpAssociation, SctpError
from voxwire.proto.session import Session, SessionConfig, SessionParams
from voxwire.realtime.events import EventError, parse_client_event
from voxwire.transceiver.call import Call
from voxwire.voice.session import TurnDetectorFactory
from voxwire.wire.errors import ParseError
from voxwire.wire.icechars import ice_string as random_ice_string
from voxwire.wire.sctp import parse_init_chunk
from voxwire.wire.sdp import AnswerSetup, Fingerprint, Offer, SdpError, parse_offer
from voxwire.wire.sdp_answer import AnswerParams, answer_setup, build_answer

if TYPE_CHECKING:
    from voxwire.agent.vad import VadBatch

log = logging.getLogger(__name__)

#: How many ended call ids are remembered so that a late DELETE is not a 404.
RECENTLY_ENDED = 1000
#: Largest data channel message we accept and announce (a=max-message-size), bytes.
MAX_MESSAGE_SIZE = 262_144
#: Seconds before expiry at which new calls switch to a freshly generated certificate.
CERTIFICATE_RENEW_BEFORE = 86_400.0


def ice_string(length: int) -> str:
    """Random ICE credentials from the OS CSPRNG (one token_bytes call, not one choice per char)."""
    return random_ice_string(length, secrets.token_bytes)


class OfferRejected(ValueError):
    """The offer is well-formed SDP that we cannot serve; the message says why."""


@dataclass(frozen=True)
class TransceiverConfig:
    #: Host candidates put in every answer: the address clients send to (NAT 1:1, later the relay).
    advertised: tuple[tuple[str, int], ...]
    #: Our DTLS role when the offer leaves the choice to us (``a=setup:actpass``). As the DTLS client
    #: we send the ClientHello on the first valid ICE check instead of waiting for the browser's.
    preferred_setup: AnswerSetup = "active"
    #: Most concurrent calls; an offer beyond it gets 503.
    max_calls: int = 1000
    session: SessionConfig = field(default_factory=SessionConfig)
    media: MediaConfig = field(default_factory=MediaConfig)

    def __post_init__(self) -> None:
        if not self.advertised:
            raise ValueError("at least one advertised candidate address is required")
        if self.preferred_setup not in ("active", "passive"):
            raise ValueError(f"preferred_setup must be 'active' or 'passive', not {self.preferred_setup!r}")
        if self.max_calls < 1:
            raise ValueError("max_calls must be at least 1")


class CapacityExceeded(RuntimeError):
    pass


class Transceiver:
    """Owns the endpoint (all calls on one socket) and makes calls from offers."""

    def __init__(
        self,
        config: TransceiverConfig,
        agent: Agent,
        *,
        certificate: Certificate | None = None,
        wallclock_offset: float = 0.0,
        ufrag_factory: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self.agent = agent
        #: Builds a turn detector for server_vad sessions (None: turn detection unavailable).
        self.turn_detector: TurnDetectorFactory | None = None
        self.certificate = certificate or Certificate.generate()
        self.endpoint: Endpoint[Call] = Endpoint()
        self.calls: dict[str, Call] = {}
        self.wallclock_offset = wallclock_offset
        #: Mints each session's server ufrag: random by default, a routing token behind relays.
        self.ufrag_factory = ufrag_factory or (lambda: ice_string(16))
        #: The VAD batch the edge shares among this transceiver's sessions, if any (for metrics).
        self.vad_batch: VadBatch | None = None
        #: Opus encoder complexity of every call, stepped down under load (the edge feeds it).
        self.complexity = config.media.complexity_policy()
        #: One generator for every call's SSRCs, sequence numbers and SCTP tags (secretly seeded;
        #: credentials and ids come from ``secrets``): a Random is 2.9 KB, two per call added up.
        self._rng = random.Random(secrets.randbits(64))
        self._pending: dict[str, Call] = {}
        self._woken: list[Call] = []  # calls whose voice layer has news (wake)
        #: Told when the first call's deferrable work starts waiting (:meth:`run_work`); None:
        #: calls decode input in the datagram's turn and encode frames at their ticks. Set it
        #: before the first call is created.
        self.on_work: Callable[[], None] | None = None
        self._work: deque[Call] = deque()  # calls with work waiting, oldest first
        #: Ids of calls that ended recently: a DELETE racing the call's own end still succeeds.
        self._ended: OrderedDict[str, None] = OrderedDict()

    def create_call(
        self, offer_sdp: str, now: float, *, session: dict[str, Any] | None = None
    ) -> tuple[Call, str]:
        """Parse the offer, create the call, return it with the SDP answer.

        Raises :class:`SdpError` (malformed), :class:`OfferRejected` (unsupported) or
        :class:`CapacityExceeded`.
        """
        if len(self.calls) >= self.config.max_calls:
            raise CapacityExceeded(f"this transceiver is at its limit of {self.config.max_calls} calls")
        offer = parse_offer(offer_sdp)
        self._rotate_certificate(now)
        audio = offer.audio
        if audio is None:
            raise OfferRejected("the offer has no audio section; voxwire needs one Opus audio stream")
        setup = answer_setup(offer.setup, self.config.preferred_setup)
        call_id = "rtc_" + secrets.token_hex(12)
        params = SessionParams(
            local_ufrag=self._fresh_ufrag(),
            local_pwd=ice_string(32),
            remote_ufrag=offer.ice_ufrag,
            remote_fingerprints=tuple((f.algorithm, f.value) for f in offer.fingerprints),
            dtls_role=DtlsRole.CLIENT if setup == "active" else DtlsRole.SERVER,
            opus_pt=audio.opus.payload_type,
            local_ssrc=self._rng.randrange(1, 1 << 32),
            cname=secrets.token_hex(8),
        )
        rtc = Session(
            params,
            self.certificate,
            now,
            self.config.session,
            self._rng,
            self.wallclock_offset,
        )
        channels, our_init = self._data_channels(offer, rtc, now)
        call = Call(
            call_id,
            rtc,
            self.agent,
            self.config.media,
            session_config=self._session_config(session),
            turn_detector=self.turn_detector,
            channels=channels,
            on_command=self._on_command,
            complexity=self.complexity,
            on_wake=self._on_wake,
            on_work=self._on_work if self.on_work is not None else None,
        )
        algo, value = self.certificate.fingerprint
        answer = build_answer(
            offer,
            AnswerParams(
                ice_ufrag=params.local_ufrag,
                ice_pwd=params.local_pwd,
                fingerprint=Fingerprint(algo, value),
                setup=setup,
                candidates=self.config.advertised,
                audio_ssrc=params.local_ssrc,
                cname=params.cname,
                msid_stream=call_id,
                msid_track="audio",
                session_id=self._rng.randrange(1, 1 << 62),
                max_message_size=MAX_MESSAGE_SIZE,
                sctp_init=our_init,
            ),
        )
        self.endpoint.add(call)
        self.calls[call_id] = call
        log.info("call %s created (%s, dtls %s)", call_id, "audio+data" if offer.application else "audio", setup)
        return call, answer

    def restart_ice(self, call_id: str, remote_ufrag: str, now: float) -> tuple[str, str]:
        """ICE restart for a call: fresh local credentials, returned for the answer fragment."""
        call = self.calls[call_id]
        old = call.local_ufrag
        ufrag, pwd = self._fresh_ufrag(), ice_string(32)
        call.session.restart_ice(ufrag, pwd, remote_ufrag, now)
        self.endpoint.rekey(call, old)
        return ufrag, pwd

    def _data_channels(self, offer: Offer, rtc: Session, now: float) -> tuple[DataChannelManager | None, bytes | None]:
        """The SCTP association for an offered application section; with SNAP (``a=sctp-init``)
        it is established from the two INIT chunks right away, skipping the SCTP handshake's
        round trips (draft-hancke-tsvwg-snap). A malformed offered INIT is ignored: then the answer
        carries no ``a=sctp-init`` and the normal handshake runs, as the draft requires."""
        app = offer.application
        if app is None:
            return None, None
        association = SctpAssociation(
            rng=self._rng,
            remote_port=app.sctp_port,
            max_message_size=MAX_MESSAGE_SIZE,
            remote_max_message_size=app.max_message_size,
        )
        our_init = None
        if app.sctp_init is not None:
            try:
                association.start_snap(parse_init_chunk(app.sctp_init), now)
                our_init = association.local_init_chunk()
            except (ParseError, SctpError) as exc:
                log.info("ignoring the offer's a=sctp-init: %s", exc)
        return DataChannelManager(association, dtls_client=rtc.params.dtls_role is DtlsRole.CLIENT), our_init

    def _session_config(self, session: dict[str, Any] | None) -> dict[str, Any]:
        """Validate a session configuration (multipart ``session`` part or client secret) now, so a
        bad one is a 400 on the POST rather than a silent error on a channel not yet open."""
        if not session:
            return {}
        config = {"type": "realtime", **session}
        try:
            parse_client_event(json.dumps({"type": "session.update", "session": config}))
        except EventError as exc:
            raise OfferRejected(f"invalid session configuration: {exc.message} (param {exc.param})") from None
        return config

    def _rotate_certificate(self, now: float) -> None:
        """New calls get a fresh certificate a day before the current one expires; live calls keep
        theirs (each DTLS session holds its own reference)."""
        now_unix = now + self.wallclock_offset
        if now_unix > self.certificate.not_after - CERTIFICATE_RENEW_BEFORE:
            self.certificate = Certificate.generate(now_unix)
            log.info("DTLS certificate renewed (%s)", self.certificate.fingerprint[1][:11])

    def _fresh_ufrag(self) -> str:
        for _ in range(8):  # a repeat is astronomically rare, but a live ufrag must stay unique
            ufrag = self.ufrag_factory()
            if self.endpoint.get(ufrag) is None:
                return ufrag
        raise RuntimeError("ufrag factory keeps repeating live ufrags")

    def end_call(self, call_id: str, now: float, reason: str = "hung up") -> bool:
        call = self.calls.get(call_id)
        if call is None:
            return call_id in self._ended  # it ended on its own a moment ago: nothing left to do
        call.close(now, reason)
        self.endpoint.touch(call)
        return True

    def collect(self) -> list[Call]:
        """Forget calls the endpoint removed (closed by timeout, consent loss, DTLS or hang-up);
        returns them so the application can free what it holds for them."""
        ended = []
        while (removed := self.endpoint.poll_removed()) is not None:
            call = removed.session
            self.calls.pop(call.call_id, None)
            self._pending.pop(call.call_id, None)
            self._ended[call.call_id] = None
            while len(self._ended) > RECENTLY_ENDED:
                self._ended.popitem(last=False)
            ended.append(call)
        return ended

    def take_pending(self) -> list[Call]:
        """Calls whose voice layer queued agent commands since the last call."""
        pending = list(self._pending.values())
        self._pending.clear()
        return pending

    def _on_command(self, call: Call) -> None:
        self._pending[call.call_id] = call

    def _on_wake(self, call: Call) -> None:
        self._woken.append(call)

    def _on_work(self, call: Call) -> None:
        self._work.append(call)
        if len(self._work) == 1 and self.on_work is not None:
            self.on_work()

    @property
    def work_waiting(self) -> int:
        """Calls whose work waits for :meth:`run_work`."""
        return len(self._work)

    def run_work(self, now: float, limit: int) -> int:
        """Run the waiting work (:meth:`Call.work`) of up to ``limit`` calls, oldest first;
        returns how many calls still wait. The caller then drains the socket.

        Receiving a datagram costs tens of microseconds and sending a frame as much; decoding
        input and running the turn detector costs a few hundred, encoding a frame one to two
        hundred. Done in the datagram's turn and at the tick, a burst of fifty callers' packets
        held the loop for ~10 ms and a tick shared by a few calls waited for all their encodes:
        every pacer tick due meanwhile went out late. Done here in small slices, the loop's timers
        (pacing) and tasks (responses) run between the slices and a tick only sends.
        """
        work = self._work
        endpoint = self.endpoint
        for _ in range(min(limit, len(work))):
            call = work.popleft()
            call.work(now)
            endpoint.touch(call)
        return len(work)

    def wake(self, now: float) -> list[Call]:
        """Pump every call whose voice layer had news outside its own datagrams and timers (a
        batched VAD scored its audio); returns them. The caller then drains the socket."""
        woken, self._woken = self._woken, []
        for call in woken:
            if not call.is_closed:
                self.wake_call(call, now)
        return woken

    def wake_call(self, call: Call, now: float) -> None:
        """Let ``call`` act on news from outside its datagrams and timers (agent output, VAD
        decisions) and tell the endpoint it has output; the caller then drains the socket."""
        call.wake(now)
        self.endpoint.touch(call)


__all__ = ["CapacityExceeded", "OfferRejected", "SdpError", "Transceiver", "TransceiverConfig", "ice_string"]
