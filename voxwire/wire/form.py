"""The Content-Type header (RFC 9110 §8.3) and ``multipart/form-data`` bodies (RFC 7578).

An offer POST of the Realtime API carries at most two small parts, ``sdp`` and ``session``, and
the HTTP layer has already read the whole (bounded) body. Parsing that with bytes searches costs
about 10 µs; aiohttp's streaming form reader and its ``email``-package header parser took about
0.9 ms of the loop per POST, a third of the server's work for a new call.

Strict where it matters and nowhere else: the boundary must be declared and found, every part
must name itself with ``Content-Disposition: form-data; name=...`` and end with a delimiter, and
a name may appear once. A preamble before the first delimiter, whitespace after a delimiter
(RFC 2046 §5.1.1 transport padding) and an epilogue after the closing one are allowed, as the RFCs
allow them. Anything else raises :class:`FormError` with what was wrong.
"""

from __future__ import annotations

import re

__all__ = ["FormError", "parse_content_type", "parse_form", "MAX_PARTS"]

#: Parts one form may carry (an offer needs two).
MAX_PARTS = 8

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'[ \t]*;[ \t]*({_TOKEN})=({_TOKEN}|"(?:[^"\\]|\\.)*")[ \t]*')
_TYPE = re.compile(rf"[ \t]*({_TOKEN}(?:/{_TOKEN})?)[ \t]*")
_QUOTED_PAIR = re.compile(r"\\(.)")


class FormError(ValueError):
    """A malformed Content-Type header or multipart body; the message says what is wrong."""


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """``"multipart/form-data; boundary=x"`` -> ``("multipart/form-data", {"boundary": "x"})``.

    The type and parameter names are lowercased (they are case-insensitive), parameter values are
    unquoted. The same shape serves ``Content-Disposition`` (``form-data; name="sdp"``)."""
    match = _TYPE.match(value)
    if match is None:
        raise FormError(f"not a media type: {value[:80]!r}")
    params: dict[str, str] = {}
    pos = match.end()
    while pos < len(value):
        param = _PARAM.match(value, pos)
        if param is None:
            raise FormError(f"malformed parameter at {value[pos:pos + 40]!r}")
        raw = param.group(2)
        params[param.group(1).lower()] = _QUOTED_PAIR.sub(r"\1", raw[1:-1]) if raw[0] == '"' else raw
        pos = param.end()
    return match.group(1).lower(), params


def parse_form(body: bytes, boundary: str) -> dict[str, bytes]:
    """The parts of a ``multipart/form-data`` body by name (a part's content type is not checked:
    the caller knows what each named part must hold)."""
    if not 1 <= len(boundary) <= 70 or not boundary.isascii():
        raise FormError("the boundary must be 1 to 70 ASCII characters (RFC 2046 §5.1.1)")
    delimiter = b"--" + boundary.encode("ascii")
    if body.startswith(delimiter):
        pos = len(delimiter)
    else:
        first = body.find(b"\r\n" + delimiter)
        if first < 0:
            raise FormError("the body does not contain the declared boundary")
        pos = first + 2 + len(delimiter)
    separator = b"\r\n" + delimiter
    parts: dict[str, bytes] = {}
    while not body.startswith(b"--", pos):  # "--" after a delimiter closes the body
        eol = body.find(b"\r\n", pos)
        if eol < 0 or body[pos:eol].strip(b" \t"):
            raise FormError("a boundary line must end right after the boundary")
        end = body.find(separator, eol + 2)
        if end < 0:
            raise FormError("the body ends inside a part (no closing boundary)")
        name, content = _part(body, eol + 2, end)
        if name in parts:
            raise FormError(f"the part {name!r} appears twice")
        if len(parts) == MAX_PARTS:
            raise FormError(f"more than {MAX_PARTS} parts")
        parts[name] = content
        pos = end + len(separator)
    return parts


def _part(body: bytes, start: int, end: int) -> tuple[str, bytes]:
    """One part between its delimiter line and the next delimiter: its name and content."""
    if body.startswith(b"\r\n", start):
        raise FormError("a part has no headers (it needs Content-Disposition)")
    blank = body.find(b"\r\n\r\n", start, end)
    if blank < 0:
        raise FormError("a part's headers do not end with a blank line")
    name = None
    try:
        head = body[start:blank].decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("a part's headers are not UTF-8") from None
    for line in head.split("\r\n"):
        field, colon, value = line.partition(":")
        if not colon:
            raise FormError(f"a part header is not 'Name: value': {line[:80]!r}")
        if field.strip().lower() == "content-disposition":
            kind, params = parse_content_type(value)
            if kind != "form-data" or "name" not in params:
                raise FormError(f"Content-Disposition must be form-data with a name, got {value.strip()[:80]!r}")
            name = params["name"]
    if name is None:
        raise FormError("a part has no Content-Disposition header")
    return name, body[blank + 4:end]
