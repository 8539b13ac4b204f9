"""STUN messages (RFC 8489) with the attributes ICE needs (RFC 8445), as a pure codec.

Theory of operation
-------------------
A STUN message is a 20-byte header (type, length, magic cookie, 96-bit transaction id) followed by
TLV attributes, each padded to a 4-byte boundary (RFC 8489 §5, §14). :func:`parse` validates the
framing first (lengths, bounds, cookie) and then decodes the attributes ICE uses into the typed
fields of :class:`StunMessage`. Everything else is kept raw in ``extra_attributes``; unknown
comprehension-required types (0x0000-0x7FFF, RFC 8489 §14) are also listed in ``unknown_required`` so
the ICE layer can answer 420 (RFC 8489 §6.3.1).

Integrity is checked apart from parsing: the parser records where MESSAGE-INTEGRITY starts
(``integrity_offset``) and :func:`verify_integrity` recomputes the HMAC over the original bytes, with
the header length rewritten as RFC 8489 §14.5 requires. FINGERPRINT, when present, is verified by
:func:`parse` itself, since it needs no key (RFC 8489 §14.7).

Short-term credentials make the key the ICE password itself (RFC 8489 §9.1.1). An
:class:`IntegrityKey` holds the HMAC-SHA1 (RFC 2104) inner and outer states precomputed for one key,
so each message costs two SHA-1 state copies and two short updates: about 0.9 µs here, against
~1.4 µs for a copied ``hmac.HMAC`` and 2-3.5 µs for ``hmac.new``/``hmac.digest``, which redo the key
schedule every call. :func:`binding_success` is the answer to every check, built in one pass (~1.8 µs).

:func:`is_stun` and :func:`peek_username` are the cheap, never-raising probes of the demux and
relay hot paths: they read only the header and the attributes up to USERNAME.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Final

from voxwire.wire.errors import ParseError
from voxwire.wire.types import Address

__all__ = [
    "BINDING",
    "MAGIC_COOKIE",
    "IntegrityKey",
    "StunClass",
    "StunMessage",
    "binding_success",
    "is_stun",
    "parse",
    "peek_username",
    "serialize",
    "verify_integrity",
]

#: RFC 8489 §5: the fixed value in bytes 4..8 of every STUN message.
MAGIC_COOKIE: Final = 0x2112A442
#: RFC 8489 §18.2: the only method ICE uses.
BINDING: Final = 0x001

HEADER_SIZE: Final = 20
_COOKIE_BYTES: Final = MAGIC_COOKIE.to_bytes(4, "big")
#: RFC 8489 §14.7: the CRC-32 is XOR'ed with this so STUN differs from protocols using plain CRC-32.
_FINGERPRINT_XOR: Final = 0x5354554E

# Attribute types (RFC 8489 §18.3, RFC 8445 §16.1).
ATTR_USERNAME: Final = 0x0006
ATTR_MESSAGE_INTEGRITY: Final = 0x0008
ATTR_ERROR_CODE: Final = 0x0009
ATTR_UNKNOWN_ATTRIBUTES: Final = 0x000A
ATTR_MESSAGE_INTEGRITY_SHA256: Final = 0x001C
ATTR_XOR_MAPPED_ADDRESS: Final = 0x0020
ATTR_PRIORITY: Final = 0x0024
ATTR_USE_CANDIDATE: Final = 0x0025
ATTR_FINGERPRINT: Final = 0x8028
ATTR_ICE_CONTROLLED: Final = 0x8029
ATTR_ICE_CONTROLLING: Final = 0x802A

#: Comprehension-required types this codec understands. MESSAGE-INTEGRITY-SHA256 is understood in the
#: sense of RFC 8489 §14.6 (it bounds the attributes that count) but never verified: ICE uses
#: MESSAGE-INTEGRITY (RFC 8445 §7.2.2), so a request carrying only the SHA-256 one lacks integrity.
_UNDERSTOOD_REQUIRED: Final = frozenset(
    {
        ATTR_USERNAME,
        ATTR_MESSAGE_INTEGRITY,
        ATTR_ERROR_CODE,
        ATTR_UNKNOWN_ATTRIBUTES,
        ATTR_MESSAGE_INTEGRITY_SHA256,
        ATTR_XOR_MAPPED_ADDRESS,
        ATTR_PRIORITY,
        ATTR_USE_CANDIDATE,
    }
)

_HEADER = struct.Struct("!HHI")
_TLV = struct.Struct("!HH")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_XOR_PORT = struct.Struct("!BBH")

_FAMILY_IPV4: Final = 0x01
_FAMILY_IPV6: Final = 0x02
#: RFC 8489 §14.3: USERNAME MUST be fewer than 509 bytes (enforced when sending only).
_MAX_USERNAME: Final = 508
#: RFC 8489 §14.8: the reason phrase is at most 127 characters, 763 bytes.
_MAX_REASON: Final = 763
_MI_SIZE: Final = 20
_MESSAGE_INTEGRITY_TLV: Final = _TLV.pack(ATTR_MESSAGE_INTEGRITY, _MI_SIZE)
_FINGERPRINT_TLV: Final = _TLV.pack(ATTR_FINGERPRINT, 4)


class StunClass(IntEnum):
    """The two class bits of the message type (RFC 8489 §5)."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


