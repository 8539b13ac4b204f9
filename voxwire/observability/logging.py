"""Structured logs: one line per event, the call id on every line, no secrets.

* **One line.** :class:`OneLineFormatter` writes ``text`` (logfmt: ``time level logger call msg``)
  or ``json`` (one object per line). Newlines in messages and tracebacks are escaped, so a log line
  is always one event.
* **The call id on every line.** :class:`CallIdFilter` sets ``record.call_id`` from, in order: an
  explicit ``extra={"call_id": ...}``, the :data:`CALL_ID` context variable (set it around work done
  for one call), or the first ``rtc_...`` id in the message (voxwire's own lines name their call).
  Lines that belong to no call carry ``-``.
* **No secrets.** :class:`Redactor` runs on the finished line, message and traceback included, so
  no handler using :class:`OneLineFormatter` can write a secret: the exact values it was given (API
  keys, secrets found in the environment), anything after ``password``/``token``/``secret``/
  ``api_key``/``ice-pwd``/``Authorization: Bearer``, client secrets (``ek_...``), OpenAI-style keys
  (``sk-...``), credentials in URLs (``redis://user:pass@``) and long random-looking strings (hex of
  32+ digits, or 32+ base64 characters mixing upper case, lower case and digits: ICE passwords,
  SRTP keys, routing-token keys).
* **Client addresses only at debug.** voxwire's code logs a client's address only at DEBUG; the
  log-scan test holds it to that.

:func:`setup_logging` installs all of it on the root logger (``voxwire serve --log-format``).
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import IO

__all__ = [
    "CALL_ID",
    "CallIdFilter",
    "OneLineFormatter",
    "Redactor",
    "secrets_from_environment",
    "setup_logging",
]

#: The call the current task works for; log lines without an ``rtc_`` id in them get this one.
CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("voxwire_call_id", default=None)

_CALL_ID_RE = re.compile(r"\b(rtc_[0-9a-f]{8,64})\b")
REDACTED = "[REDACTED]"

#: ``name = value`` / ``name: value`` / ``"name": "value"`` where the name says it is a secret.
_NAMED = re.compile(
    r"""(?ix)
    (?P<name>\b[\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|auth[_-]?key|master[_-]?key|credential)s?\b["']?)
    (?P<sep>\s*[:=]\s*["']?)
    (?P<value>[^\s"',;&}]+)
    """
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)([^\s\"',;]+)")
_PREFIXED = re.compile(r"\b(?:ek|sk|rk|pk)[-_][A-Za-z0-9_-]{12,}")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@]*):([^/\s@]+)@")
_LONG_HEX = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,}(?![0-9A-Fa-f])")
_LONG_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/=_-]{32,}(?![A-Za-z0-9+/=_-])")


def _random_looking(token: str) -> bool:
    """Upper and lower case letters and digits all present: a key, not a word or a path."""
    return any(c.isdigit() for c in token) and any(c.islower() for c in token) and any(c.isupper() for c in token)


class Redactor:
    """Replaces secrets in text with ``[REDACTED]``. Add exact values with :meth:`add`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._exact: list[str] = []
        self._exact_re: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Redact this exact value wherever it appears (values shorter than 6 characters are ignored:
        they would redact ordinary words)."""
        secret = secret.strip()
        if len(secret) < 6 or secret in self._exact:
            return
        self._exact.append(secret)
        alternatives = sorted(self._exact, key=len, reverse=True)
        self._exact_re = re.compile("|".join(re.escape(s) for s in alternatives))

    def __call__(self, text: str) -> str:
        if self._exact_re is not None:
            text = self._exact_re.sub(REDACTED, text)
        text = _URL_CREDENTIALS.sub(lambda m: f"{m[1]}{m[2]}:{REDACTED}@", text)
        text = _BEARER.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
        text = _NAMED.sub(lambda m: m["name"] + m["sep"] + (m["value"] if m["value"] == REDACTED else REDACTED), text)
        text = _PREFIXED.sub(REDACTED, text)
        text = _LONG_HEX.sub(REDACTED, text)
        return _LONG_B64.sub(lambda m: REDACTED if _random_looking(m[0]) else m[0], text)


#: Environment variables whose values are secrets by their name.
_SECRET_ENV = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)S?$")


def secrets_from_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of variables named like ``*_KEY(S)``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``
    (comma-separated lists split; a ``VOXWIRE_TOKEN_KEYS`` entry ``id:hex`` also gives its hex),
    and the lines of the file named by ``VOXWIRE_API_KEY_FILE``."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    for name, value in env.items():
        if not _SECRET_ENV.search(name) or name.endswith("_FILE"):
            continue
        for item in value.split(","):
            item = item.strip()
            out.append(item)
            if ":" in item:
                out.append(item.rpartition(":")[2])
    path = env.get("VOXWIRE_API_KEY_FILE")
    if path:
        try:
            with open(path) as f:
                out += [line.strip() for line in f if line.strip() and not line.startswith("#")]
        except OSError:
            pass
    return [s for s in out if len(s) >= 6]


class CallIdFilter(logging.Filter):
    """Sets ``record.call_id`` (``-`` when the line belongs to no call). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        call_id = getattr(record, "call_id", None) or CALL_ID.get()
        if call_id is None:
            match = _CALL_ID_RE.search(record.getMessage())
            call_id = match[1] if match else None
        record.call_id = call_id or "-"
        return True


def _logfmt_value(text: str) -> str:
    if text and not any(c in text for c in ' "=\\\n\r\t'):
        return text
    return json.dumps(text, ensure_ascii=False)


class OneLineFormatter(logging.Formatter):
    """``text``: ``2025-01-01T12:00:00.123Z INFO voxwire.transceiver.call call=rtc_... msg="..."``;
    ``json``: ``{"time": ..., "level": ..., "logger": ..., "call": ..., "msg": ..., "exc": ...}``.
    Everything written has been through the :class:`Redactor`."""

    def __init__(self, fmt: str = "text", redactor: Redactor | None = None) -> None:
        super().__init__()
        if fmt not in ("text", "json"):
            raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
        self.fmt = fmt
        self.redact = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        call_id = getattr(record, "call_id", None)
        if call_id is None:  # a handler without CallIdFilter
            CallIdFilter().filter(record)
            call_id = getattr(record, "call_id", "-")
        message = self.redact(record.getMessage())
        exc = None
        if record.exc_info:
            exc = self.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            exc = self.redact(record.exc_text)
        if self.fmt == "json":
            fields = {"time": stamp, "level": record.levelname.lower(), "logger": record.name, "call": call_id,
                      "msg": message}
            if exc:
                fields["exc"] = exc
            return json.dumps(fields, ensure_ascii=False)
        line = f"{stamp} {record.levelname} {record.name} call={call_id} msg={_logfmt_value(message)}"
        if exc:
            line += f" exc={_logfmt_value(exc)}"
        return line


def setup_logging(
    level: str | int = "info",
    fmt: str = "text",
    *,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Log one line per event to ``stream`` (stderr) at ``level`` from every logger, with the call id
    and with ``secrets`` and the environment's secrets redacted. Replaces the root logger's handlers;
    returns the installed handler."""
    redactor = Redactor([*secrets, *secrets_from_environment(environ)])
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(CallIdFilter())
    handler.setFormatter(OneLineFormatter(fmt, redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)
    return handler
