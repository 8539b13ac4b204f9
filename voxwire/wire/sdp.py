"""SDP offers from WebRTC clients, and voxwire's answers (JSEP RFC 9429, RFC 8866, RFC 3264).

Theory of operation: an offer lists m-sections. We accept at most two of them, the first enabled
audio section (it must carry Opus) and the first data channel section, and decline every other one
with port 0 (RFC 3264 §6), so the answer mirrors the offer's order and mids. The accepted sections
share one transport (BUNDLE, RFC 8843): one ICE ufrag/pwd, one DTLS fingerprint and role, one port.

`parse_offer` works in passes: bound the text (size, line count) and check each line's syntax, group
the lines into the session block and one block per m-section, then read each block's attributes,
with a session-level value as the default of a media-level one (RFC 8866 §5). `voxwire.wire.sdp_answer.build_answer` is a
pure function of the parsed offer and our `AnswerParams`. Errors are `SdpError`; each message names
the line or section and the problem, is safe to send back to an HTTP client, and never quotes the
ICE password. The parsed shapes (`Offer`, its sections and transport) are frozen dataclasses in
`voxwire.wire.sdp_types`, re-exported here.

Decisions:
* Fingerprints: every a=fingerprint line is kept, but at least one must use sha-256, sha-384 or
  sha-512; sha-1 and md5 alone are refused (RFC 8122 §5 makes SHA-256 the baseline, and every
  current client offers it).
* a=setup absent means "active" (RFC 4145 §4.1); holdconn is refused (nothing to hold for us).
* An offer from an ICE-lite agent is refused: voxwire is ICE-lite too, and it needs the client's
  connectivity checks to learn and authenticate its address (RFC 8445 §2.5).
* When audio and a data channel are both accepted they must share one a=group:BUNDLE; voxwire
  runs one transport per call. Their transport parameters are those of the first accepted mid of
  the group (the answerer BUNDLE-tag, RFC 8843 §7.3.1); other sections' copies are not read.
* The first enabled audio section must be usable (SRTP profile, rtcp-mux, opus/48000/2), else the
  offer is refused: declining the voice of a voice call would be a silent fallback. Later audio
  sections, video and unknown kinds are declined.
* The legacy data channel form (`DTLS/SCTP 5000` + a=sctpmap) is refused with a clear reason:
  Chromium, Firefox and aiortc all offer `UDP/DTLS/SCTP webrtc-datachannel` (RFC 8841).
* The answer never carries a=ice-options:trickle: an ICE-lite agent learns the client's address
  from its checks, so remote candidates are not needed, and all of ours are in the answer, closed
  by a=end-of-candidates. It says ice2 (RFC 8839 §5.6): we follow RFC 8445.
* Bundled sections of the answer all carry the same port (RFC 9143 §7.3.1 and JSEP §5.3.1, as
  Chromium answers), never port 0 with a=bundle-only.
"""

import binascii
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from voxwire.wire.errors import ParseError
from voxwire.wire.icechars import ICE_CHARS_RE
from voxwire.wire.sdp_types import (
    AnswerSetup,
    ApplicationSection,
    AudioSection,
    Candidate,
    DeclinedSection,
    Direction,
    Extmap,
    Fingerprint,
    MediaSection,
    Offer,
    RtpCodec,
    Setup,
    SsrcAttribute,
    SsrcGroup,
    Transport,
)

MAX_SDP_SIZE = 64 * 1024  # characters; real offers are 1-6 KB
MAX_SDP_LINES = 1024
MAX_MEDIA_SECTIONS = 64
DEFAULT_SCTP_PORT = 5000  # RFC 8841 §5.2
DEFAULT_MAX_MESSAGE_SIZE = 65536  # RFC 8841 §6.1: the size to assume when the attribute is absent
MAX_SCTP_INIT_SIZE = 4096