def _encode_type(method: int, cls: StunClass) -> int:
    # RFC 8489 §5 figure 3: M11..M7 C1 M6..M4 C0 M3..M0.
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((cls & 0b01) << 4)
        | ((cls & 0b10) << 7)
    )


def _decode_type(msg_type: int) -> tuple[int, StunClass]:
    method = (msg_type & 0x000F) | ((msg_type & 0x00E0) >> 1) | ((msg_type & 0x3E00) >> 2)
    cls = ((msg_type & 0x0010) >> 4) | ((msg_type & 0x0100) >> 7)
    return method, _CLASSES[cls]


_CLASSES: Final = (StunClass.REQUEST, StunClass.INDICATION, StunClass.SUCCESS, StunClass.ERROR)


@dataclass(slots=True)
class StunMessage:
    """One STUN message. Typed fields hold the attributes ICE uses; ``None`` means absent.

    ``integrity_offset`` and ``has_fingerprint`` describe a parsed message and are ignored by
    :func:`serialize`, whose keyword arguments decide what protection is added.
    """

    method: int
    cls: StunClass
    transaction_id: bytes
    username: bytes | None = None
    priority: int | None = None
    use_candidate: bool = False
    ice_controlling: int | None = None
    ice_controlled: int | None = None
    xor_mapped_address: Address | None = None
    error_code: tuple[int, str] | None = None
    #: The value of an UNKNOWN-ATTRIBUTES attribute (RFC 8489 §14.9), sent with a 420 error.
    unknown_attributes: tuple[int, ...] = ()
    #: Attributes without a typed field, in order, as (type, value without padding).
    extra_attributes: tuple[tuple[int, bytes], ...] = ()
    #: Offset of the MESSAGE-INTEGRITY attribute header in the parsed bytes.
    integrity_offset: int | None = None
    #: True when the parsed message carried a FINGERPRINT (which :func:`parse` verified).
    has_fingerprint: bool = False
    #: Comprehension-required attribute types this codec does not understand (RFC 8489 §14).
    unknown_required: tuple[int, ...] = ()


# --------------------------------------------------------------------------------------------------
# Integrity (RFC 8489 §14.5, HMAC per RFC 2104)


class IntegrityKey:
    """HMAC-SHA1 under one key, with the inner and outer pad states computed once (RFC 2104 §2)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # RFC 2104 §2: keys longer than the block are hashed first.
            key = hashlib.sha1(key).digest()
        block = key.ljust(64, b"\x00")
        self._inner = hashlib.sha1(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha1(bytes(b ^ 0x5C for b in block))

    def mac(self, data: bytes | bytearray) -> bytes:
        """HMAC-SHA1(key, data): 20 bytes."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def __repr__(self) -> str:
        return "IntegrityKey(<hidden>)"  # never print key material


@lru_cache(maxsize=256)
def _key_for(key: bytes) -> IntegrityKey:
    return IntegrityKey(key)


def _as_key(key: bytes | IntegrityKey) -> IntegrityKey:
    return key if isinstance(key, IntegrityKey) else _key_for(bytes(key))


