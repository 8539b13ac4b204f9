"""Trickle ICE SDP fragments (RFC 8840, ``application/trickle-ice-sdpfrag``) as WHIP PATCH uses them.

A fragment carries ICE attributes only: optional session-level ``a=ice-ufrag``/``a=ice-pwd``/
``a=ice-options``, then ``m=`` lines each followed by ``a=mid``, ``a=ice-ufrag``/``a=ice-pwd``,
``a=candidate`` and ``a=end-of-candidates`` (RFC 8840 §9, RFC 9725 §4.3). New credentials mean an
ICE restart (RFC 8445 §9). Limits are checked before anything else; errors are :class:`SdpError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from voxwire.wire.icechars import is_ice_string
from voxwire.wire.sdp import Candidate, SdpError, parse_candidate
from voxwire.wire.sdp_answer import candidate_lines

MAX_SDPFRAG_SIZE = 16 * 1024
MAX_SDPFRAG_LINES = 256


@dataclass(frozen=True, slots=True)
class SdpFrag:
    ice_ufrag: str | None
    ice_pwd: str | None
    ice_options: tuple[str, ...]
    mids: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    end_of_candidates: bool


def parse_sdpfrag(text: str) -> SdpFrag:
    if len(text) > MAX_SDPFRAG_SIZE:
        raise SdpError(f"sdpfrag: larger than {MAX_SDPFRAG_SIZE} characters")
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if len(lines) > MAX_SDPFRAG_LINES:
        raise SdpError(f"sdpfrag: more than {MAX_SDPFRAG_LINES} lines")
    ufrag = pwd = None
    options: tuple[str, ...] = ()
    mids: list[str] = []
    candidates: list[Candidate] = []
    end = False
    for number, line in enumerate(lines, 1):
        kind, sep, value = line.partition("=")
        if not sep or len(kind) != 1:
            raise SdpError(f"sdpfrag line {number}: not a '<type>=<value>' line")
        if kind == "m":
            continue
        if kind != "a":
            raise SdpError(f"sdpfrag line {number}: only m= and a= lines belong in a fragment")
        name, _, arg = value.partition(":")
        if name == "ice-ufrag":
            ufrag = _ice_string(arg, 4, f"sdpfrag line {number}: a=ice-ufrag")
        elif name == "ice-pwd":
            pwd = _ice_string(arg, 22, f"sdpfrag line {number}: a=ice-pwd")
        elif name == "ice-options":
            options = tuple(arg.split())
        elif name == "mid":
            mids.append(arg)
        elif name == "candidate":
            candidates.append(parse_candidate(number, arg))
        elif name == "end-of-candidates":
            end = True
        # Other attributes are ignored, as RFC 8840 §9 lets a receiver do.
    if (ufrag is None) != (pwd is None):
        raise SdpError("sdpfrag: a=ice-ufrag and a=ice-pwd must come together")
    return SdpFrag(ufrag, pwd, options, tuple(mids), tuple(candidates), end)


def build_sdpfrag(ice_ufrag: str, ice_pwd: str, mid: str, candidates: tuple[tuple[str, int], ...]) -> str:
    """Our side of an ICE restart (RFC 9725 §4.3.2): new credentials and our host candidates."""
    lines = [
        "a=ice-options:ice2",
        "m=audio 9 UDP/TLS/RTP/SAVPF 0",
        f"a=mid:{mid}",
        f"a=ice-ufrag:{ice_ufrag}",
        f"a=ice-pwd:{ice_pwd}",
        *candidate_lines(candidates),
    ]
    return "\r\n".join(lines) + "\r\n"


def _ice_string(value: str, minimum: int, where: str) -> str:
    if not is_ice_string(value, minimum):
        raise SdpError(f"{where}: must be {minimum}..256 ice-chars (RFC 8839 §5.4)")
    return value
