"""SDP answers (JSEP RFC 9429 §5.3, RFC 3264 offer/answer) for offers parsed by :mod:`voxwire.wire.sdp`.

We answer as an ICE-lite endpoint (``a=ice-lite``) with our host candidates and no trickle, mirror
the offer's m-sections in order (declined ones with port 0, RFC 3264 §6), keep the offerer's Opus
payload type number (RFC 3264 §6.1), and bundle every accepted section on one transport.
"""

from __future__ import annotations

import binascii
import zlib
from dataclasses import dataclass

from voxwire.wire.icechars import ICE_CHARS_RE
from voxwire.wire.sdp import (
    _ANSWER_DIRECTION,
    _DIGEST_SIZES,
    _HEX_PAIRS,
    _STRONG_DIGESTS,
    _TOKEN,
    _URI,
    DEFAULT_SCTP_PORT,
    MAX_SCTP_INIT_SIZE,
    AnswerSetup,
    ApplicationSection,
    AudioSection,
    DeclinedSection,
    Fingerprint,
    Offer,
    Setup,
    _is_ip,
)
from voxwire.wire.types import Address


@dataclass(frozen=True, slots=True)
class AnswerParams:
    """Our side of the answer. Invalid values raise ValueError: that is local misuse."""

    ice_ufrag: str
    ice_pwd: str
    fingerprint: Fingerprint
    setup: AnswerSetup
    candidates: tuple[Address, ...]  # our UDP host candidates, (ip, port), best first
    audio_ssrc: int
    cname: str
    msid_stream: str
    msid_track: str
    session_id: int
    opus_params: tuple[tuple[str, str], ...] = (("minptime", "10"), ("useinbandfec", "1"))
    extmaps: tuple[str, ...] = ()  # header extension URIs we implement; answered with the offer's ids
    sctp_port: int = DEFAULT_SCTP_PORT
    max_message_size: int = 262144
    sctp_init: bytes | None = None  # our INIT chunk; sent only when the offer had a=sctp-init

    def __post_init__(self) -> None:
        checks = {
            "ice_ufrag": 4 <= len(self.ice_ufrag) <= 256 and ICE_CHARS_RE.fullmatch(self.ice_ufrag),
            "ice_pwd": 22 <= len(self.ice_pwd) <= 256 and ICE_CHARS_RE.fullmatch(self.ice_pwd),
            "fingerprint": self.fingerprint.algorithm in _STRONG_DIGESTS
            and _HEX_PAIRS.fullmatch(self.fingerprint.value)
            and len(self.fingerprint.value) == 3 * _DIGEST_SIZES[self.fingerprint.algorithm] - 1,
            "setup": self.setup in ("active", "passive"),
            "candidates": len(self.candidates) <= 64
            and all(_is_ip(ip) and 1 <= port <= 65535 for ip, port in self.candidates),
            "audio_ssrc": 0 <= self.audio_ssrc < 2**32,
            "cname": _TOKEN.fullmatch(self.cname),
            "msid": _TOKEN.fullmatch(self.msid_stream) and _TOKEN.fullmatch(self.msid_track),
            "session_id": 0 <= self.session_id < 2**63,
            "opus_params": all(_TOKEN.fullmatch(k) and _TOKEN.fullmatch(v) for k, v in self.opus_params),
            "extmaps": all(_URI.fullmatch(uri) for uri in self.extmaps),
            "sctp_port": 1 <= self.sctp_port <= 65535,
            "max_message_size": 0 <= self.max_message_size < 2**64,
            "sctp_init": self.sctp_init is None or 0 < len(self.sctp_init) <= MAX_SCTP_INIT_SIZE,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid AnswerParams field(s): {', '.join(bad)}")


def answer_setup(offered: Setup, preferred: AnswerSetup) -> AnswerSetup:
    """The DTLS role to answer (RFC 8842 §5.3): our preference for actpass, else the opposite."""
    if offered == "actpass":
        return preferred
    return "passive" if offered == "active" else "active"


def host_priority(index: int) -> int:
    """RFC 8445 §5.1.2.1 with type preference 126 (host) and component 1; the local preference
    is 65535 for the first candidate and one less for each next one, so priorities stay unique."""
    return (126 << 24) | ((65535 - index) << 8) | (256 - 1)


def build_answer(offer: Offer, params: AnswerParams) -> str:
    """The answer to `offer`: the same m-sections in the same order, the accepted ones bundled."""
    if answer_setup(offer.setup, params.setup) != params.setup:
        raise ValueError(f"a=setup:{params.setup} cannot answer a=setup:{offer.setup} (RFC 8842 §5.3)")
    accepted = [m.mid for m in offer.media if not isinstance(m, DeclinedSection)]
    group = [mid for mid in offer.bundle if mid in accepted]
    lines = ["v=0", f"o=- {params.session_id} 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    lines += ["a=group:BUNDLE " + " ".join(group)] if group else []
    lines += ["a=ice-lite", "a=msid-semantic: WMS *"]
    # Every bundled section carries the same address (RFC 9143 §7.3.1); 9 is JSEP's "no port yet".
    ip, port = params.candidates[0] if params.candidates else ("0.0.0.0", 9)
    for section in offer.media:
        if isinstance(section, DeclinedSection):  # RFC 3264 §6: port 0, any one of the formats
            lines += [f"m={section.kind} 0 {section.proto} {section.formats[0]}", "c=IN IP4 0.0.0.0"]
            lines += [f"a=mid:{section.mid}"] if section.mid is not None else []
            continue
        if isinstance(section, AudioSection):
            lines.append(f"m=audio {port} {section.proto} {section.opus.payload_type}")
        else:
            lines.append(f"m=application {port} UDP/DTLS/SCTP webrtc-datachannel")
        lines.append(f"c=IN {'IP6' if ':' in ip else 'IP4'} {ip}")
        lines += [f"a=mid:{section.mid}"] if section.mid is not None else []
        lines += [
            f"a=ice-ufrag:{params.ice_ufrag}",
            f"a=ice-pwd:{params.ice_pwd}",
            "a=ice-options:ice2",
            f"a=fingerprint:{params.fingerprint.algorithm} {params.fingerprint.value}",
            f"a=setup:{params.setup}",
        ]
        if isinstance(section, AudioSection):
            lines += _audio_lines(section, params)
        elif isinstance(section, ApplicationSection):
            lines += [f"a=sctp-port:{params.sctp_port}", f"a=max-message-size:{params.max_message_size}"]
            if section.sctp_init is not None and params.sctp_init is not None:
                lines.append("a=sctp-init:" + binascii.b2a_base64(params.sctp_init, newline=False).decode())
        lines += candidate_lines(params.candidates)
    return "\r\n".join(lines) + "\r\n"  # RFC 8866 §5: CRLF


def _audio_lines(section: AudioSection, params: AnswerParams) -> list[str]:
    direction = _ANSWER_DIRECTION[section.direction]
    pt = section.opus.payload_type  # RFC 3264 §6.1: the answer keeps the offer's pt number
    lines = [f"a={direction}"]
    sending = direction in ("sendrecv", "sendonly")
    if sending:
        lines.append(f"a=msid:{params.msid_stream} {params.msid_track}")
    lines.append("a=rtcp-mux")
    if section.rtcp_rsize:
        lines.append("a=rtcp-rsize")
    for ext in section.extmaps:
        if ext.uri in params.extmaps:
            suffix = "" if ext.direction is None else "/" + _ANSWER_DIRECTION[ext.direction]
            lines.append(f"a=extmap:{ext.id}{suffix} {ext.uri}")
    lines.append(f"a=rtpmap:{pt} opus/48000/2")
    if params.opus_params:
        lines.append(f"a=fmtp:{pt} " + ";".join(f"{k}={v}" for k, v in params.opus_params))
    if sending:
        lines.append(f"a=ssrc:{params.audio_ssrc} cname:{params.cname}")
    return lines


def candidate_lines(candidates: tuple[Address, ...]) -> list[str]:
    """``a=candidate`` lines for our UDP host candidates, then ``a=end-of-candidates``."""
    lines = []
    for index, (ip, port) in enumerate(candidates):
        foundation = zlib.crc32(f"host udp {ip}".encode()) & 0x7FFFFFFF  # RFC 8445 §5.1.1.3: stable per base
        lines.append(f"a=candidate:{foundation} 1 udp {host_priority(index)} {ip} {port} typ host")
    return lines + ["a=end-of-candidates"]
