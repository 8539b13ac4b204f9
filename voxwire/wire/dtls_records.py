"""DTLS 1.0/1.2 record framing (RFC 6347 §4.1): split a datagram into its records.

The DTLS transport (:mod:`voxwire.proto.dtls`) needs to know what it sends and receives without
decrypting it: which records are handshake or ChangeCipherSpec (a flight to keep for resending),
which are application data, and the message_seq of each plaintext handshake fragment (to tell a
peer's retransmission from a new flight). A datagram that is not exactly a sequence of whole
DTLS 1.0/1.2 records is not DTLS to us: :func:`parse_records` returns None.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = ["CT_APPDATA", "CT_CCS", "CT_HANDSHAKE", "RECORD_HEADER", "Record", "parse_records"]

RECORD_HEADER = 13  # type(1) version(2) epoch(2) sequence_number(6) length(2), RFC 6347 §4.1
_HS_HEADER = 12  # msg_type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3), §4.2.2
_MAX_RECORD_BODY = 2**14 + 2048  # RFC 6347 §4.1 / RFC 5246 §6.2.3 TLSCiphertext.length
CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA = 20, 21, 22, 23  # RFC 6347 §4.1 ContentType


class Record(NamedTuple):
    """One record of a datagram: its content type, epoch and byte range in the datagram."""

    content_type: int
    epoch: int
    start: int
    end: int
    #: message_seq of each handshake fragment, for plaintext (epoch 0) handshake records
    hs_seqs: tuple[int, ...]


_HEADER = struct.Struct("!BHHHIH")  # type, version, epoch, seq (16 + 32 bits), length
_HS_SEQ = struct.Struct("!H")
_NO_SEQS: tuple[int, ...] = ()


def parse_records(buf: bytes) -> list[Record] | None:
    """Split a datagram into DTLS records (RFC 6347 §4.1), or None if it is not exactly that."""
    records: list[Record] = []
    pos, n = 0, len(buf)
    while pos < n:
        if n - pos < RECORD_HEADER:
            return None
        ctype, version, epoch, _, _, length = _HEADER.unpack_from(buf, pos)
        # DTLS 1.0/1.2 plaintext headers only; DTLS 1.3 unified headers (0x20..0x3f) are never
        # negotiated, and heartbeat (24) / connection-id (25) records are not either.
        if not CT_CCS <= ctype <= CT_APPDATA or version not in (0xFEFF, 0xFEFD):
            return None
        end = pos + RECORD_HEADER + length
        if length > _MAX_RECORD_BODY or end > n:
            return None
        seqs = _NO_SEQS
        if ctype == CT_HANDSHAKE and epoch == 0:
            found: list[int] = []
            p = pos + RECORD_HEADER
            while p + _HS_HEADER <= end:  # §4.2.2: a record may carry several fragments
                found.append(_HS_SEQ.unpack_from(buf, p + 4)[0])
                p += _HS_HEADER + int.from_bytes(buf[p + 9 : p + 12], "big")
            seqs = tuple(found)
        records.append(Record(ctype, epoch, pos, end, seqs))
        pos = end
    return records or None