_DIRECTIONS: tuple[Direction, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")
_SETUPS: dict[str, Setup] = {"actpass": "actpass", "active": "active", "passive": "passive"}
_ANSWER_DIRECTION: dict[Direction, Direction] = {  # RFC 3264 §6.1
    "sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive",
}
_DIGEST_SIZES = {"md2": 16, "md5": 16, "sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}
_STRONG_DIGESTS = ("sha-256", "sha-384", "sha-512")
_RTP_PROTOS = ("UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP", "RTP/SAVPF", "RTP/SAVP")  # JSEP §5.1.3
_STATIC_PAYLOADS = {pt: (name, 8000, 1) for pt, name in  # RFC 3551 §6
                    ((0, "PCMU"), (3, "GSM"), (4, "G723"), (8, "PCMA"), (9, "G722"), (13, "CN"), (18, "G729"))}

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 8866 §9 token
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,252}")
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")
_URI = re.compile(r"[!-~]+")  # printable ASCII, no space
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class SdpError(ParseError):
    """An offer we cannot read or cannot accept; the message names the line or section and why."""



# ---------------------------------------------------------------------------------------- parsing


def parse_offer(text: str) -> Offer:
    """Parse and check a client's offer; raise SdpError naming the problem if we cannot accept it."""
    offer = parse_description(text)
    if offer.ice_lite:
        raise SdpError("a=ice-lite: the offerer is an ICE-lite agent; voxwire is ICE-lite too and needs "
                       "the client's connectivity checks (RFC 8445 §2.5)")
    return offer


def parse_description(text: str) -> Offer:
    """Parse with every structural check of `parse_offer` but no offer-only policy, so that an
    answer from `build_answer` (ICE-lite, setup active/passive) reads back too."""
    session, blocks = _blocks(_lines(text))
    mids = _mids(blocks)
    groups = _bundle_groups(session, mids)
    grouped = {mid for group in groups for mid in group}
    sections: list[MediaSection] = []
    accepted: list[_Block] = []
    for block in blocks:
        section = _section(session, block, accepted, grouped)
        if not isinstance(section, DeclinedSection):
            accepted.append(block)
        sections.append(section)
    if not accepted:
        raise SdpError("the offer has no audio m-section and no data channel m-section "
                       "(m=application ... UDP/DTLS/SCTP webrtc-datachannel) to accept")
    bundle = _bundle_of(accepted, groups)
    tag = next((b for mid in bundle for b in accepted if b.mid == mid), accepted[0])
    ice_lite = session.one("ice-lite") is not None
    return Offer(tuple(sections), bundle, _transport(session, tag), ice_lite)


_Base = tuple[str, int, str, tuple[str, ...], str | None]  # MediaSection's fields, in order


@dataclass(slots=True)
class _Block:
    """The session block, or one m-section's lines: (line number, attribute name, value)."""

    lineno: int
    where: str
    fields: tuple[str, ...]  # the m-line's fields; () for the session block
    attrs: list[tuple[int, str, str | None]]
    mid: str | None = None

    def values(self, name: str) -> list[tuple[int, str]]:
        return [(n, value or "") for n, key, value in self.attrs if key == name]

    def one(self, name: str) -> tuple[int, str] | None:
        found = self.values(name)
        if len(found) > 1:
            raise SdpError(f"line {found[1][0]}: a={name} appears twice in {self.where}")
        return found[0] if found else None


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _error(lineno: int, what: str, problem: str) -> SdpError:
    return SdpError(f"line {lineno}: {what}: {problem}")


def _number(text: str, low: int, high: int, lineno: int, what: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 20 and low <= int(text) <= high):
        raise _error(lineno, what, f"{_show(text)} is not a number in {low}..{high}")
    return int(text)


def _words(text: str) -> list[str]:
    return [word for word in text.split(" ") if word]


def _lines(text: str) -> list[tuple[int, str, str]]:
    """Bound the text, then split it into (line number, type letter, value); CRLF or LF."""
    if len(text) > MAX_SDP_SIZE:
        raise SdpError(f"the SDP is {len(text)} characters long; the limit is {MAX_SDP_SIZE}")
    if text.split("\n", 1)[0].rstrip("\r") != "v=0":
        raise SdpError("not an SDP description: the first line must be 'v=0' (RFC 8866 §5.1)")
    if text.count("\n") > MAX_SDP_LINES:
        raise SdpError(f"the SDP has more than {MAX_SDP_LINES} lines")
    lines = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line:
            continue  # the final line break, or a stray blank line
        control = _CONTROL.search(line)
        if control:  # named by code point only: the line may hold the ICE password
            raise SdpError(f"line {number}: control character U+{ord(control.group()):04X}")
        if len(line) < 2 or line[1] != "=" or not "a" <= line[0] <= "z":
            raise SdpError(f"line {number}: expected '<letter>=<value>', got {_show(line)}")
        lines.append((number, line[0], line[2:]))
    return lines


def _blocks(lines: list[tuple[int, str, str]]) -> tuple[_Block, list[_Block]]:
    """Group lines into the session block and the m-section blocks (RFC 8866 §5)."""
    session = _Block(1, "the session", (), [])
    blocks: list[_Block] = []
    current = session
    for number, kind, value in lines:
        if kind == "m":
            if len(blocks) == MAX_MEDIA_SECTIONS:
                raise SdpError(f"line {number}: more than {MAX_MEDIA_SECTIONS} m-sections")
            fields = tuple(_words(value))
            if len(fields) < 4 or not _TOKEN.fullmatch(fields[0]):
                raise SdpError(f"line {number}: m= must read '<media> <port> <proto> <fmt> ...', "
                               f"got {_show(value)}")
            current = _Block(number, f"m={fields[0]} (line {number})", fields, [])
            blocks.append(current)
        elif kind == "a":
            name, colon, rest = value.partition(":")
            if not _TOKEN.fullmatch(name):
                raise SdpError(f"line {number}: attribute name {_show(name)} is not a token")
            current.attrs.append((number, name, rest if colon else None))
        elif kind == "o" and current is session and len(_words(value)) != 6:
            raise SdpError(f"line {number}: o= must have 6 fields (RFC 8866 §5.2)")
    if not any(key == "o" for _, key, _ in lines):
        raise SdpError("the SDP has no o= line (RFC 8866 §5.2)")
    for block in blocks:
        port = block.fields[1]
        _number(port, 0, 65535, block.lineno, f"m={block.fields[0]} port")
    return session, blocks


def _mids(blocks: list[_Block]) -> set[str]:
    mids: set[str] = set()
    for block in blocks:
        found = block.one("mid")
        if found is None:
            continue
        number, mid = found
        if not _TOKEN.fullmatch(mid) or len(mid) > 64:
            raise _error(number, "a=mid", f"{_show(mid)} is not a token of 1..64 characters")
        if mid in mids:
            raise _error(number, "a=mid", f"mid {_show(mid)} is used by two m-sections (RFC 5888 §4)")
        mids.add(mid)
        block.mid = mid
    return mids


def _bundle_groups(session: _Block, mids: set[str]) -> list[tuple[str, ...]]:
    groups: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for number, value in session.values("group"):
        semantics, *members = _words(value) or [""]
        if semantics != "BUNDLE":
            continue  # LS, FID, ...: nothing for us
        for mid in members:
            if mid not in mids:
                raise _error(number, "a=group:BUNDLE", f"no m-section has mid {_show(mid)}")
            if mid in seen:
                raise _error(number, "a=group:BUNDLE", f"mid {_show(mid)} is in two BUNDLE groups")
            seen.add(mid)
        groups.append(tuple(members))
    return groups


def _section(session: _Block, block: _Block, accepted: list[_Block], grouped: set[str]) -> MediaSection:
    kind, port, proto, formats = block.fields[0], int(block.fields[1]), block.fields[2], block.fields[3:]
    base = (kind, port, proto, tuple(formats), block.mid)
    # Port 0 disables a section, unless it asks to be bundled (RFC 8843 §6, bundle-only).
    enabled = port != 0 or (block.one("bundle-only") is not None and block.mid in grouped)
    taken = {b.fields[0] for b in accepted}
    if not enabled:
        return DeclinedSection(*base, reason="disabled by the offerer (port 0)")
    if kind == "audio":
        if "audio" in taken:
            return DeclinedSection(*base, reason="only one audio m-section is supported")
        return _audio(session, block, base)
    if kind == "application" and proto == "DTLS/SCTP":
        raise SdpError(f"{block.where}: the legacy 'DTLS/SCTP <port>' data channel form with a=sctpmap "
                       "is not supported; offer 'UDP/DTLS/SCTP webrtc-datachannel' (RFC 8841)")
    if kind == "application" and "webrtc-datachannel" in formats:
        if proto != "UDP/DTLS/SCTP":
            raise SdpError(f"{block.where}: data channels need proto UDP/DTLS/SCTP, not {_show(proto)}")
        if "application" in taken:
            return DeclinedSection(*base, reason="only one data channel m-section is supported")
        return _application(block, base)
    return DeclinedSection(*base, reason=f"{kind} {proto} is not supported")


def _bundle_of(accepted: list[_Block], groups: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The offered BUNDLE group that holds every accepted section, or () for a lone section."""
    for group in groups:
        if all(block.mid in group for block in accepted):
            return group
    if len(accepted) == 1:
        return ()
    audio, application = accepted
    raise SdpError(f"{audio.where} and {application.where} must be in one a=group:BUNDLE: "
                   "voxwire carries a call on a single transport (RFC 8843)")


def _transport(session: _Block, media: _Block) -> Transport:
    """ICE and DTLS attributes: media level first, session level as the default (RFC 8839 §5)."""

    def pick(name: str) -> tuple[int, str] | None:
        return media.one(name) or session.one(name)

    ufrag = pick("ice-ufrag")
    pwd = pick("ice-pwd")
    if ufrag is None:
        raise SdpError(f"{media.where}: a=ice-ufrag is missing (RFC 8839 §5.4)")
    if pwd is None:
        raise SdpError(f"{media.where}: a=ice-pwd is missing (RFC 8839 §5.4)")
    if not (4 <= len(ufrag[1]) <= 256 and ICE_CHARS_RE.fullmatch(ufrag[1])):
        raise _error(ufrag[0], "a=ice-ufrag", f"must be 4..256 ice-chars [A-Za-z0-9+/], got {_show(ufrag[1])}")
    if not (22 <= len(pwd[1]) <= 256 and ICE_CHARS_RE.fullmatch(pwd[1])):
        raise _error(pwd[0], "a=ice-pwd", f"must be 22..256 ice-chars [A-Za-z0-9+/] "
                                          f"(got {len(pwd[1])} characters)")
    options: tuple[str, ...] = ()
    found = pick("ice-options")
    if found is not None:
        options = tuple(_words(found[1]))
        if not options or not all(ICE_CHARS_RE.fullmatch(option) for option in options):
            raise _error(found[0], "a=ice-options", f"expected ice-chars tags, got {_show(found[1])}")
    lines = media.values("fingerprint") or session.values("fingerprint")
    fingerprints = tuple(_fingerprint(number, value) for number, value in lines)
    if not any(f.algorithm in _STRONG_DIGESTS for f in fingerprints):
        raise SdpError(f"{media.where}: no a=fingerprint with sha-256, sha-384 or sha-512 "
                       "(RFC 8122 §5; sha-1 and md5 are not accepted)")
    setup: Setup = "active"  # RFC 4145 §4.1: the default when a=setup is absent
    found = pick("setup")
    if found is not None:
        if found[1] == "holdconn":
            raise _error(found[0], "a=setup", "holdconn is not supported")
        if found[1] not in _SETUPS:
            raise _error(found[0], "a=setup", f"expected actpass, active or passive, got {_show(found[1])}")
        setup = _SETUPS[found[1]]
    candidates = tuple(parse_candidate(number, value) for number, value in media.values("candidate"))
    end = media.one("end-of-candidates") is not None or session.one("end-of-candidates") is not None
    return Transport(ufrag[1], pwd[1], options, fingerprints, setup, candidates, end)


def _fingerprint(number: int, value: str) -> Fingerprint:
    words = _words(value)
    if len(words) != 2 or not _TOKEN.fullmatch(words[0]) or not _HEX_PAIRS.fullmatch(words[1]):
        raise _error(number, "a=fingerprint", "expected '<hash> <hex>:<hex>:...' (RFC 8122 §5)")
    algorithm, digest = words[0].lower(), words[1].upper()
    size = _DIGEST_SIZES.get(algorithm)
    if size is not None and len(digest) != 3 * size - 1:
        raise _error(number, "a=fingerprint", f"a {algorithm} fingerprint has {size} bytes")
    return Fingerprint(algorithm, digest)


def parse_candidate(number: int, value: str) -> Candidate:
    """RFC 8839 §5.1: foundation component transport priority address port typ type [ext...]."""
    words = _words(value)
    what = "a=candidate"
    if len(words) < 8 or words[6] != "typ" or len(words) % 2:
        raise _error(number, what, "expected '<foundation> <component> <transport> <priority> "
                                   "<address> <port> typ <type> [<name> <value>]...'")
    foundation, component, transport, priority, address, port, _, kind = words[:8]
    if not (len(foundation) <= 32 and ICE_CHARS_RE.fullmatch(foundation)):
        raise _error(number, what, f"foundation {_show(foundation)} is not 1..32 ice-chars")
    if not (_TOKEN.fullmatch(transport) and _TOKEN.fullmatch(kind)):
        raise _error(number, what, "transport and type must be tokens")
    extras = dict(zip(words[8::2], words[9::2], strict=True))
    related = extras.pop("raddr", None)
    rport = extras.pop("rport", None)
    tcptype = extras.pop("tcptype", None)
    generation = extras.pop("generation", None)
    for host in (address, related):
        if host is not None and not _is_host(host):
            raise _error(number, what, f"{_show(host)} is neither an IP address nor a host name")
    return Candidate(
        foundation=foundation,
        component=_number(component, 1, 256, number, f"{what} component"),
        transport=transport.lower(),
        priority=_number(priority, 0, 2**32 - 1, number, f"{what} priority"),
        address=address,
        port=_number(port, 0, 65535, number, f"{what} port"),
        type=kind,
        related_address=related,
        related_port=None if rport is None else _number(rport, 0, 65535, number, f"{what} rport"),
        tcptype=tcptype,
        generation=None if generation is None else _number(generation, 0, 2**32 - 1, number, f"{what} generation"),
        extensions=tuple(extras.items()),
    )


def _is_host(text: str) -> bool:
    return _is_ip(text) or _HOSTNAME.fullmatch(text) is not None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _direction(session: _Block, media: _Block) -> Direction:
    for block in (media, session):
        found = [(n, key) for n, key, _ in block.attrs if key in _DIRECTIONS]
        if len(found) > 1:
            raise _error(found[1][0], f"a={found[1][1]}", f"a second direction attribute in {block.where}")
        if found:
            return _DIRECTIONS[_DIRECTIONS.index(found[0][1])]
    return "sendrecv"  # RFC 8866 §6.7


def _audio(session: _Block, block: _Block, base: _Base) -> AudioSection:
    if base[2] not in _RTP_PROTOS:
        raise SdpError(f"{block.where}: proto {_show(base[2])} is not supported; WebRTC audio uses "
                       "UDP/TLS/RTP/SAVPF (DTLS-SRTP)")
    if block.one("rtcp-mux") is None:
        raise SdpError(f"{block.where}: rtcp-mux is required (RFC 5761, RFC 8858)")
    codecs = _codecs(block)
    # RFC 7587 §7: Opus is always opus/48000/2; the offerer's first Opus pt is its preference.
    opus = next((c for c in codecs if (c.encoding.lower(), c.clock_rate, c.channels) == ("opus", 48000, 2)), None)
    if opus is None:
        raise SdpError(f"{block.where}: no Opus payload type offered (a=rtpmap:<pt> opus/48000/2)")
    return AudioSection(
        *base,
        direction=_direction(session, block),
        codecs=codecs,
        opus=opus,
        opus_params=_opus_params(block, opus),
        rtcp_rsize=block.one("rtcp-rsize") is not None,
        extmaps=tuple(_extmap(number, value) for number, value in block.values("extmap")),
        ssrcs=tuple(_ssrc(number, value) for number, value in block.values("ssrc")),
        ssrc_groups=tuple(_ssrc_group(number, value) for number, value in block.values("ssrc-group")),
        msids=tuple(_msid(number, value) for number, value in block.values("msid")),
    )


def _codecs(block: _Block) -> tuple[RtpCodec, ...]:
    """The m-line's payload types that have a name (rtpmap or RFC 3551 static), in m-line order."""
    rtpmaps: dict[int, tuple[str, int, int]] = {}
    for number, value in block.values("rtpmap"):
        pt, _, spec = value.partition(" ")
        encoding, _, rest = spec.strip().partition("/")
        rate, _, channels = rest.partition("/")
        key = _number(pt, 0, 127, number, "a=rtpmap payload type")
        if not _TOKEN.fullmatch(encoding) or key in rtpmaps:
            raise _error(number, "a=rtpmap", f"expected '<pt> <name>/<rate>[/<channels>]' once per pt, "
                                             f"got {_show(value)}")
        rtpmaps[key] = (encoding, _number(rate, 1, 2**32 - 1, number, "a=rtpmap clock rate"),
                        _number(channels or "1", 1, 255, number, "a=rtpmap channels"))
    fmtps: dict[int, str] = {}
    for number, value in block.values("fmtp"):
        pt, _, params = value.partition(" ")
        fmtps[_number(pt, 0, 127, number, "a=fmtp payload type")] = params.strip()
    feedback: dict[str, list[str]] = {}
    for number, value in block.values("rtcp-fb"):
        pt, _, kind = value.partition(" ")
        if pt != "*":
            _number(pt, 0, 127, number, "a=rtcp-fb payload type")
        feedback.setdefault(pt, []).append(kind.strip())
    codecs = []
    for fmt in block.fields[3:]:
        payload_type = _number(fmt, 0, 127, block.lineno, "m=audio payload type")
        mapping = rtpmaps.get(payload_type) or _STATIC_PAYLOADS.get(payload_type)
        if mapping is not None:
            fb = tuple(feedback.get(fmt, []) + feedback.get("*", []))
            codecs.append(RtpCodec(payload_type, *mapping, fmtps.get(payload_type), fb))
    return tuple(codecs)


def _opus_params(block: _Block, opus: RtpCodec) -> Mapping[str, str]:
    """RFC 7587 §7: 'name=value' pairs separated by ';'."""
    params: dict[str, str] = {}
    number = next((n for n, v in block.values("fmtp") if v.startswith(f"{opus.payload_type} ")), block.lineno)
    for item in filter(None, (item.strip() for item in (opus.fmtp or "").split(";"))):
        key, equals, value = (part.strip() for part in item.partition("="))
        if not equals or not _TOKEN.fullmatch(key) or not _TOKEN.fullmatch(value):
            raise _error(number, f"a=fmtp:{opus.payload_type}", f"{_show(item)} is not 'name=value'")
        params[key.lower()] = value
    return MappingProxyType(params)


def _extmap(number: int, value: str) -> Extmap:
    words = _words(value)
    if len(words) < 2:
        raise _error(number, "a=extmap", "expected '<id>[/<direction>] <uri>' (RFC 8285 §8)")
    id_text, slash, direction = words[0].partition("/")
    if slash and direction not in _DIRECTIONS:
        raise _error(number, "a=extmap", f"unknown direction {_show(direction)}")
    found = _DIRECTIONS[_DIRECTIONS.index(direction)] if slash else None
    return Extmap(_number(id_text, 1, 255, number, "a=extmap id"), words[1], found)


def _ssrc(number: int, value: str) -> SsrcAttribute:
    ssrc, _, attribute = value.partition(" ")
    name, colon, attr_value = attribute.partition(":")
    if not _TOKEN.fullmatch(name):
        raise _error(number, "a=ssrc", "expected '<ssrc> <attribute>[:<value>]' (RFC 5576 §4.1)")
    return SsrcAttribute(_number(ssrc, 0, 2**32 - 1, number, "a=ssrc"), name, attr_value if colon else None)


def _ssrc_group(number: int, value: str) -> SsrcGroup:
    semantics, *ssrcs = _words(value) or [""]
    if not _TOKEN.fullmatch(semantics):
        raise _error(number, "a=ssrc-group", "expected '<semantics> <ssrc>...' (RFC 5576 §4.2)")
    return SsrcGroup(semantics, tuple(_number(s, 0, 2**32 - 1, number, "a=ssrc-group") for s in ssrcs))


def _msid(number: int, value: str) -> tuple[str, str | None]:
    words = _words(value)
    if not 1 <= len(words) <= 2 or not all(_TOKEN.fullmatch(w) for w in words):
        raise _error(number, "a=msid", "expected '<stream id> [<track id>]' (RFC 8830 §2)")
    return words[0], words[1] if len(words) == 2 else None


def _application(block: _Block, base: _Base) -> ApplicationSection:
    found = block.one("sctp-port")
    port = DEFAULT_SCTP_PORT if found is None else _number(found[1], 1, 65535, found[0], "a=sctp-port")
    found = block.one("max-message-size")
    size = DEFAULT_MAX_MESSAGE_SIZE
    if found is not None:
        size = _number(found[1], 0, 2**64 - 1, found[0], "a=max-message-size")
    init = None
    found = block.one("sctp-init")
    if found is not None:
        try:
            init = binascii.a2b_base64(found[1], strict_mode=True)
        except (binascii.Error, ValueError):
            raise _error(found[0], "a=sctp-init", "not valid base64") from None
        if not 0 < len(init) <= MAX_SCTP_INIT_SIZE:
            raise _error(found[0], "a=sctp-init", f"must hold 1..{MAX_SCTP_INIT_SIZE} bytes")
    return ApplicationSection(*base, sctp_port=port, max_message_size=size, sctp_init=init)


__all__ = [
    "AnswerSetup",
    "ApplicationSection",
    "AudioSection",
    "Candidate",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_SCTP_PORT",
    "DeclinedSection",
    "Direction",
    "Extmap",
    "Fingerprint",
    "MAX_MEDIA_SECTIONS",
    "MAX_SCTP_INIT_SIZE",
    "MAX_SDP_LINES",
    "MAX_SDP_SIZE",
    "MediaSection",
    "Offer",
    "RtpCodec",
    "SdpError",
    "Setup",
    "SsrcAttribute",
    "SsrcGroup",
    "Transport",
    "parse_candidate",
    "parse_description",
    "parse_offer",
]
