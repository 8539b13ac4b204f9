"""ICE credentials' alphabet (RFC 8839 §5.4): ice-char = ALPHA / DIGIT / "+" / "/".

One definition for checking ufrags, passwords and foundations and for minting random ones; the
alphabet has exactly 64 symbols, so a random byte's low 6 bits pick one uniformly.
"""

from __future__ import annotations

import re
from collections.abc import Callable

ICE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
ICE_CHARS_RE = re.compile(r"[A-Za-z0-9+/]+")


def is_ice_string(value: str, min_len: int, max_len: int = 256) -> bool:
    """``value`` is ``min_len..max_len`` ice-chars (ufrag 4..256, password 22..256)."""
    return min_len <= len(value) <= max_len and ICE_CHARS_RE.fullmatch(value) is not None


def ice_string(length: int, randbytes: Callable[[int], bytes]) -> str:
    """A random ice-char string; ``randbytes`` is the injected randomness (``secrets.token_bytes``
    for credentials, a seeded ``random.Random().randbytes`` in tests)."""
    return "".join(ICE_CHARS[b & 63] for b in randbytes(length))
