"""Relay <-> transceiver encapsulation: round trips, first-byte class, malformed headers, fuzzing."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.wire.demux import PacketKind, classify
from voxwire.wire.encap import (
    HEADER_V4,
    HEADER_V6,
    TYPE_V4,
    TYPE_V6,
    decode,
    decode_offset,
    encode,
    encode_packed,
    is_encapsulated,
    pack_addr,
)
from voxwire.wire.errors import ParseError

STUN_REQUEST = bytes.fromhex("000100002112a442") + bytes(12)
V4 = ("203.0.113.7", 50123)
V6 = ("2001:db8::1:2", 443)


@pytest.mark.parametrize(("addr", "size"), [(V4, HEADER_V4), (V6, HEADER_V6)])
def test_round_trip(addr: tuple[str, int], size: int) -> None:
    datagram = encode(addr, STUN_REQUEST)
    assert len(datagram) == size + len(STUN_REQUEST)
    assert decode(datagram) == (addr, STUN_REQUEST)
    assert decode_offset(datagram) == (addr, size)
    assert decode(memoryview(datagram)) == (addr, STUN_REQUEST)
    assert decode(bytearray(datagram)) == (addr, STUN_REQUEST)
    assert encode_packed(pack_addr(addr), STUN_REQUEST) == datagram


def test_exact_layout() -> None:
    assert pack_addr(V4) == bytes([0x05, 0xC3, 0xCB, 203, 0, 113, 7])
    assert pack_addr(V6) == bytes([0x06, 0x01, 0xBB]) + ipaddress.IPv6Address(V6[0]).packed
    assert (TYPE_V4, TYPE_V6) == (0x05, 0x06)


def test_edge_addresses_and_empty_payload() -> None:
    for addr in (("0.0.0.0", 1), ("255.255.255.255", 65535), ("::", 1), ("::ffff:192.0.2.1", 9)):
        assert decode(encode(addr, b"")) == (addr, b"")


def test_ipv6_is_returned_canonical() -> None:
    assert decode(encode(("2001:DB8:0:0::1", 5), b"x"))[0] == ("2001:db8::1", 5)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(min_size=16, max_size=16),
        st.binary(min_size=4, max_size=4).map(lambda b: bytes(10) + b"\xff\xff" + b),
        st.binary(min_size=4, max_size=4).map(lambda b: bytes(12) + b),
        st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF]), min_size=8, max_size=8).map(
            lambda ws: b"".join(w.to_bytes(2, "big") for w in ws)
        ),
    )
)
def test_ipv6_text_matches_what_the_socket_layer_reports(packed: bytes) -> None:
    # The relay keys flows by the address recvfrom() gives; a decoded header must name it the same way.
    text = socket.inet_ntop(socket.AF_INET6, packed)
    assert decode(bytes([TYPE_V6, 0, 1]) + packed)[0] == (text, 1)


def test_first_byte_is_outside_every_rfc7983_range() -> None:
    for addr in (V4, V6):
        datagram = encode(addr, STUN_REQUEST)
        assert classify(datagram) is PacketKind.UNKNOWN
        assert is_encapsulated(datagram)
    # Nothing a client can send directly looks encapsulated.
    for first in [*range(0, 4), *range(16, 256)]:
        assert classify(bytes([first, 0])) is not PacketKind.UNKNOWN
        assert not is_encapsulated(bytes([first, 0]))
    assert not is_encapsulated(b"")


def test_truncated_headers() -> None:
    for addr in (V4, V6):
        header = pack_addr(addr)
        for n in range(len(header)):
            with pytest.raises(ParseError):
                decode(header[:n])


@pytest.mark.parametrize("first", [*range(8, 16)])
def test_unknown_version(first: int) -> None:
    with pytest.raises(ParseError, match="version"):
        decode(bytes([first]) + bytes(40))


@pytest.mark.parametrize("first", [0x04, 0x07])
def test_bad_family(first: int) -> None:
    with pytest.raises(ParseError, match="family"):
        decode(bytes([first]) + bytes(40))


@pytest.mark.parametrize("first", [0x00, 0x16, 0x80, 0xFF])
def test_not_encapsulated(first: int) -> None:
    with pytest.raises(ParseError, match="not an encapsulation"):
        decode(bytes([first]) + bytes(40))


def test_port_zero_is_rejected() -> None:
    with pytest.raises(ParseError):
        decode(bytes([TYPE_V4, 0, 0, 1, 2, 3, 4]))
    with pytest.raises(ParseError):
        decode(bytes([TYPE_V6, 0, 0]) + bytes(16))


@pytest.mark.parametrize(
    "addr", [("example.com", 80), ("1.2.3.4", 0), ("1.2.3.4", 65536), ("fe80::1%eth0", 5), ("1.2.3", 5)]
)
def test_pack_addr_refuses_misuse(addr: tuple[str, int]) -> None:
    with pytest.raises(ValueError):
        pack_addr(addr)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.integers(1, 65535), st.binary(max_size=64))
def test_round_trip_property(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int, payload: bytes
) -> None:
    addr = (str(ip), port)
    datagram = encode(addr, payload)
    assert is_encapsulated(datagram)
    (host, got_port), got_payload = decode(datagram)
    assert (ipaddress.ip_address(host), got_port, got_payload) == (ip, port, payload)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=48))
def test_any_bytes_decode_or_raise_parse_error(data: bytes) -> None:
    try:
        (host, port), payload = decode(data)
    except ParseError:
        return
    assert is_encapsulated(data)
    assert 1 <= port <= 65535
    assert encode((host, port), payload) == data