def verify_integrity(data: bytes, msg: StunMessage, key: bytes | IntegrityKey) -> bool:
    """True when ``msg`` (parsed from ``data``) carries a MESSAGE-INTEGRITY that verifies under ``key``.

    RFC 8489 §14.5: the HMAC covers the message up to the attribute, with the header length set as if
    MESSAGE-INTEGRITY were the last attribute. The comparison is constant-time.
    """
    offset = msg.integrity_offset
    if offset is None or offset + 4 + _MI_SIZE > len(data):
        return False
    covered = data[:2] + (offset - HEADER_SIZE + 4 + _MI_SIZE).to_bytes(2, "big") + data[4:offset]
    expected = _as_key(key).mac(covered)
    return hmac.compare_digest(expected, data[offset + 4 : offset + 4 + _MI_SIZE])


# --------------------------------------------------------------------------------------------------
# Addresses


@lru_cache(maxsize=4096)
def _address_attr(host: str, port: int) -> tuple[int, bytes]:
    """(family, whole XOR-MAPPED-ADDRESS attribute). An IPv4 one is final; an IPv6 one still needs
    its address XOR'ed with the transaction id (RFC 8489 §14.2). Cached: a session sees few
    addresses, and this is on the path of every response."""
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"STUN: port {port} out of range")
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the peer's own view is IPv4.
        ip = ip.ipv4_mapped
    xport = port ^ (MAGIC_COOKIE >> 16)
    if isinstance(ip, ipaddress.IPv4Address):
        value = _XOR_PORT.pack(0, _FAMILY_IPV4, xport) + _U32.pack(int(ip) ^ MAGIC_COOKIE)
        return _FAMILY_IPV4, _TLV.pack(ATTR_XOR_MAPPED_ADDRESS, 8) + value
    value = _XOR_PORT.pack(0, _FAMILY_IPV6, xport) + ip.packed
    return _FAMILY_IPV6, _TLV.pack(ATTR_XOR_MAPPED_ADDRESS, 20) + value


@lru_cache(maxsize=4096)
def _unpack_host(packed: bytes) -> str:
    if len(packed) == 4:
        return str(ipaddress.IPv4Address(packed))
    return str(ipaddress.IPv6Address(packed))


def _xor_address_attr(addr: Address, transaction_id: bytes) -> bytes:
    family, attr = _address_attr(*addr)
    if family == _FAMILY_IPV4:
        return attr
    pad = int.from_bytes(_COOKIE_BYTES + transaction_id, "big")
    return attr[:8] + (int.from_bytes(attr[8:], "big") ^ pad).to_bytes(16, "big")


def _parse_xor_address(value: bytes, transaction_id: bytes) -> Address:
    if len(value) < 4:
        raise ParseError("STUN XOR-MAPPED-ADDRESS: shorter than 4 bytes")
    _, family, xport = _XOR_PORT.unpack_from(value)
    if family == _FAMILY_IPV4:
        if len(value) != 8:
            raise ParseError(f"STUN XOR-MAPPED-ADDRESS: IPv4 value of {len(value)} bytes, not 8")
        pad = _COOKIE_BYTES
    elif family == _FAMILY_IPV6:
        if len(value) != 20:
            raise ParseError(f"STUN XOR-MAPPED-ADDRESS: IPv6 value of {len(value)} bytes, not 20")
        pad = _COOKIE_BYTES + transaction_id
    else:
        raise ParseError(f"STUN XOR-MAPPED-ADDRESS: unknown address family {family:#04x}")
    raw = value[4:]
    packed = (int.from_bytes(raw, "big") ^ int.from_bytes(pad, "big")).to_bytes(len(raw), "big")
    return _unpack_host(packed), xport ^ (MAGIC_COOKIE >> 16)


# --------------------------------------------------------------------------------------------------
# Parsing


def _fixed(value: bytes, size: int, name: str) -> bytes:
    if len(value) != size:
        raise ParseError(f"STUN {name}: value of {len(value)} bytes, expected {size}")
    return value


