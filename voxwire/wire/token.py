"""The routing token carried in the server ICE ufrag, as a pure codec.

Theory of operation
-------------------
The relay owns the one public UDP address and knows nothing about sessions. When a datagram arrives
from a client address it has no flow for, it reads the USERNAME of the STUN Binding Request
(``serverUfrag:clientUfrag``, RFC 8445 §7.2.2) and needs the server ufrag alone to say which
transceiver owns the session. So each transceiver mints its sessions' server ufrags as tokens: the
routing fields, authenticated with a key shared by the fleet. The relay forwards a new flow only when
the tag verifies and the token is fresh, and it resolves the transceiver *id* through its registry,
so a token can never name an arbitrary internal host.

Layout (version 1, 29 characters)::

    char 0       version, the ASCII character "1"
    chars 1..28  base64 ([A-Za-z0-9+/], no padding) of 21 bytes:

    byte  0      cluster id          0..255       (names map to numbers in configuration)
    bytes 1..3   transceiver id      0..2^24-1
    byte  4      key id              0..255       (selects the HMAC key; ids may be reused cyclically)
    bytes 5..8   issued at           Unix seconds, unsigned 32 bits (1 s resolution, valid to 2106)
    bytes 9..12  nonce               32 random bits
    bytes 13..20 tag                 HMAC-SHA256 truncated to its first 64 bits (RFC 2104 §5)

The characters are exactly the ice-char alphabet of RFC 8839 §5.4, and 29 lies inside its 4..256
bounds. 21 bytes are a whole number of base64 groups, so every character carries six bits of data and
none is padding: the encoding is a bijection, and changing any character changes the bytes. RFC 8445
§5.3 asks for at least 24 random bits in a ufrag; the nonce has 32 (and the tag adds 64 bits that
are unpredictable without the key).

The tag covers the version (through a per-version label that is folded into the cached inner HMAC
state, so it costs nothing per call) and bytes 0..12. 64 bits suffice because forgery can only be
tried online: each guess costs the attacker a datagram to the relay, the relay answers nothing
whether the guess was right or wrong, and a success buys only a UDP path to one transceiver that
still drops every check without the session's ICE password (RFC 8445 §7.3). At a million guesses per
second the expected time to one success is about 290,000 years. RFC 2104 §5 suggests 80 bits in
general; the margin above is why we take 64 and keep the ufrag short (it travels in every check).

Verification (:meth:`TokenVerifier.verify`) checks, in order: length, version and alphabet
(:class:`TokenMalformed`), key id (:class:`UnknownKeyId`), tag, compared in constant time
(:class:`BadTag`), then freshness (:class:`TokenExpired`, :class:`TokenFromFuture`). Freshness is
judged only once the tag verifies, so an "expired" count means genuine tokens that were too old. The
HMAC inner and outer states of each key are computed once (RFC 2104 §2), so a verification costs
two SHA-256 state copies and two short updates (~1.3 µs); a whole verification is about 3 µs here,
a rejected forgery a little less (see ``bench/token_encap.py``).

``max_age`` bounds how long a leaked ufrag can open new flows. The relay re-verifies the original
ufrag whenever a session's flow must be rebuilt (relay restart without the flow cache, a client that
changes address mid-call), so ``max_age`` must cover the longest call; time is Unix seconds here,
not monotonic, because the token crosses machines.

The fields are authenticated, not encrypted: a client can read its cluster, transceiver id and issue
time from its SDP answer. :func:`peek_transceiver` reads the transceiver id without any check; it is
for log lines only, never for a routing decision.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from voxwire.wire.errors import ParseError

__all__ = [
    "MAX_CLUSTER",
    "MAX_KEY_ID",
    "MAX_TRANSCEIVER_ID",
    "MIN_SECRET_BYTES",
    "UFRAG_LENGTH",
    "VERSION",
    "BadTag",
    "RoutingToken",
    "TokenError",
    "TokenExpired",
    "TokenFromFuture",
    "TokenKey",
    "TokenMalformed",
    "TokenMinter",
    "TokenVerifier",
    "UnknownKeyId",
    "peek_transceiver",
]

#: The first character of every version-1 token.
VERSION: Final = "1"
_VERSION_BYTE: Final = ord(VERSION)

MAX_CLUSTER: Final = 0xFF
MAX_TRANSCEIVER_ID: Final = 0xFFFFFF
MAX_KEY_ID: Final = 0xFF
_MAX_ISSUED_AT: Final = 0xFFFFFFFF
#: A key shorter than this is refused: 128 bits is the least we call a secret.
MIN_SECRET_BYTES: Final = 16

#: cluster << 24 | transceiver id, key id, issued at, nonce: the 13 authenticated bytes.
_FIELDS: Final = struct.Struct("!IBII")
TAG_BYTES: Final = 8
_RAW_BYTES: Final = _FIELDS.size + TAG_BYTES  # 21, a multiple of 3: base64 without padding
assert _RAW_BYTES % 3 == 0, "the token must be whole base64 groups"
#: The length of every version-1 server ufrag: one version character and 28 base64 characters.
UFRAG_LENGTH: Final = 1 + _RAW_BYTES // 3 * 4
_NONCE_BYTES: Final = 4

#: Domain separation: a key used for tokens cannot be confused with any other use of the same bytes,
#: and the version is bound into every tag.
_LABEL: Final = b"voxwire routing token\x00" + VERSION.encode()
_SHA256_BLOCK: Final = 64
#: How many nonces a minter draws before it declares its random source broken.
_MAX_REDRAWS: Final = 16


class TokenError(ParseError):
    """A server ufrag that does not carry a valid, fresh routing token.

    ``reason`` is a short fixed string for counters; messages never contain the token or a key.
    """

    reason: str = "invalid"


class TokenMalformed(TokenError):
    """Wrong length, version or alphabet: not a token at all."""

    reason = "malformed"


class UnknownKeyId(TokenError):
    """Well-formed, but under a key id the verifier does not hold (retired, or never issued)."""

    reason = "unknown_key"


class BadTag(TokenError):
    """The tag does not verify: forged or corrupted."""

    reason = "bad_tag"


class TokenExpired(TokenError):
    """Genuine, but issued more than ``max_age`` seconds ago."""

    reason = "expired"


class TokenFromFuture(TokenError):
    """Genuine, but issued more than ``clock_skew`` seconds in the future."""

    reason = "future"


@dataclass(frozen=True)
class TokenKey:
    """One HMAC key of the routing token. ``secret`` is never shown by ``repr``."""

    key_id: int
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.key_id <= MAX_KEY_ID:
            raise ValueError(f"token key id {self.key_id} out of range 0..{MAX_KEY_ID}")
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"token key {self.key_id}: secret shorter than {MIN_SECRET_BYTES} bytes")


@dataclass(frozen=True)
class RoutingToken:
    """The fields of a verified token. ``issued_at`` is whole Unix seconds."""

    cluster: int
    transceiver_id: int
    nonce: int
    issued_at: int
    key_id: int


class _Mac:
    """HMAC-SHA256 under one key, with the inner (ipad + label) and outer (opad) states computed once.

    RFC 2104 §2: H(K ^ opad, H(K ^ ipad, text)). Copying a precomputed state skips the two key
    blocks per call; ~1.4 µs against ~2.5 µs for a copied ``hmac.HMAC``.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        if len(secret) > _SHA256_BLOCK:  # RFC 2104 §2: longer keys are hashed first
            secret = hashlib.sha256(secret).digest()
        block = secret.ljust(_SHA256_BLOCK, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._inner.update(_LABEL)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def tag(self, fields: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(fields)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:TAG_BYTES]

    def __repr__(self) -> str:
        return "_Mac(<hidden>)"


class TokenMinter:
    """Mints the server ufrags of one transceiver. Pure: time and randomness come from the caller.

    ``rng(n)`` returns ``n`` random bytes: ``os.urandom`` in the service, a seeded
    ``random.Random().randbytes`` in tests. Within one second of ``now`` a minter never repeats a
    nonce, so its ufrags are distinct unless the caller's clock steps back; the transceiver's session
    table must still refuse a ufrag that is already live (and mint again). To rotate keys, build a
    new minter; tokens of the old one verify for as long as the verifiers hold the old key.
    """

    __slots__ = ("_mac", "_prefix", "_rng", "_second", "_used")

    def __init__(
        self,
        key: TokenKey,
        cluster: int,
        transceiver_id: int,
        rng: Callable[[int], bytes],
    ) -> None:
        if not 0 <= cluster <= MAX_CLUSTER:
            raise ValueError(f"token cluster {cluster} out of range 0..{MAX_CLUSTER}")
        if not 0 <= transceiver_id <= MAX_TRANSCEIVER_ID:
            raise ValueError(f"token transceiver id {transceiver_id} out of range 0..{MAX_TRANSCEIVER_ID}")
        self._mac = _Mac(key.secret)
        self._prefix = (cluster << 24 | transceiver_id, key.key_id)
        self._rng = rng
        self._second = -1
        self._used: set[int] = set()

    def mint(self, now: float) -> str:
        """A fresh server ufrag issued at ``now`` (Unix seconds)."""
        if not 0 <= now <= _MAX_ISSUED_AT:
            raise ValueError(f"token issue time {now} outside the 32-bit Unix range")
        second = int(now)
        if second != self._second:
            self._second = second
            self._used.clear()
        for _ in range(_MAX_REDRAWS):
            nonce = int.from_bytes(self._rng(_NONCE_BYTES), "big")
            if nonce not in self._used:
                break
        else:
            raise RuntimeError(f"token rng returned {_MAX_REDRAWS} used nonces in a row: not random")
        self._used.add(nonce)
        fields = _FIELDS.pack(self._prefix[0], self._prefix[1], second, nonce)
        raw = fields + self._mac.tag(fields)
        return VERSION + binascii.b2a_base64(raw, newline=False).decode("ascii")


def _decode(ufrag: str | bytes) -> bytes:
    """The 21 raw bytes of a well-formed version-1 ufrag, or :class:`TokenMalformed`."""
    if len(ufrag) != UFRAG_LENGTH:
        raise TokenMalformed(f"routing token: {len(ufrag)} characters, expected {UFRAG_LENGTH}")
    if ufrag[0] != (VERSION if isinstance(ufrag, str) else _VERSION_BYTE):
        raise TokenMalformed("routing token: unknown version")
    try:
        # strict_mode rejects every character outside [A-Za-z0-9+/] and misplaced padding; a str
        # with a non-ASCII character raises ValueError.
        raw = binascii.a2b_base64(ufrag[1:], strict_mode=True)
    except (binascii.Error, ValueError):
        raise TokenMalformed("routing token: character outside the ice-char alphabet") from None
    if len(raw) != _RAW_BYTES:  # only padding ('=') can make 28 characters decode shorter
        raise TokenMalformed("routing token: character outside the ice-char alphabet")
    return raw


class TokenVerifier:
    """Verifies server ufrags for the relay (and for a transceiver that wants to check its own).

    ``keys`` holds every key currently accepted, normally two during a rotation (the new one and the
    one being retired); key ids must be distinct. ``max_age`` and ``clock_skew`` are seconds.
    """

    __slots__ = ("_clock_skew", "_macs", "_max_age")

    def __init__(self, keys: Sequence[TokenKey], max_age: float, clock_skew: float = 30.0) -> None:
        if not keys:
            raise ValueError("token verifier: no keys")
        if max_age <= 0 or clock_skew < 0:
            raise ValueError("token verifier: max_age must be > 0 and clock_skew >= 0")
        macs: list[_Mac | None] = [None] * (MAX_KEY_ID + 1)
        for key in keys:
            if macs[key.key_id] is not None:
                raise ValueError(f"token verifier: key id {key.key_id} given twice")
            macs[key.key_id] = _Mac(key.secret)
        self._macs: tuple[_Mac | None, ...] = tuple(macs)
        self._max_age = max_age
        self._clock_skew = clock_skew

    def verify(self, ufrag: str | bytes, now: float) -> RoutingToken:
        """The token in ``ufrag`` if it is genuine and fresh at ``now`` (Unix seconds).

        Raises a :class:`TokenError` subclass naming the first check that failed, nothing else.
        """
        raw = _decode(ufrag)
        fields = raw[: _FIELDS.size]
        routing, key_id, issued_at, nonce = _FIELDS.unpack(fields)
        mac = self._macs[key_id]
        if mac is None:
            raise UnknownKeyId(f"routing token: unknown key id {key_id}")
        if not hmac.compare_digest(mac.tag(fields), raw[_FIELDS.size :]):
            raise BadTag("routing token: tag does not verify")
        age = now - issued_at
        if age > self._max_age:
            raise TokenExpired(f"routing token: issued {age:.0f} s ago, max age {self._max_age:g} s")
        if -age > self._clock_skew:
            raise TokenFromFuture(f"routing token: issued {-age:.0f} s in the future")
        return RoutingToken(routing >> 24, routing & MAX_TRANSCEIVER_ID, nonce, issued_at, key_id)


def peek_transceiver(ufrag: str | bytes) -> int | None:
    """The transceiver id of a well-formed token, WITHOUT verifying it; ``None`` if malformed.

    For log lines only: anyone can write any id into an unverified ufrag, so this must never choose
    where a datagram goes. Never raises.
    """
    try:
        raw = _decode(ufrag)
    except TokenMalformed:
        return None
    return int.from_bytes(raw[1:4], "big")
