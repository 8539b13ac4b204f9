"""DTLS record framing (RFC 6347 §4.1): whole records or None, never an exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from voxwire.wire.dtls_records import CT_APPDATA, CT_CCS, CT_HANDSHAKE, RECORD_HEADER, parse_records


def record(ctype: int, body: bytes, epoch: int = 0, version: int = 0xFEFD) -> bytes:
    return (
        bytes([ctype])
        + version.to_bytes(2, "big")
        + epoch.to_bytes(2, "big")
        + bytes(6)
        + len(body).to_bytes(2, "big")
        + body
    )


def handshake_fragment(message_seq: int, body: bytes) -> bytes:
    n = len(body).to_bytes(3, "big")
    return bytes([1]) + n + message_seq.to_bytes(2, "big") + bytes(3) + n + body


def test_a_flight_splits_into_its_records_with_handshake_sequence_numbers() -> None:
    hs = handshake_fragment(0, b"hello") + handshake_fragment(1, b"cert")  # two fragments, one record
    data = record(CT_HANDSHAKE, hs) + record(CT_CCS, b"\x01") + record(CT_HANDSHAKE, b"encrypted", epoch=1)
    records = parse_records(data)
    assert records is not None
    assert [(r.content_type, r.epoch, r.hs_seqs) for r in records] == [
        (CT_HANDSHAKE, 0, (0, 1)),
        (CT_CCS, 0, ()),
        (CT_HANDSHAKE, 1, ()),  # encrypted: no sequence numbers read
    ]
    assert records[0].start == 0 and records[-1].end == len(data)


def test_what_is_not_whole_dtls_records_is_none() -> None:
    good = record(CT_APPDATA, b"x" * 10)
    assert parse_records(good) is not None
    assert parse_records(b"") is None
    assert parse_records(good[:-1]) is None  # truncated body
    assert parse_records(good + b"\x17") is None  # trailing bytes
    assert parse_records(record(24, b"hb")) is None  # heartbeat is never negotiated
    assert parse_records(record(CT_APPDATA, b"x", version=0x0303)) is None  # TLS, not DTLS


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_none(data: bytes) -> None:
    records = parse_records(data)
    if records is not None:  # the records tile the datagram exactly
        assert records[0].start == 0 and records[-1].end == len(data)
        assert all(a.end == b.start for a, b in zip(records, records[1:], strict=False))
        assert all(r.end - r.start >= RECORD_HEADER for r in records)


@given(
    st.lists(
        st.tuples(st.sampled_from([CT_CCS, CT_HANDSHAKE, CT_APPDATA]), st.binary(max_size=40)),
        min_size=1,
        max_size=5,
    )
)
def test_concatenated_records_come_back(parts: list[tuple[int, bytes]]) -> None:
    data = b"".join(record(c, body, epoch=1) for c, body in parts)
    records = parse_records(data)
    assert records is not None and [r.content_type for r in records] == [c for c, _ in parts]