def parse(data: bytes) -> StunMessage:
    """Decode one STUN message, or raise :class:`ParseError`.

    Checks the header (RFC 8489 §5), attribute bounds (§14), FINGERPRINT (§14.7, verified when
    present and required to be last), and ignores attributes after MESSAGE-INTEGRITY other than
    FINGERPRINT (§14.5, §14.6). Duplicate attributes: the first occurrence counts (§14).
    Padding bytes are bounds-checked; their content is ignored as §14 requires.
    """
    size = len(data)
    if size < HEADER_SIZE:
        raise ParseError(f"STUN: {size} bytes, shorter than the 20-byte header")
    msg_type, length, cookie = _HEADER.unpack_from(data)
    if msg_type & 0xC000:
        raise ParseError("STUN: the two most significant bits are not zero")
    if cookie != MAGIC_COOKIE:
        raise ParseError("STUN: wrong magic cookie")
    if length & 3:
        raise ParseError(f"STUN: message length {length} is not a multiple of 4")
    if length != size - HEADER_SIZE:
        raise ParseError(f"STUN: header says {length} bytes of attributes, datagram has {size - HEADER_SIZE}")
    method, cls = _decode_type(msg_type)
    tid = bytes(data[8:20])
    msg = StunMessage(method, cls, tid)

    extra: list[tuple[int, bytes]] | None = None
    # What still counts (RFC 8489 §14.5, §14.6): everything until MESSAGE-INTEGRITY; after it only
    # MESSAGE-INTEGRITY-SHA256 and FINGERPRINT; after MESSAGE-INTEGRITY-SHA256 only FINGERPRINT.
    tail = _TAIL_NONE
    pos = HEADER_SIZE
    while pos < size:
        # pos and size are multiples of 4 here, so a 4-byte TLV header always fits.
        atype, alen = _TLV.unpack_from(data, pos)
        start = pos + 4
        end = start + alen
        nxt = start + ((alen + 3) & ~3)
        if nxt > size:
            raise ParseError(f"STUN attribute {atype:#06x}: {alen} bytes run past the end of the message")
        if atype == ATTR_FINGERPRINT:
            if alen != 4:
                raise ParseError(f"STUN FINGERPRINT: value of {alen} bytes, expected 4")
            if nxt != size:
                raise ParseError("STUN: attribute after FINGERPRINT, which must be last (RFC 8489 §14.7)")
            if _U32.unpack_from(data, start)[0] != zlib.crc32(data[:pos]) ^ _FINGERPRINT_XOR:
                raise ParseError("STUN: FINGERPRINT does not match")
            msg.has_fingerprint = True
        elif tail:
            if tail == _TAIL_AFTER_MI and atype == ATTR_MESSAGE_INTEGRITY_SHA256:
                tail = _TAIL_AFTER_SHA256
                extra = _add_extra(extra, atype, data[start:end])
        elif atype == ATTR_USERNAME:
            if msg.username is None:
                msg.username = data[start:end]
        elif atype == ATTR_MESSAGE_INTEGRITY:
            if alen != _MI_SIZE:
                raise ParseError(f"STUN MESSAGE-INTEGRITY: value of {alen} bytes, expected 20")
            msg.integrity_offset = pos
            tail = _TAIL_AFTER_MI
        elif atype == ATTR_PRIORITY:
            if msg.priority is None:
                msg.priority = _U32.unpack(_fixed(data[start:end], 4, "PRIORITY"))[0]
        elif atype == ATTR_ICE_CONTROLLING:
            if msg.ice_controlling is None:
                msg.ice_controlling = _U64.unpack(_fixed(data[start:end], 8, "ICE-CONTROLLING"))[0]
        elif atype == ATTR_USE_CANDIDATE:
            _fixed(data[start:end], 0, "USE-CANDIDATE")
            msg.use_candidate = True
        elif atype == ATTR_ICE_CONTROLLED:
            if msg.ice_controlled is None:
                msg.ice_controlled = _U64.unpack(_fixed(data[start:end], 8, "ICE-CONTROLLED"))[0]
        elif atype == ATTR_XOR_MAPPED_ADDRESS:
            if msg.xor_mapped_address is None:
                msg.xor_mapped_address = _parse_xor_address(data[start:end], tid)
        elif atype == ATTR_ERROR_CODE:
            if msg.error_code is None:
                msg.error_code = _parse_error_code(data[start:end])
        elif atype == ATTR_UNKNOWN_ATTRIBUTES:
            if alen & 1:
                raise ParseError("STUN UNKNOWN-ATTRIBUTES: odd length")
            if not msg.unknown_attributes:
                msg.unknown_attributes = struct.unpack(f"!{alen // 2}H", data[start:end])
        else:
            if atype == ATTR_MESSAGE_INTEGRITY_SHA256:
                tail = _TAIL_AFTER_SHA256
            extra = _add_extra(extra, atype, data[start:end])
        pos = nxt
    if extra:
        msg.extra_attributes = tuple(extra)
        unknown = tuple(t for t, _ in extra if t < 0x8000 and t not in _UNDERSTOOD_REQUIRED)
        if unknown:
            msg.unknown_required = unknown
    return msg


