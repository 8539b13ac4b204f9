"""What the parts of a conversation share (:mod:`~voxwire.realtime.conversation`,
:mod:`~voxwire.realtime.item_list`, :mod:`~voxwire.realtime.responses`): the injected id factory and
its two makers, the local-misuse error, and the final states of a response.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Literal

IdFactory = Callable[[str], str]
"""Makes a fresh id for a prefix (``event``, ``item``, ``resp``, ``sess``, ``conv``)."""

FinalStatus = Literal["completed", "cancelled", "failed", "incomplete"]
CancelReason = Literal["client_cancelled", "turn_detected"]

_ALPHABET = string.digits + string.ascii_letters


def counter_ids() -> IdFactory:
    """Deterministic ids for tests: ``event_1``, ``item_2``, ... (one counter for all prefixes)."""
    count = 0

    def make(prefix: str) -> str:
        nonlocal count
        count += 1
        return f"{prefix}_{count}"

    return make


def random_ids(randbytes: Callable[[int], bytes]) -> IdFactory:
    """OpenAI-looking ids (prefix, underscore, 21 base62 characters, ~125 random bits) drawn from
    ``randbytes`` (for example ``secrets.token_bytes``)."""

    def make(prefix: str) -> str:
        n = int.from_bytes(randbytes(16), "big")
        chars = []
        for _ in range(21):
            n, r = divmod(n, 62)
            chars.append(_ALPHABET[r])
        return prefix + "_" + "".join(chars)

    return make


class ConversationError(Exception):
    """The audio/agent layer misused the conversation (a local bug, never a client's fault)."""
