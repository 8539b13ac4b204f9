"""multipart/form-data (RFC 7578) and Content-Type parsing for offer POSTs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire.wire.form import MAX_PARTS, FormError, parse_content_type, parse_form

SDP = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
SESSION = b'{"type": "realtime", "instructions": "be brief"}'

# The shape Chromium's fetch() gives a FormData with two string fields (fd.set("sdp", ...)).
CHROMIUM = (
    b"------WebKitFormBoundarylUQtUMBrzcCbmUQD\r\n"
    b'Content-Disposition: form-data; name="sdp"\r\n\r\n' + SDP + b"\r\n"
    b"------WebKitFormBoundarylUQtUMBrzcCbmUQD\r\n"
    b'Content-Disposition: form-data; name="session"\r\n\r\n' + SESSION + b"\r\n"
    b"------WebKitFormBoundarylUQtUMBrzcCbmUQD--\r\n"
)
CHROMIUM_BOUNDARY = "----WebKitFormBoundarylUQtUMBrzcCbmUQD"


def body(parts: list[tuple[str, bytes]], boundary: str, *, headers: str = "") -> bytes:
    out = b""
    for name, content in parts:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n{headers}\r\n'.encode()
        out += content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_a_browser_form():
    assert parse_form(CHROMIUM, CHROMIUM_BOUNDARY) == {"sdp": SDP, "session": SESSION}


def test_file_parts_with_their_own_content_types_as_curl_sends_them():
    # curl -F sdp=@offer.sdp;type=application/sdp -F session=<session.json
    form = (
        b"--------------------------d74496d66958873e\r\n"
        b'Content-Disposition: form-data; name="sdp"; filename="offer.sdp"\r\n'
        b"Content-Type: application/sdp\r\n\r\n" + SDP + b"\r\n"
        b"--------------------------d74496d66958873e\r\n"
        b'content-disposition: form-data; name=session\r\n'
        b"content-type: application/json\r\n\r\n" + SESSION + b"\r\n"
        b"--------------------------d74496d66958873e--\r\n"
    )
    assert parse_form(form, "------------------------d74496d66958873e") == {"sdp": SDP, "session": SESSION}


def test_preamble_padding_and_epilogue_are_allowed():
    form = b"preamble text\r\n" + body([("sdp", SDP)], "xyz").replace(b"--xyz\r\n", b"--xyz  \t\r\n", 1)
    assert parse_form(form + b"epilogue", "xyz") == {"sdp": SDP}


def test_content_may_hold_crlf_and_dashes_but_not_the_delimiter():
    content = b"\r\n--xy\r\n--xyz-not-quite\r\n"  # only "\r\n--xyz" followed by a line end or "--" ends a part
    with pytest.raises(FormError, match="boundary line"):
        parse_form(body([("sdp", content)], "xyz"), "xyz")
    assert parse_form(body([("sdp", b"\r\n--xy\r\n-- xyz\r\n")], "xyz"), "xyz") == {"sdp": b"\r\n--xy\r\n-- xyz\r\n"}


def test_an_empty_part_and_an_empty_form():
    assert parse_form(body([("session", b"")], "b"), "b") == {"session": b""}
    assert parse_form(b"--b--\r\n", "b") == {}


@pytest.mark.parametrize(
    ("form", "boundary", "words"),
    [
        (CHROMIUM, "", "1 to 70"),
        (CHROMIUM, "x" * 71, "1 to 70"),
        (CHROMIUM, "other", "does not contain the declared boundary"),
        (CHROMIUM[: CHROMIUM.rindex(b"\r\n------")], CHROMIUM_BOUNDARY, "ends inside a part"),
        (b"--b\r\n\r\ncontent\r\n--b--", "b", "no headers"),
        (b"--b\r\nContent-Disposition: form-data; name=x\r\ncontent\r\n--b--", "b", "blank line"),
        (b"--b\r\nX-Other: 1\r\n\r\ncontent\r\n--b--", "b", "no Content-Disposition"),
        (b"--b\r\nContent-Disposition: attachment; name=x\r\n\r\nc\r\n--b--", "b", "form-data with a name"),
        (b"--b\r\nContent-Disposition: form-data\r\n\r\nc\r\n--b--", "b", "form-data with a name"),
        (b"--b\r\nContent-Disposition form-data\r\n\r\nc\r\n--b--", "b", "not 'Name: value'"),
        (b"--b\r\nContent-Disposition: form-data; name=\xff\r\n\r\nc\r\n--b--", "b", "not UTF-8"),
        (b"--b\r\nContent-Disposition: form-data; name=\r\n\r\nc\r\n--b--", "b", "malformed parameter"),
        (body([("sdp", SDP), ("sdp", SDP)], "b"), "b", "appears twice"),
        (body([(f"p{i}", b"") for i in range(MAX_PARTS + 1)], "b"), "b", f"more than {MAX_PARTS}"),
        (b"--b", "b", "boundary line"),
        (b"--bx\r\n", "b", "boundary line"),
    ],
)
def test_malformed_forms_say_what_is_wrong(form, boundary, words):
    with pytest.raises(FormError, match=words):
        parse_form(form, boundary)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/sdp", ("application/sdp", {})),
        ("Application/SDP ; charset=UTF-8", ("application/sdp", {"charset": "UTF-8"})),
        ("multipart/form-data; boundary=----WebKitFormBoundaryA", ("multipart/form-data", {"boundary": "----WebKitFormBoundaryA"})),
        ('multipart/form-data; BOUNDARY="a b;c\\"d"', ("multipart/form-data", {"boundary": 'a b;c"d'})),
        ('form-data; name="sdp"; filename="offer.sdp"', ("form-data", {"name": "sdp", "filename": "offer.sdp"})),
    ],
)
def test_content_type(value, expected):
    assert parse_content_type(value) == expected


@pytest.mark.parametrize("value", ["", ";boundary=x", "text/plain; boundary", "text/plain; a=b c", 'text/plain; a="open'])
def test_malformed_content_types(value):
    with pytest.raises(FormError):
        parse_content_type(value)


_NAMES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters='"\\'), min_size=1, max_size=12)
_BOUNDARIES = st.text(st.sampled_from("abcXYZ0123456789'()+_,-./:=?"), min_size=1, max_size=70)


@given(st.dictionaries(_NAMES, st.binary(max_size=200), max_size=MAX_PARTS), _BOUNDARIES)
def test_any_form_round_trips(parts, boundary):
    form = body(list(parts.items()), boundary)
    if any(b"\r\n--" + boundary.encode() in b"\r\n" + content for content in parts.values()):
        return  # a sender must pick a boundary that its contents do not hold (RFC 2046 §5.1.1)
    assert parse_form(form, boundary) == parts


@given(st.binary(max_size=300), _BOUNDARIES)
def test_any_bytes_parse_or_raise_form_error(data, boundary):
    try:
        parts = parse_form(data, boundary)
    except FormError:
        return
    assert isinstance(parts, dict) and len(parts) <= MAX_PARTS


@given(st.text(max_size=80))
def test_any_header_parses_or_raises_form_error(value):
    try:
        kind, params = parse_content_type(value)
    except FormError:
        return
    assert kind == kind.lower() and all(name == name.lower() for name in params)
