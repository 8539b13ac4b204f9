"""The transceiver's DTLS certificate and SDP fingerprints.

Theory of operation
-------------------
WebRTC authenticates DTLS with self-signed certificates whose hash travels in the SDP
(``a=fingerprint``, RFC 8122 §5, RFC 8827 §6.5): nobody checks a CA chain, each side checks that the
certificate the peer presented in the handshake hashes to the value the peer's SDP announced.

:meth:`Certificate.generate` makes one ECDSA P-256 key and a self-signed X.509 certificate (random
serial, subject CN ``voxwire``, valid from one day in the past -- to absorb clock skew -- to
``validity_days`` ahead). Key generation costs around a millisecond, so the transceiver generates
ONE certificate per process and reuses it for every call; the SDP answer never waits for it.
Browsers ignore the validity period of fingerprint-authenticated certificates, but a process that
runs for weeks should still rotate before :attr:`Certificate.not_after` so the certificate never
looks stale to stricter peers.

The validity period is the only place a wall clock enters: pass ``now_unix`` (seconds since the
epoch) to make generation reproducible in tests; ``None`` reads the system clock once, the same way
the X.509 library would.

Fingerprints are the hash of the DER encoding, written as uppercase hex octets joined by colons
(RFC 8122 §5 ``fingerprint`` rule, RFC 4572 §5). The hash functions named by the RFC 3279 registry
that still matter are supported: ``sha-1``, ``sha-224``, ``sha-256``, ``sha-384`` and ``sha-512``
(``md2``/``md5`` are refused).
"""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Certificate", "UnsupportedHashError", "fingerprint_of", "FINGERPRINT_ALGORITHMS"]

#: RFC 8122 §5 hash-func tokens we can compute, mapped to hashlib names.
FINGERPRINT_ALGORITHMS: dict[str, str] = {
    "sha-1": "sha1",
    "sha-224": "sha224",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
}

_DAY = 86400.0


class UnsupportedHashError(ValueError):
    """The fingerprint hash function is not one of :data:`FINGERPRINT_ALGORITHMS`."""


def fingerprint_of(der: bytes, algo: str) -> str:
    """The RFC 8122 §5 fingerprint of a DER certificate: ``"AB:CD:..."`` (uppercase hex, colons).

    ``algo`` is the SDP hash-func token, matched case-insensitively (``"sha-256"``).
    """
    name = FINGERPRINT_ALGORITHMS.get(algo.lower())
    if name is None:
        raise UnsupportedHashError(f"unsupported fingerprint hash function {algo!r}")
    return hashlib.new(name, der).digest().hex(":").upper()


class Certificate:
    """A private key and its self-signed certificate, with the fingerprint the SDP advertises."""

    __slots__ = ("private_key", "x509", "der", "_fingerprint", "__weakref__")

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        if cert.public_key() != private_key.public_key():
            raise ValueError("certificate does not belong to the private key")
        self.private_key = private_key
        self.x509 = cert
        self.der = cert.public_bytes(serialization.Encoding.DER)
        self._fingerprint = ("sha-256", fingerprint_of(self.der, "sha-256"))

    @classmethod
    def generate(
        cls, now_unix: float | None = None, *, validity_days: float = 30.0, common_name: str = "voxwire"
    ) -> Certificate:
        """A fresh ECDSA P-256 key and self-signed certificate (call once per process, not per call).

        Valid from ``now_unix - 1 day`` to ``now_unix + validity_days``; ``now_unix`` defaults to
        the system clock.
        """
        if validity_days <= 0:
            raise ValueError(f"validity_days must be positive, got {validity_days}")
        if now_unix is None:
            now = datetime.datetime.now(datetime.UTC)
        else:
            now = datetime.datetime.fromtimestamp(now_unix, datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=_DAY))
            .not_valid_after(now + datetime.timedelta(seconds=validity_days * _DAY))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def fingerprint(self) -> tuple[str, str]:
        """``("sha-256", "AB:CD:...")`` for ``a=fingerprint`` (RFC 8122 §5)."""
        return self._fingerprint

    def fingerprint_with(self, algo: str) -> str:
        """This certificate's fingerprint under another hash function."""
        return fingerprint_of(self.der, algo)

    @property
    def not_after(self) -> float:
        """End of the validity period, seconds since the Unix epoch (rotate before it)."""
        return self.x509.not_valid_after_utc.timestamp()

    def __repr__(self) -> str:
        algo, value = self._fingerprint
        return f"Certificate({algo} {value[:23]}...)"
