"""What a parsed SDP description holds (:func:`voxwire.wire.sdp.parse_offer`): the offer, its
m-sections (accepted audio, accepted data channel, declined), their codecs and attributes, and the
shared ICE/DTLS transport, as frozen dataclasses. Parsing and the rules for accepting a section
are in :mod:`voxwire.wire.sdp`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Setup = Literal["actpass", "active", "passive"]
AnswerSetup = Literal["active", "passive"]
Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A DTLS certificate fingerprint (RFC 8122 §5): lower-case hash name, upper-case hex pairs."""

    algorithm: str
    value: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """One a=candidate line (RFC 8839 §5.1)."""

    foundation: str
    component: int
    transport: str  # lower case: "udp", "tcp"
    priority: int
    address: str  # an IP literal, or an mDNS name such as "<uuid>.local"
    port: int
    type: str  # host, srflx, prflx, relay
    related_address: str | None = None
    related_port: int | None = None
    tcptype: str | None = None
    generation: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()  # the others: ufrag, network-id, network-cost, ...


@dataclass(frozen=True, slots=True)
class Transport:
    """ICE and DTLS parameters of the accepted (bundled) sections, session-level defaults applied."""

    ice_ufrag: str
    ice_pwd: str
    ice_options: tuple[str, ...]
    fingerprints: tuple[Fingerprint, ...]
    setup: Setup
    candidates: tuple[Candidate, ...]
    end_of_candidates: bool


@dataclass(frozen=True, slots=True)
class RtpCodec:
    """A payload type of an RTP m-line, with its rtpmap, fmtp and rtcp-fb lines."""

    payload_type: int
    encoding: str  # as written: "opus", "PCMU", "telephone-event"
    clock_rate: int
    channels: int
    fmtp: str | None
    rtcp_fb: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Extmap:
    """An RTP header extension mapping (RFC 8285 §8)."""

    id: int
    uri: str
    direction: Direction | None


@dataclass(frozen=True, slots=True)
class SsrcAttribute:
    """An a=ssrc line (RFC 5576 §4.1), e.g. cname."""

    ssrc: int
    name: str
    value: str | None


@dataclass(frozen=True, slots=True)
class SsrcGroup:
    """An a=ssrc-group line (RFC 5576 §4.2), e.g. FID."""

    semantics: str
    ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MediaSection:
    """What every m-section has: its m-line and its mid."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    mid: str | None


@dataclass(frozen=True, slots=True)
class AudioSection(MediaSection):
    """The accepted audio section: Opus is selected, the other codecs are only listed."""

    direction: Direction
    codecs: tuple[RtpCodec, ...]  # in m-line (preference) order
    opus: RtpCodec
    opus_params: Mapping[str, str]  # read-only; minptime, useinbandfec, stereo, ...
    rtcp_rsize: bool
    extmaps: tuple[Extmap, ...]
    ssrcs: tuple[SsrcAttribute, ...]
    ssrc_groups: tuple[SsrcGroup, ...]
    msids: tuple[tuple[str, str | None], ...]  # (stream id, track id) per a=msid (RFC 8830)


@dataclass(frozen=True, slots=True)
class ApplicationSection(MediaSection):
    """The accepted data channel section (RFC 8841)."""

    sctp_port: int
    max_message_size: int  # 0: any size (RFC 8841 §6.1)
    sctp_init: bytes | None  # the offerer's SCTP INIT chunk (SNAP, draft-hancke-tsvwg-snap)


@dataclass(frozen=True, slots=True)
class DeclinedSection(MediaSection):
    """A section the answer declines with port 0 (RFC 3264 §6); `reason` is for logs."""

    reason: str


@dataclass(frozen=True, slots=True)
class Offer:
    """A parsed offer: every m-section in order, the bundle group, and the shared transport."""

    media: tuple[MediaSection, ...]
    bundle: tuple[str, ...]  # the offered BUNDLE group holding the accepted sections, or ()
    transport: Transport
    ice_lite: bool

    @property
    def audio(self) -> AudioSection | None:
        return next((m for m in self.media if isinstance(m, AudioSection)), None)

    @property
    def application(self) -> ApplicationSection | None:
        return next((m for m in self.media if isinstance(m, ApplicationSection)), None)

    @property
    def ice_ufrag(self) -> str:
        return self.transport.ice_ufrag

    @property
    def ice_pwd(self) -> str:
        return self.transport.ice_pwd

    @property
    def fingerprints(self) -> tuple[Fingerprint, ...]:
        return self.transport.fingerprints

    @property
    def setup(self) -> Setup:
        return self.transport.setup

    @property
    def ice_options(self) -> tuple[str, ...]:
        return self.transport.ice_options

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return self.transport.candidates
