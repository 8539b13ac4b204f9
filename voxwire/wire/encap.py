"""Relay <-> transceiver encapsulation: the client's public address in front of each datagram.

Theory of operation
-------------------
The relay forwards a client's datagrams to the transceiver that owns the session over the internal
network, and the transceiver's replies back, to leave from the public address:port the client used.
Both directions carry the same header: the client's public transport address. Towards the
transceiver it is where the datagram came from (the true remote address for XOR-MAPPED-ADDRESS,
consent, logs and limits); towards the relay it is where the reply must go. The relay strips it and
sends the payload from its public socket, so the relay keeps no per-reply state::

    IPv4 (7 bytes):   | type | port (2) | address (4)  | payload ...
    IPv6 (19 bytes):  | type | port (2) | address (16) | payload ...

The type byte is ``version << 2 | family``, with the families of STUN (RFC 8489 §14.1: 1 = IPv4,
2 = IPv6). Version 1 is thus 0x05 (IPv4) and 0x06 (IPv6). The byte lies in 4..15, the only first-byte
range that RFC 7983 §7 (as updated by RFC 9443 §3) leaves unassigned: STUN is 0..3, ZRTP 16..19, DTLS
20..63, TURN channels 64..79, RTP/RTCP 128..191 and QUIC the rest. So one socket of the transceiver
takes datagrams both directly from clients (single-node mode) and through relays, and the first byte
alone says which (:func:`is_encapsulated`). Within 4..15, the families 0 and 3 are invalid and the
versions 2 and 3 (8..15) are reserved for a later layout; :func:`decode` rejects them.

Every byte is justified and nothing more is carried: the port and address are the payload of the
header; the type byte both marks the datagram as encapsulated and says how long the address is. No
length field (the header size follows from the family, the payload is the rest of the UDP datagram),
no relay id (the transceiver answers to the internal address the datagram came from), no flags (a new
flow needs no announcement: the transceiver already demultiplexes by remote address and STUN
USERNAME), no IPv6 scope (a public relay has no link-local clients; :func:`pack_addr` refuses them).

There is no authentication: whoever can send an encapsulated datagram to a transceiver can claim any
client address. The transceiver must accept encapsulated datagrams only from its relays' internal
addresses, and the internal network must not be reachable from outside.

Cost: the relay packs a client's header once per flow (:func:`pack_addr`) and then builds each
datagram with one concatenation, ``header + payload``. Parsing looks the header bytes up in a bounded
cache of addresses, so the per-datagram work is one slice and one lookup (:func:`decode_offset`).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Final

from voxwire.wire.errors import ParseError
from voxwire.wire.types import Address

__all__ = [
    "HEADER_V4",
    "HEADER_V6",
    "TYPE_V4",
    "TYPE_V6",
    "VERSION",
    "decode",
    "decode_offset",
    "encode",
    "encode_packed",
    "is_encapsulated",
    "pack_addr",
]

VERSION: Final = 1
_FAMILY_IPV4: Final = 0x01
_FAMILY_IPV6: Final = 0x02
#: The first byte of an encapsulated datagram from an IPv4 / IPv6 client.
TYPE_V4: Final = VERSION << 2 | _FAMILY_IPV4
TYPE_V6: Final = VERSION << 2 | _FAMILY_IPV6
HEADER_V4: Final = 1 + 2 + 4
HEADER_V6: Final = 1 + 2 + 16
#: RFC 7983 §7 / RFC 9443 §3: the first bytes no multiplexed protocol uses, reserved for this header.
_ENCAP_FIRST: Final = range(4, 16)
#: Header size by type byte; 0 for a byte in the encapsulation range that is not a valid version 1 type.
_SIZE_BY_TYPE: Final[tuple[int, ...]] = tuple(
    HEADER_V4 if b == TYPE_V4 else HEADER_V6 if b == TYPE_V6 else 0 for b in range(256)
)
#: Bounds the parse cache: distinct client addresses a process remembers the parsed form of.
_CACHE_SIZE: Final = 16384
_ZERO10: Final = bytes(10)


def is_encapsulated(data: bytes | bytearray | memoryview) -> bool:
    """True when the first byte is in the range this header owns (4..15). Never raises.

    This is only the RFC 7983-style classification; :func:`decode` still checks version and family.
    """
    return bool(data) and 4 <= data[0] <= 15


@lru_cache(maxsize=_CACHE_SIZE)
def pack_addr(addr: Address) -> bytes:
    """The header for datagrams of client ``addr`` (host, port): 7 bytes for IPv4, 19 for IPv6.

    Raises ``ValueError`` for a host that is not an IP literal, a scoped IPv6 address or a port outside
    1..65535 (local misuse). Addresses are kept as given: an IPv4-mapped IPv6 address from a
    dual-stack socket stays IPv6, so the relay can send the reply back through the same socket.
    Cached; the relay should still keep the result in its flow entry.
    """
    host, port = addr
    if not 0 < port <= 0xFFFF:
        raise ValueError(f"encapsulation: port {port} out of range 1..65535")
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv4Address):
        return bytes((TYPE_V4, port >> 8, port & 0xFF)) + ip.packed
    if ip.scope_id is not None:
        raise ValueError("encapsulation: scoped (link-local) IPv6 addresses are not carried")
    return bytes((TYPE_V6, port >> 8, port & 0xFF)) + ip.packed


def encode(client: Address, payload: bytes) -> bytes:
    """``payload`` with the header of ``client`` in front."""
    return pack_addr(client) + payload


def encode_packed(header: bytes, payload: bytes) -> bytes:
    """``payload`` behind a header from :func:`pack_addr`. The hot path may inline the concatenation."""
    return header + payload


@lru_cache(maxsize=_CACHE_SIZE)
def _unpack_header(header: bytes) -> Address:
    """The address of a complete header whose type byte is valid. Cached by header bytes."""
    port = header[1] << 8 | header[2]
    if port == 0:
        raise ParseError("encapsulation: client port 0")
    if len(header) == HEADER_V4:
        return f"{header[3]}.{header[4]}.{header[5]}.{header[6]}", port
    return _ipv6_text(header[3:]), port


def _ipv6_text(packed: bytes) -> str:
    """The text ``inet_ntop`` gives for a 16-byte address, so that flow tables keyed by the address
    the socket layer reports agree with decoded headers. That is RFC 5952 (as ``ipaddress`` writes
    it) except for the dotted IPv4 tail of ::ffff:a.b.c.d (what a dual-stack socket reports for IPv4
    peers, RFC 4291 §2.5.5.2) and of the deprecated ::a.b.c.d (§2.5.5.1)."""
    if packed[:10] == _ZERO10:
        tail = f"{packed[12]}.{packed[13]}.{packed[14]}.{packed[15]}"
        if packed[10:12] == b"\xff\xff":
            return "::ffff:" + tail
        if packed[10:12] == b"\x00\x00" and packed[12:14] != b"\x00\x00":
            return "::" + tail
    return str(ipaddress.IPv6Address(packed))


def _bad_type(data: bytes | bytearray | memoryview) -> ParseError:
    if not data:
        return ParseError("encapsulation: empty datagram")
    first = data[0]
    if not 4 <= first <= 15:
        return ParseError(f"encapsulation: first byte {first} is not an encapsulation header")
    if first >> 2 != VERSION:
        return ParseError(f"encapsulation: unknown version {first >> 2}")
    return ParseError(f"encapsulation: unknown address family {first & 3}")


def decode_offset(data: bytes | bytearray | memoryview) -> tuple[Address, int]:
    """The client address and the offset of the payload (``data[offset:]``), or :class:`ParseError`.

    The zero-copy form: the caller slices or takes a memoryview of the payload only if it needs to.
    """
    size = _SIZE_BY_TYPE[data[0]] if data else 0
    if not size:
        raise _bad_type(data)
    if len(data) < size:
        raise ParseError(f"encapsulation: {len(data)} bytes, header needs {size}")
    return _unpack_header(bytes(data[:size])), size


def decode(data: bytes | bytearray | memoryview) -> tuple[Address, bytes]:
    """The client address and the payload as bytes, or :class:`ParseError`."""
    addr, offset = decode_offset(data)
    return addr, bytes(data[offset:])
