"""SDP offers captured from real clients (tests/data/sdp), our answers, and malformed input."""

import base64
import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxwire.wire.errors import ParseError
from voxwire.wire.sdp import (
    MAX_MEDIA_SECTIONS,
    MAX_SDP_LINES,
    MAX_SDP_SIZE,
    ApplicationSection,
    AudioSection,
    DeclinedSection,
    Fingerprint,
    Offer,
    SdpError,
    parse_description,
    parse_offer,
)
from voxwire.wire.sdp_answer import AnswerParams, answer_setup, build_answer, host_priority

DATA = Path(__file__).parent / "data" / "sdp"
FILES = sorted(p.name for p in DATA.glob("*.sdp"))
OUR_FINGERPRINT = Fingerprint("sha-256", ":".join(f"{b:02X}" for b in range(32)))
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def load(name: str) -> str:
    return (DATA / name).read_bytes().decode()


def params(**changes: object) -> AnswerParams:
    base = AnswerParams(
        ice_ufrag="1vxAbCdEfGhIjKlM",
        ice_pwd="ourpasswordourpassword24",
        fingerprint=OUR_FINGERPRINT,
        setup="active",
        candidates=(("203.0.113.7", 3478),),
        audio_ssrc=0x1234ABCD,
        cname="voxwire",
        msid_stream="vx",
        msid_track="vx-audio",
        session_id=42,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def edit(text: str, old: str, new: str, count: int = -1) -> str:
    assert old in text, old
    return text.replace(old, new, count)


# ------------------------------------------------------------------------------------ captured offers


def test_chromium_audio_and_datachannel() -> None:
    offer = parse_offer(load("chromium_audio_datachannel.sdp"))
    assert offer.ice_ufrag == "Zmoy" and offer.ice_pwd == "3SiwrrSrtGsnABp9FPPLQrp7"
    assert offer.fingerprints == (Fingerprint("sha-256", "C9:3C:85:E3:ED:60:02:A9:B0:D9:95:29:07:89:C3:14:"
                                                         "73:1C:1C:8C:93:2D:88:B5:67:DA:E3:DC:F5:BC:91:F2"),)
    assert offer.setup == "actpass" and offer.ice_options == ("trickle",) and not offer.ice_lite
    assert offer.bundle == ("0", "1")
    first = offer.candidates[0]
    assert (first.foundation, first.component, first.transport, first.priority) == ("1192713882", 1, "udp", 2113937151)
    assert first.address == "99261d01-88ef-4df9-91cc-cb92914185ec.local" and first.port == 46537
    assert (first.type, first.generation, first.extensions) == ("host", 0, (("network-cost", "999"),))
    assert not offer.transport.end_of_candidates

    audio = offer.audio
    assert audio is not None and (audio.kind, audio.mid, audio.port, audio.proto) == ("audio", "0", 9, "UDP/TLS/RTP/SAVPF")
    assert [(c.payload_type, c.encoding, c.clock_rate, c.channels) for c in audio.codecs] == [
        (111, "opus", 48000, 2), (63, "red", 48000, 2), (9, "G722", 8000, 1), (0, "PCMU", 8000, 1),
        (8, "PCMA", 8000, 1), (13, "CN", 8000, 1), (110, "telephone-event", 48000, 1),
        (126, "telephone-event", 8000, 1)]
    assert audio.opus.payload_type == 111 and audio.opus.rtcp_fb == ("transport-cc",)
    assert audio.opus_params == {"minptime": "10", "useinbandfec": "1"}
    assert audio.codecs[1].fmtp == "111/111"
    assert audio.direction == "sendrecv" and audio.rtcp_rsize
    assert [(e.id, e.uri, e.direction) for e in audio.extmaps] == [
        (1, AUDIO_LEVEL, None),
        (2, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", None),
        (3, "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", None),
        (4, "urn:ietf:params:rtp-hdrext:sdes:mid", None)]
    assert [(s.ssrc, s.name) for s in audio.ssrcs] == [(908602201, "cname"), (908602201, "msid")]
    assert audio.ssrcs[0].value == "tI8u6t4tcz59xl4P"
    assert audio.msids == (("5dd77d26-fbf1-407b-93e5-fd5068635fd9", "52fe0541-c1f5-49ff-b978-80d09b82c7ca"),)

    app = offer.application
    assert app is not None and (app.mid, app.proto, app.formats) == ("1", "UDP/DTLS/SCTP", ("webrtc-datachannel",))
    assert (app.sctp_port, app.max_message_size, app.sctp_init) == (5000, 262144, None)


def test_chromium_snap_keeps_the_init_chunk() -> None:
    app = parse_offer(load("chromium_snap.sdp")).application
    assert app is not None and app.sctp_init is not None
    assert app.sctp_init == base64.b64decode("AQAAHmz8WQYAUAAA/////72YVxzAAAAEgAgABoLA")
    assert app.sctp_init[0] == 1 and len(app.sctp_init) == 30  # an SCTP INIT chunk (RFC 9260 §3.3.2)


def test_chromium_audio_only_and_datachannel_only() -> None:
    audio_only = parse_offer(load("chromium_audio_only.sdp"))
    assert audio_only.application is None and audio_only.bundle == ("0",) and audio_only.ice_ufrag == "/5mD"
    dc_only = parse_offer(load("chromium_datachannel_only.sdp"))
    assert dc_only.audio is None and dc_only.application is not None and dc_only.application.mid == "0"


def test_aiortc_offer() -> None:
    offer = parse_offer(load("aiortc.sdp"))
    assert offer.audio is not None and offer.audio.opus.payload_type == 96 and offer.audio.opus_params == {}
    assert [c.encoding for c in offer.audio.codecs] == ["opus", "G722", "PCMU", "PCMA"]
    assert not offer.audio.rtcp_rsize and offer.ice_options == ()
    assert [f.algorithm for f in offer.fingerprints] == ["sha-256", "sha-384", "sha-512"]
    assert [(c.address, c.port) for c in offer.candidates] == [("127.0.0.1", 47314), ("fd00::2", 37551)]
    assert offer.transport.end_of_candidates
    assert offer.application is not None and offer.application.max_message_size == 262144


def test_firefox_offer_uses_session_level_fingerprint() -> None:
    offer = parse_offer(load("firefox.sdp"))
    assert offer.fingerprints[0].value.startswith("5C:1E:9A") and offer.ice_ufrag == "8c1d2e3f"
    assert offer.audio is not None and offer.audio.opus.payload_type == 109
    assert offer.audio.opus_params == {"maxplaybackrate": "48000", "stereo": "1", "useinbandfec": "1"}
    assert offer.audio.extmaps[1].direction == "recvonly"
    assert offer.audio.codecs[-1].fmtp == "0-15"
    assert offer.audio.msids[0][0] == "{1a7c2d9e-3b4f-4e6a-9c8d-7f6e5d4c3b2a}"
    assert offer.application is not None and offer.application.max_message_size == 1073741823


def test_werift_offer_with_lf_line_endings() -> None:
    text = load("werift.sdp")
    assert "\r" not in text
    offer = parse_offer(text)
    assert offer.audio is not None and offer.audio.opus.rtcp_fb == ("nack",)
    assert offer.candidates[0].foundation == "0" and offer.application is not None
    assert offer.application.max_message_size == 65536


def test_video_is_declined_in_place() -> None:
    offer = parse_offer(load("chromium_video.sdp"))
    assert [type(m) for m in offer.media] == [AudioSection, DeclinedSection, ApplicationSection]
    video = offer.media[1]
    assert isinstance(video, DeclinedSection) and video.kind == "video" and video.mid == "1"
    assert offer.bundle == ("0", "1", "2")


@pytest.mark.parametrize("name", FILES)
def test_crlf_and_lf_parse_the_same(name: str) -> None:
    text = load(name).replace("\r\n", "\n")
    assert parse_offer(text) == parse_offer(text.replace("\n", "\r\n"))


# ------------------------------------------------------------------------------------------ answers

CHROMIUM_ANSWER = """v=0
o=- 42 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=ice-lite
a=msid-semantic: WMS *
m=audio 3478 UDP/TLS/RTP/SAVPF 111
c=IN IP4 203.0.113.7
a=mid:0
a=ice-ufrag:1vxAbCdEfGhIjKlM
a=ice-pwd:ourpasswordourpassword24
a=ice-options:ice2
a=fingerprint:sha-256 {fp}
a=setup:active
a=sendrecv
a=msid:vx vx-audio
a=rtcp-mux
a=rtcp-rsize
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=ssrc:305441741 cname:voxwire
a=candidate:{foundation} 1 udp 2130706431 203.0.113.7 3478 typ host
a=end-of-candidates
m=application 3478 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 203.0.113.7
a=mid:1
a=ice-ufrag:1vxAbCdEfGhIjKlM
a=ice-pwd:ourpasswordourpassword24
a=ice-options:ice2
a=fingerprint:sha-256 {fp}
a=setup:active
a=sctp-port:5000
a=max-message-size:262144
a=candidate:{foundation} 1 udp 2130706431 203.0.113.7 3478 typ host
a=end-of-candidates
"""


def test_chromium_answer_exactly() -> None:
    answer = build_answer(parse_offer(load("chromium_audio_datachannel.sdp")), params(extmaps=(AUDIO_LEVEL,)))
    foundation = answer.split("a=candidate:")[1].split(" ")[0]
    expected = CHROMIUM_ANSWER.format(fp=OUR_FINGERPRINT.value, foundation=foundation).replace("\n", "\r\n")
    assert answer == expected
    assert "trickle" not in answer and "transport-cc" not in answer and "rtcp-fb" not in answer


@pytest.mark.parametrize("name", FILES)
def test_answer_mirrors_the_offer_and_reads_back(name: str) -> None:
    offer = parse_offer(load(name))
    answer = build_answer(offer, params())
    back = parse_description(answer)
    assert back.ice_lite and back.setup == "active" and back.ice_ufrag == "1vxAbCdEfGhIjKlM"
    assert back.fingerprints == (OUR_FINGERPRINT,) and back.ice_options == ("ice2",)
    assert [(m.kind, m.mid, m.proto) for m in back.media] == [(m.kind, m.mid, m.proto) for m in offer.media]
    for ours, theirs in zip(back.media, offer.media, strict=True):
        assert type(ours) is type(theirs)
        assert ours.port == (0 if isinstance(theirs, DeclinedSection) else 3478)
    if offer.audio is not None:
        assert back.audio is not None and back.audio.formats == (str(offer.audio.opus.payload_type),)
        assert [c.payload_type for c in back.audio.codecs] == [offer.audio.opus.payload_type]
    accepted = tuple(m.mid for m in offer.media if not isinstance(m, DeclinedSection))
    assert back.bundle == accepted
    assert answer.count("a=group:BUNDLE") == 1


def test_declined_section_has_port_zero_and_mid_only() -> None:
    answer = build_answer(parse_offer(load("chromium_video.sdp")), params())
    video = answer.split("m=video")[1].split("m=application")[0]
    assert video == " 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
    assert "a=group:BUNDLE 0 2\r\n" in answer


def test_no_candidates_means_discard_port() -> None:
    answer = build_answer(parse_offer(load("chromium_audio_only.sdp")), params(candidates=()))
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n" in answer
    assert "a=candidate" not in answer and answer.endswith("a=end-of-candidates\r\n")


def test_candidates_priority_foundation_and_ipv6() -> None:
    ours = params(candidates=(("2001:db8::7", 4000), ("203.0.113.7", 4001)))
    answer = build_answer(parse_offer(load("chromium_audio_only.sdp")), ours)
    back = parse_description(answer)
    assert "c=IN IP6 2001:db8::7\r\n" in answer and back.audio is not None and back.audio.port == 4000
    assert [(c.address, c.port, c.priority, c.type, c.transport) for c in back.candidates] == [
        ("2001:db8::7", 4000, 2130706431, "host", "udp"), ("203.0.113.7", 4001, 2130706175, "host", "udp")]
    assert host_priority(0) == (126 << 24) + (65535 << 8) + 255
    again = parse_description(build_answer(parse_offer(load("aiortc.sdp")), ours))
    assert [c.foundation for c in again.candidates] == [c.foundation for c in back.candidates]
    assert back.candidates[0].foundation != back.candidates[1].foundation


@pytest.mark.parametrize(("offered", "answered", "sending"), [
    ("sendrecv", "sendrecv", True), ("sendonly", "recvonly", False),
    ("recvonly", "sendonly", True), ("inactive", "inactive", False)])
def test_direction_is_answered_per_rfc3264(offered: str, answered: str, sending: bool) -> None:
    text = edit(load("chromium_audio_only.sdp"), "a=sendrecv", f"a={offered}")
    answer = build_answer(parse_offer(text), params())
    assert f"a={answered}\r\n" in answer
    assert ("a=msid:vx vx-audio" in answer) is sending and ("a=ssrc:" in answer) is sending


def test_setup_roles() -> None:
    assert answer_setup("actpass", "active") == "active" and answer_setup("actpass", "passive") == "passive"
    assert answer_setup("active", "active") == "passive" and answer_setup("passive", "passive") == "active"
    text = edit(load("chromium_audio_only.sdp"), "a=setup:actpass", "a=setup:active")
    offer = parse_offer(text)
    assert offer.setup == "active"
    assert "a=setup:passive" in build_answer(offer, params(setup="passive"))
    with pytest.raises(ValueError, match="cannot answer"):
        build_answer(offer, params(setup="active"))
    absent = parse_offer(edit(load("chromium_audio_only.sdp"), "a=setup:actpass\r\n", ""))
    assert absent.setup == "active"  # RFC 4145 §4.1


def test_extmaps_are_answered_with_the_offered_ids() -> None:
    offer = parse_offer(load("firefox.sdp"))
    uri = "urn:ietf:params:rtp-hdrext:csrc-audio-level"
    answer = build_answer(offer, params(extmaps=(uri, "urn:example:not-offered")))
    assert f"a=extmap:2/sendonly {uri}\r\n" in answer and answer.count("a=extmap") == 1
    assert "a=extmap" not in build_answer(offer, params())


def test_sctp_init_answered_only_when_offered() -> None:
    ours = params(sctp_init=b"\x01\x00\x00\x14" + bytes(16))
    snap = build_answer(parse_offer(load("chromium_snap.sdp")), ours)
    assert "a=sctp-init:" + base64.b64encode(ours.sctp_init or b"").decode() + "\r\n" in snap
    back = parse_description(snap).application
    assert back is not None and back.sctp_init == ours.sctp_init
    assert "sctp-init" not in build_answer(parse_offer(load("chromium_audio_datachannel.sdp")), ours)
    assert "sctp-init" not in build_answer(parse_offer(load("chromium_snap.sdp")), params())


def test_opus_params_and_rtcp_rsize_follow_the_offer() -> None:
    answer = build_answer(parse_offer(load("aiortc.sdp")), params(opus_params=(("usedtx", "1"),)))
    assert "a=fmtp:96 usedtx=1\r\n" in answer and "a=rtcp-rsize" not in answer
    assert "a=fmtp" not in build_answer(parse_offer(load("aiortc.sdp")), params(opus_params=()))


@pytest.mark.parametrize("change", [
    {"ice_ufrag": "abc"}, {"ice_pwd": "short"}, {"setup": "actpass"}, {"candidates": (("host.example", 1),)},
    {"audio_ssrc": 2**32}, {"cname": "two words"}, {"fingerprint": Fingerprint("sha-1", "AB")},
    {"opus_params": (("a;b", "1"),)}, {"sctp_init": b""}])
def test_answer_params_are_validated(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="invalid AnswerParams"):
        params(**change)


# -------------------------------------------------------------------------------- session structure


def test_media_level_ice_overrides_session_level() -> None:
    text = edit(load("firefox.sdp"), "a=ice-options:trickle\r\n",
                "a=ice-options:trickle\r\na=ice-ufrag:SESSION\r\na=ice-pwd:sessionpasswordsessionpw\r\n")
    assert parse_offer(text).ice_ufrag == "8c1d2e3f"
    only_session = text.replace("a=ice-ufrag:8c1d2e3f\r\n", "").replace("a=ice-pwd:e3f0b3c59d2c1f4e8a9b7c6d5e4f3a2b\r\n", "")
    offer = parse_offer(only_session)
    assert (offer.ice_ufrag, offer.ice_pwd) == ("SESSION", "sessionpasswordsessionpw")


def test_bundle_tag_section_provides_the_transport() -> None:
    text = edit(load("chromium_audio_datachannel.sdp"), "a=ice-ufrag:Zmoy\r\n", "a=ice-ufrag:App1\r\n", 2)
    text = edit(text, "a=ice-ufrag:App1\r\n", "a=ice-ufrag:Aud0\r\n", 1)
    assert parse_offer(text).ice_ufrag == "Aud0"
    assert parse_offer(edit(text, "a=group:BUNDLE 0 1", "a=group:BUNDLE 1 0")).ice_ufrag == "App1"


def test_ice_options_are_kept() -> None:
    text = edit(load("chromium_audio_only.sdp"), "a=ice-options:trickle", "a=ice-options:trickle ice2 sped")
    assert parse_offer(text).ice_options == ("trickle", "ice2", "sped")


def test_datachannel_defaults_and_unlimited_size() -> None:
    text = edit(load("chromium_datachannel_only.sdp"), "a=sctp-port:5000\r\na=max-message-size:262144\r\n", "")
    app = parse_offer(text).application
    assert app is not None and (app.sctp_port, app.max_message_size) == (5000, 65536)
    text = edit(load("chromium_datachannel_only.sdp"), "a=max-message-size:262144", "a=max-message-size:0")
    assert parse_offer(text).application.max_message_size == 0  # type: ignore[union-attr]


def test_disabled_and_extra_sections_are_declined() -> None:
    text = load("chromium_audio_datachannel.sdp")
    second_audio = text.split("m=application")[0].split("m=audio")[1].replace("a=mid:0", "a=mid:2")
    offer = parse_offer(text + "m=audio" + second_audio)
    assert isinstance(offer.media[2], DeclinedSection) and offer.media[2].reason == "only one audio m-section is supported"
    disabled = parse_offer(edit(text, "m=audio 9 ", "m=audio 0 "))
    assert disabled.audio is None and isinstance(disabled.media[0], DeclinedSection)
    assert disabled.bundle == ("0", "1") and "a=group:BUNDLE 1\r\n" in build_answer(disabled, params())


def test_bundle_only_section_with_port_zero_is_accepted() -> None:
    text = edit(load("chromium_audio_datachannel.sdp"), "m=application 9 ", "m=application 0 ")
    text = edit(text, "a=mid:1\r\n", "a=mid:1\r\na=bundle-only\r\n")
    assert parse_offer(text).application is not None


def test_no_bundle_needed_for_a_single_section() -> None:
    offer = parse_offer(edit(load("chromium_audio_only.sdp"), "a=group:BUNDLE 0\r\n", ""))
    assert offer.bundle == () and "a=group" not in build_answer(offer, params())


# ------------------------------------------------------------------------------------------- errors

CHROMIUM = load("chromium_audio_datachannel.sdp")
PWD = "3SiwrrSrtGsnABp9FPPLQrp7"
FP = CHROMIUM.split("a=fingerprint:sha-256 ")[1].split("\r\n")[0]


@pytest.mark.parametrize(("text", "message"), [
    (CHROMIUM.replace("a=ice-ufrag:Zmoy\r\n", ""), "m=audio (line 8): a=ice-ufrag is missing"),
    (CHROMIUM.replace(PWD, "tooshort"), "line 14: a=ice-pwd: must be 22..256 ice-chars"),
    (CHROMIUM.replace("a=ice-ufrag:Zmoy", "a=ice-ufrag:Zm"), "a=ice-ufrag: must be 4..256 ice-chars"),
    (CHROMIUM.replace("a=ice-ufrag:Zmoy", "a=ice-ufrag:Zm_y"), "a=ice-ufrag: must be 4..256 ice-chars"),
    (CHROMIUM.replace("a=ice-ufrag:Zmoy", "a=ice-ufrag:Zmoy\r\na=ice-ufrag:Zmoy", 1), "a=ice-ufrag appears twice"),
    (CHROMIUM.replace(f"a=fingerprint:sha-256 {FP}\r\n", ""), "no a=fingerprint with sha-256"),
    (CHROMIUM.replace(f"sha-256 {FP}", "sha-1 " + ":".join(["AB"] * 20)), "no a=fingerprint with sha-256"),
    (CHROMIUM.replace(f"sha-256 {FP}", "sha-256 AB:CD"), "a sha-256 fingerprint has 32 bytes"),
    (CHROMIUM.replace(f"sha-256 {FP}", "sha-256 not-hex"), "a=fingerprint: expected"),
    (CHROMIUM.replace("a=rtcp-mux\r\n", ""), "m=audio (line 8): rtcp-mux is required"),
    (CHROMIUM.replace("opus/48000/2", "speex/16000"), "no Opus payload type offered"),
    (CHROMIUM.replace("opus/48000/2", "opus/48000"), "no Opus payload type offered"),
    (CHROMIUM.replace("a=setup:actpass", "a=setup:holdconn"), "a=setup: holdconn is not supported"),
    (CHROMIUM.replace("a=setup:actpass", "a=setup:maybe"), "a=setup: expected actpass, active or passive"),
    (CHROMIUM.replace("t=0 0\r\n", "t=0 0\r\na=ice-lite\r\n"), "the offerer is an ICE-lite agent"),
    (CHROMIUM.replace("a=group:BUNDLE 0 1\r\n", ""), "must be in one a=group:BUNDLE"),
    (CHROMIUM.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 7"), "no m-section has mid '7'"),
    (CHROMIUM.replace("a=mid:1", "a=mid:0"), "mid '0' is used by two m-sections"),
    (CHROMIUM.replace("UDP/DTLS/SCTP webrtc-datachannel", "DTLS/SCTP 5000"), "legacy 'DTLS/SCTP <port>'"),
    (CHROMIUM.replace("UDP/DTLS/SCTP webrtc-datachannel", "TCP/DTLS/SCTP webrtc-datachannel"),
     "data channels need proto UDP/DTLS/SCTP"),
    (CHROMIUM.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP"), "proto 'RTP/AVP' is not supported"),
    (CHROMIUM.replace("m=audio", "m=video").replace("m=application", "m=text"), "no audio m-section and no data"),
    (CHROMIUM.replace("a=max-message-size:262144", "a=sctp-init:!!notbase64"), "a=sctp-init: not valid base64"),
    (CHROMIUM.replace("a=sctp-port:5000", "a=sctp-port:70000"), "a=sctp-port: '70000' is not a number in 1..65535"),
    (CHROMIUM.replace("typ host generation 0", "typ"), "a=candidate: expected"),
    (CHROMIUM.replace("2113937151", "99999999999"), "a=candidate priority"),
    (CHROMIUM.replace("a=rtpmap:63 red/48000/2", "a=rtpmap:63 red"), "a=rtpmap clock rate"),
    (CHROMIUM.replace("m=audio 9 ", "m=audio 9/2 "), "m=audio port"),
    (CHROMIUM.replace("m=audio 9 UDP/TLS/RTP/SAVPF 111", "m=audio 9 UDP/TLS/RTP/SAVPF x111"), "m=audio payload type"),
    (CHROMIUM.replace("minptime=10;", "minptime;"), "'minptime' is not 'name=value'"),
    (CHROMIUM.replace("a=sendrecv", "a=sendrecv\r\na=recvonly"), "a second direction attribute"),
    (CHROMIUM.replace("o=- 7311373838320827678 2 IN IP4 127.0.0.1\r\n", ""), "no o= line"),
    (CHROMIUM.replace("s=-", "s-"), "line 3: expected '<letter>=<value>'"),
    (CHROMIUM.replace("s=-", "s=\x00"), "line 3: control character U+0000"),
    (CHROMIUM.replace("o=- 7311373838320827678 2 IN IP4", "o=- 2 IN IP4"), "o= must have 6 fields"),
    (CHROMIUM + "m=video 0 RTP/AVP 0\r\n" * MAX_MEDIA_SECTIONS, f"more than {MAX_MEDIA_SECTIONS} m-sections"),
    ("hello, world", "not an SDP description"),
    ("", "not an SDP description"),
    (bytes(range(256)).decode("latin-1"), "not an SDP description"),
    ("v=0\r\n" + "a=x\r\n" * MAX_SDP_LINES, f"more than {MAX_SDP_LINES} lines"),
    ("v=0\r\n" + "a=" + "x" * MAX_SDP_SIZE, f"the limit is {MAX_SDP_SIZE}"),
])
def test_bad_offers_are_rejected_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(SdpError) as caught:
        parse_offer(text)
    assert message in str(caught.value)
    assert PWD not in str(caught.value)


def test_error_is_a_parse_error() -> None:
    assert issubclass(SdpError, ParseError)


# -------------------------------------------------------------------------------------- properties

ANSWER = params(extmaps=(AUDIO_LEVEL,), sctp_init=bytes(20))


def check(text: str) -> None:
    """Parsing yields an Offer or SdpError; an Offer always has an answer that reads back."""
    try:
        offer = parse_offer(text)
    except SdpError:
        return
    assert isinstance(offer, Offer)
    setup = answer_setup(offer.setup, "active")
    parse_description(build_answer(offer, dataclasses.replace(ANSWER, setup=setup)))


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_is_an_offer_or_an_sdp_error(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(CHROMIUM.splitlines()) | st.text(max_size=30).map("a=".__add__), max_size=60))
def test_shuffled_offer_lines_are_an_offer_or_an_sdp_error(lines: list[str]) -> None:
    check("\r\n".join(["v=0", *lines]))


MUTATIONS = st.sampled_from(["replace", "delete", "duplicate", "truncate", "insert"])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FILES), st.lists(st.tuples(MUTATIONS, st.integers(0, 200), st.text(max_size=40)),
                                        min_size=1, max_size=4))
def test_mutated_captured_offers_are_an_offer_or_an_sdp_error(name: str, edits: list[tuple[str, int, str]]) -> None:
    lines = load(name).split("\r\n") if name != "werift.sdp" else load(name).split("\n")
    for how, where, text in edits:
        index = where % len(lines)
        line = lines[index]
        if how == "replace":
            lines[index] = line[:2] + text if line[:2] else text
        elif how == "delete":
            del lines[index]
        elif how == "duplicate":
            lines.insert(index, line)
        elif how == "truncate":
            lines[index] = line[: len(text)]
        else:
            lines.insert(index, text)
        if not lines:
            lines = [""]
    check("\r\n".join(lines))
