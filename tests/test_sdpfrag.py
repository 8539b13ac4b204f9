"""RFC 8840 trickle-ICE fragments as WHIP PATCH carries them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire.wire.sdp import SdpError
from voxwire.wire.sdpfrag import build_sdpfrag, parse_sdpfrag

CHROMIUM_STYLE = (
    "a=ice-options:trickle ice2\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "a=mid:0\r\n"
    "a=ice-ufrag:EsAw\r\n"
    "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n"
    "a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n"
    "a=end-of-candidates\r\n"
)


def test_parse_a_restart_fragment():
    frag = parse_sdpfrag(CHROMIUM_STYLE)
    assert (frag.ice_ufrag, frag.ice_pwd) == ("EsAw", "P2uYro0UCOQ4zxjKXaWCBui1")
    assert frag.ice_options == ("trickle", "ice2") and frag.mids == ("0",) and frag.end_of_candidates
    assert frag.candidates[0].address == "192.0.2.1" and frag.candidates[0].port == 61764


def test_build_round_trips():
    text = build_sdpfrag("abcdEFGH", "p" * 24, "0", (("203.0.113.9", 3478),))
    frag = parse_sdpfrag(text)
    assert (frag.ice_ufrag, frag.ice_pwd, frag.mids) == ("abcdEFGH", "p" * 24, ("0",))
    assert [(c.address, c.port, c.type) for c in frag.candidates] == [("203.0.113.9", 3478, "host")]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a=ice-ufrag:EsAw\r\n", "together"),
        ("a=ice-ufrag:E!\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n", "ice-chars"),
        ("a=ice-ufrag:EsAw\r\na=ice-pwd:short\r\n", "ice-pwd"),
        ("v=0\r\n", "only m= and a="),
        ("garbage\r\n", "not a '<type>=<value>'"),
        ("a=candidate:1 1 udp\r\n", "candidate"),
        ("a=mid:0\r\n" * 300, "more than 256 lines"),
    ],
)
def test_bad_fragments_are_named(text, words):
    with pytest.raises(SdpError, match=words):
        parse_sdpfrag(text)


@given(st.text(max_size=400))
def test_any_text_parses_or_raises_sdp_error(text):
    try:
        parse_sdpfrag(text)
    except SdpError:
        pass
