"""The shared OpenSSL contexts of :mod:`voxwire.proto.dtls`, and how the peer is authenticated.

Version and suites. DTLS 1.2 only (RFC 6347; RFC 8827 §6.5 requires at least 1.2).
``set_max_proto_version(DTLS1_2)`` makes OpenSSL answer a DTLS 1.3 ClientHello -- Chromium 156
sends one with a ~1.2 KB X25519MLKEM768 key share, fragmented over two records -- with a DTLS 1.2
ServerHello; a 1.2 server ignores supported_versions and key_share (RFC 8446 §4.2.1, RFC 9147 §5.3),
and OpenSSL's reassembly joins the fragments (RFC 6347 §4.2.3), in either order. Suites are ECDHE
with AES-GCM or ChaCha20 (ECDSA first: our certificate is P-256; RSA for a peer server with an RSA
certificate), groups X25519 then P-256. Tickets, renegotiation and compression are off.

Contexts. One ``SSL.Context`` per (certificate, role, SRTP profiles), built once and shared by every
session (a fresh one per session makes the server's handshake ~1.6-1.8x dearer). Per-session state
lives on the Connection: MTU and the expected fingerprints.

Authentication (RFC 8122 §5, RFC 5763 §5). Both sides present certificates (the server sends a
CertificateRequest). The verify callback accepts any chain but compares the leaf certificate with
the ``a=fingerprint`` values of the remote SDP, in each hash function the SDP used; when none
matches it fails verification, so OpenSSL aborts the handshake with a fatal alert and we report
``DtlsClosed("fingerprint mismatch")``. Completion re-checks that the match happened.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from enum import Enum

from OpenSSL import SSL, crypto
from OpenSSL._util import lib as _ossl

from voxwire.proto.certificate import FINGERPRINT_ALGORITHMS, Certificate, fingerprint_of
from voxwire.proto.srtp import SrtpProfile

_DTLS1_2_VERSION = 0xFEFD  # RFC 6347 §4.1: {254, 253}
_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
)
_GROUPS = b"X25519:P-256"



class DtlsRole(Enum):
    """Who sends the ClientHello. From ``a=setup`` (RFC 5763 §5): our ``active`` = CLIENT."""

    CLIENT = "client"
    SERVER = "server"


class DtlsError(Exception):
    """Base of the errors this module raises for local misuse."""


class PeerCheck:
    """Per-connection verify-callback state: the SDP fingerprints and what the leaf gave."""

    __slots__ = ("expected", "matched", "mismatched")

    def __init__(self, expected: tuple[tuple[str, str], ...]) -> None:
        self.expected = expected
        self.matched = False
        self.mismatched = False

    @classmethod
    def of(cls, remote_fingerprints: Sequence[tuple[str, str]]) -> PeerCheck:
        """The check for the SDP's ``a=fingerprint`` values, normalised, in the hash functions we
        know; ValueError when none is usable."""
        expected = tuple(
            (algo.lower(), value.strip().upper())
            for algo, value in remote_fingerprints
            if algo.lower() in FINGERPRINT_ALGORITHMS
        )
        if not expected:
            raise ValueError(f"no usable remote fingerprint among {list(remote_fingerprints)!r}")
        return cls(expected)


def _verify(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
    """Context-wide verify callback: self-signed is fine, the fingerprint decides (RFC 8122 §5)."""
    if depth != 0:
        return True  # intermediates of a chain mean nothing here; the leaf is what the SDP hashed
    check: PeerCheck = conn.get_app_data()
    der = crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)
    if any(fingerprint_of(der, algo) == value for algo, value in check.expected):
        check.matched = True
        return True
    check.mismatched = True
    return False


_contexts: weakref.WeakKeyDictionary[Certificate, dict[tuple[DtlsRole, tuple[SrtpProfile, ...]], SSL.Context]]
_contexts = weakref.WeakKeyDictionary()


def context_for(cert: Certificate, role: DtlsRole, profiles: tuple[SrtpProfile, ...]) -> SSL.Context:
    """The shared ``SSL.Context`` for this certificate, role and profile offer (built once)."""
    per_cert = _contexts.setdefault(cert, {})
    ctx = per_cert.get((role, profiles))
    if ctx is not None:
        return ctx
    ctx = SSL.Context(SSL.DTLS_CLIENT_METHOD if role is DtlsRole.CLIENT else SSL.DTLS_SERVER_METHOD)
    ctx.set_min_proto_version(_DTLS1_2_VERSION)
    ctx.set_max_proto_version(_DTLS1_2_VERSION)
    ctx.set_options(
        SSL.OP_NO_QUERY_MTU
        | SSL.OP_NO_TICKET
        | SSL.OP_NO_RENEGOTIATION
        | SSL.OP_NO_COMPRESSION
        | SSL.OP_CIPHER_SERVER_PREFERENCE
    )
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    # Free each connection's record buffers while it is idle: after the handshake a call's DTLS
    # only carries SCTP (bench/capacity.py: 68 -> 54 KB of RSS per idle call).
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    ctx.set_cipher_list(_CIPHERS)
    # pyOpenSSL has no public setter for the groups list; the binding has SSL_CTX_set1_curves_list.
    if _ossl.SSL_CTX_set1_curves_list(ctx._context, _GROUPS) != 1:
        raise DtlsError(f"OpenSSL refused the groups list {_GROUPS!r}")
    ctx.use_certificate(cert.x509)
    ctx.use_privatekey(cert.private_key)
    ctx.check_privatekey()
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify)
    ctx.set_tlsext_use_srtp(b":".join(p.openssl_name.encode() for p in profiles))
    per_cert[(role, profiles)] = ctx
    return ctx