_TAIL_NONE: Final = 0
_TAIL_AFTER_MI: Final = 1
_TAIL_AFTER_SHA256: Final = 2


def _add_extra(extra: list[tuple[int, bytes]] | None, atype: int, value: bytes) -> list[tuple[int, bytes]]:
    if extra is None:
        return [(atype, bytes(value))]
    if all(t != atype for t, _ in extra):  # RFC 8489 §14: only the first occurrence counts
        extra.append((atype, bytes(value)))
    return extra


def _parse_error_code(value: bytes) -> tuple[int, str]:
    # RFC 8489 §14.8: 21 reserved bits, class (hundreds, 3..6), number (0..99), UTF-8 reason.
    if len(value) < 4:
        raise ParseError("STUN ERROR-CODE: shorter than 4 bytes")
    klass, number = value[2] & 0x07, value[3]
    if not 3 <= klass <= 6 or number > 99:
        raise ParseError(f"STUN ERROR-CODE: class {klass} number {number} out of range")
    return klass * 100 + number, value[4:].decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------------
# Serialization


def _put(out: bytearray, atype: int, value: bytes) -> None:
    out += _TLV.pack(atype, len(value))
    out += value
    if len(value) & 3:
        out += bytes(4 - (len(value) & 3))  # RFC 8489 §14: padding MUST be zero when sending.


def _check_range(value: int, bits: int, name: str) -> None:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"STUN {name}: {value} does not fit in {bits} bits")


