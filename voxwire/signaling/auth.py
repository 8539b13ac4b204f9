"""Who may call: server API keys and short-lived client secrets, as OpenAI's Realtime API does it.

* **API keys** are the server's own secrets (``VOXWIRE_API_KEYS``, comma-separated, or one per line
  in the file named by ``VOXWIRE_API_KEY_FILE``). They may do everything, and they are what an
  application backend uses to mint client secrets.
* **Client secrets** (``POST /v1/realtime/client_secrets``) are minted from an API key for one
  browser: ``ek_`` + 32 random bytes, valid for ``expires_after.seconds`` (10..7200, default 600, as
  OpenAI documents), carrying the session configuration to apply to the call they create. They can
  only create calls.

Comparisons are constant-time; secrets are never logged (``__repr__`` hides them). The store of
outstanding client secrets is bounded: at ``max_client_secrets`` the oldest go first, and expired
ones are purged as new ones are minted.
"""

from __future__ import annotations

import enum
import hmac
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLIENT_SECRET_PREFIX = "ek_"
MIN_TTL = 10
MAX_TTL = 7200
DEFAULT_TTL = 600


class Principal(enum.Enum):
    """What a bearer token proved."""

    API_KEY = "api_key"
    CLIENT_SECRET = "client_secret"


@dataclass(frozen=True)
class ClientSecret:
    value: str = field(repr=False)
    expires_at: float  # Unix seconds
    session: dict[str, Any]


class AuthError(Exception):
    """401: the message says what was wrong without echoing the credential."""


def load_api_keys(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """API keys from ``VOXWIRE_API_KEYS`` and/or the file named by ``VOXWIRE_API_KEY_FILE``."""
    env = os.environ if environ is None else environ
    keys = [k.strip() for k in env.get("VOXWIRE_API_KEYS", "").split(",")]
    path = env.get("VOXWIRE_API_KEY_FILE")
    if path:
        keys += [line.strip() for line in Path(path).read_text().splitlines() if not line.startswith("#")]
    keys = [k for k in keys if k]
    short = [k for k in keys if len(k) < 16]
    if short:
        raise ValueError(f"{len(short)} API key(s) shorter than 16 characters; use long random keys")
    return tuple(dict.fromkeys(keys))


class Authenticator:
    """Checks bearer tokens and mints client secrets. With no API keys it is in development mode:
    every request is accepted as if it carried an API key (``voxwire serve`` allows that only on
    loopback, or with ``--insecure-no-auth``)."""

    def __init__(self, api_keys: tuple[str, ...], *, max_client_secrets: int = 100_000) -> None:
        self._api_keys = tuple(k.encode() for k in api_keys)
        self._secrets: OrderedDict[str, ClientSecret] = OrderedDict()
        self.max_client_secrets = max_client_secrets

    def __repr__(self) -> str:
        return f"Authenticator({len(self._api_keys)} API keys, {len(self._secrets)} client secrets)"

    @property
    def development_mode(self) -> bool:
        return not self._api_keys

    def authenticate(self, authorization: str | None, now: float) -> tuple[Principal, ClientSecret | None]:
        """Check an ``Authorization`` header value; raise :class:`AuthError` when it does not pass."""
        if self.development_mode:
            return Principal.API_KEY, None
        if not authorization:
            raise AuthError("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("The Authorization header must be 'Bearer <key>'.")
        if token.startswith(CLIENT_SECRET_PREFIX):
            secret = self._secrets.get(token)
            if secret is None or not hmac.compare_digest(secret.value, token):
                raise AuthError("Unknown or revoked client secret.")
            if secret.expires_at <= now:
                raise AuthError("The client secret has expired; mint a new one.")
            return Principal.CLIENT_SECRET, secret
        candidate = token.encode()
        if any(hmac.compare_digest(candidate, key) for key in self._api_keys):
            return Principal.API_KEY, None
        raise AuthError("Incorrect API key provided.")

    def mint(self, session: dict[str, Any], ttl: float, now: float) -> ClientSecret:
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise ValueError(f"expires_after.seconds must be between {MIN_TTL} and {MAX_TTL}")
        self._purge(now)
        while len(self._secrets) >= self.max_client_secrets:
            self._secrets.popitem(last=False)
        secret = ClientSecret(CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32), now + ttl, session)
        self._secrets[secret.value] = secret
        return secret

    def _purge(self, now: float) -> None:
        # Insertion order is expiry order only for equal TTLs; purge from the front while expired.
        while self._secrets:
            first = next(iter(self._secrets.values()))
            if first.expires_at > now:
                break
            self._secrets.popitem(last=False)