def serialize(
    msg: StunMessage, *, integrity_key: bytes | IntegrityKey | None = None, fingerprint: bool = True
) -> bytes:
    """Encode ``msg``; append MESSAGE-INTEGRITY under ``integrity_key`` and then FINGERPRINT.

    Raises ``ValueError`` for values that cannot be encoded (local misuse, not remote input).
    """
    tid = msg.transaction_id
    if len(tid) != 12:
        raise ValueError(f"STUN: transaction id of {len(tid)} bytes, not 12")
    _check_range(msg.method, 12, "method")
    msg_type = _encode_type(msg.method, msg.cls)
    out = bytearray(8)
    out += tid  # the first 8 header bytes are written last, once the length is known
    if msg.username is not None:
        if len(msg.username) > _MAX_USERNAME:
            raise ValueError("STUN USERNAME: 509 bytes or more (RFC 8489 §14.3)")
        _put(out, ATTR_USERNAME, msg.username)
    if msg.priority is not None:
        _check_range(msg.priority, 32, "PRIORITY")
        _put(out, ATTR_PRIORITY, _U32.pack(msg.priority))
    if msg.use_candidate:
        _put(out, ATTR_USE_CANDIDATE, b"")
    if msg.ice_controlling is not None:
        _check_range(msg.ice_controlling, 64, "ICE-CONTROLLING")
        _put(out, ATTR_ICE_CONTROLLING, _U64.pack(msg.ice_controlling))
    if msg.ice_controlled is not None:
        _check_range(msg.ice_controlled, 64, "ICE-CONTROLLED")
        _put(out, ATTR_ICE_CONTROLLED, _U64.pack(msg.ice_controlled))
    if msg.xor_mapped_address is not None:
        out += _xor_address_attr(msg.xor_mapped_address, tid)
    if msg.error_code is not None:
        code, reason = msg.error_code
        if not 300 <= code <= 699:
            raise ValueError(f"STUN ERROR-CODE: {code} outside 300..699 (RFC 8489 §14.8)")
        phrase = reason.encode()
        if len(phrase) > _MAX_REASON:
            raise ValueError("STUN ERROR-CODE: reason phrase longer than 763 bytes")
        _put(out, ATTR_ERROR_CODE, bytes((0, 0, code // 100, code % 100)) + phrase)
    if msg.unknown_attributes:
        for atype in msg.unknown_attributes:
            _check_range(atype, 16, "UNKNOWN-ATTRIBUTES entry")
        _put(
            out,
            ATTR_UNKNOWN_ATTRIBUTES,
            struct.pack(f"!{len(msg.unknown_attributes)}H", *msg.unknown_attributes),
        )
    for atype, value in msg.extra_attributes:
        _check_range(atype, 16, "attribute type")
        if len(value) > 0xFFFF:
            raise ValueError(f"STUN attribute {atype:#06x}: value longer than 65535 bytes")
        _put(out, atype, value)
    total = (
        len(out)
        - HEADER_SIZE
        + (4 + _MI_SIZE if integrity_key is not None else 0)
        + (8 if fingerprint else 0)
    )
    if total > 0xFFFF:
        raise ValueError(f"STUN: {total} bytes of attributes, more than the 16-bit length allows")
    if integrity_key is not None:
        # RFC 8489 §14.5: the length covers MESSAGE-INTEGRITY itself, but not a later FINGERPRINT.
        _HEADER.pack_into(out, 0, msg_type, len(out) - HEADER_SIZE + 4 + _MI_SIZE, MAGIC_COOKIE)
        mac = _as_key(integrity_key).mac(out)
        out += _MESSAGE_INTEGRITY_TLV
        out += mac
    if fingerprint:
        # RFC 8489 §14.7: CRC-32 over everything before it, with the length covering it.
        _HEADER.pack_into(out, 0, msg_type, len(out) - HEADER_SIZE + 8, MAGIC_COOKIE)
        crc = zlib.crc32(out) ^ _FINGERPRINT_XOR
        out += _FINGERPRINT_TLV
        out += _U32.pack(crc)
    else:
        _HEADER.pack_into(out, 0, msg_type, len(out) - HEADER_SIZE, MAGIC_COOKIE)
    return bytes(out)


_BINDING_SUCCESS: Final = _encode_type(BINDING, StunClass.SUCCESS)


def binding_success(transaction_id: bytes, addr: Address, key: IntegrityKey) -> bytes:
    """A Binding success response with XOR-MAPPED-ADDRESS ``addr``, MESSAGE-INTEGRITY and FINGERPRINT.

    Byte for byte what :func:`serialize` makes of the same message (the tests hold it to that), in
    about half the time: it is the answer to every ICE check and consent refresh.
    """
    if len(transaction_id) != 12:
        raise ValueError(f"STUN: transaction id of {len(transaction_id)} bytes, not 12")
    attr = _xor_address_attr(addr, transaction_id)
    size = len(attr) + 4 + _MI_SIZE  # RFC 8489 §14.5: the MAC sees the length up to MESSAGE-INTEGRITY
    mac = key.mac(_HEADER.pack(_BINDING_SUCCESS, size, MAGIC_COOKIE) + transaction_id + attr)
    out = (
        _HEADER.pack(_BINDING_SUCCESS, size + 8, MAGIC_COOKIE)
        + transaction_id
        + attr
        + _MESSAGE_INTEGRITY_TLV
        + mac
    )
    return out + _FINGERPRINT_TLV + _U32.pack(zlib.crc32(out) ^ _FINGERPRINT_XOR)


# --------------------------------------------------------------------------------------------------
# Hot-path probes


def is_stun(data: bytes) -> bool:
    """Cheap check that ``data`` is framed as a STUN message (RFC 8489 §5, RFC 7983 §7)."""
    return (
        len(data) >= HEADER_SIZE
        and data[0] < 0x40
        and data[4:8] == _COOKIE_BYTES
        and ((data[2] << 8) | data[3]) == len(data) - HEADER_SIZE
        and not data[3] & 3
    )


def peek_username(data: bytes) -> bytes | None:
    """USERNAME of a STUN message without a full parse; ``None`` if absent or not STUN. Never raises.

    Agrees with :func:`parse` on every message ``parse`` accepts: the first USERNAME before any
    integrity attribute. It does not verify FINGERPRINT or anything after USERNAME.
    """
    if not is_stun(data):
        return None
    size = len(data)
    pos = HEADER_SIZE
    while pos + 4 <= size:
        atype = (data[pos] << 8) | data[pos + 1]
        alen = (data[pos + 2] << 8) | data[pos + 3]
        start = pos + 4
        if start + alen > size:
            return None
        if atype == ATTR_USERNAME:
            return bytes(data[start : start + alen])
        if atype in (ATTR_MESSAGE_INTEGRITY, ATTR_MESSAGE_INTEGRITY_SHA256, ATTR_FINGERPRINT):
            return None  # anything after these is not counted by parse() either
        pos = start + ((alen + 3) & ~3)
    return None
