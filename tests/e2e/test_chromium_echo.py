"""Headless Chromium against `voxwire serve`: the page hears its own speech back through the echo
agent (decode -> resample -> encode), two calls share the one UDP port, hang-up frees the call, and
so does a page that closes its connection without hanging up."""

from __future__ import annotations

import json
import urllib.request

from .browser import echo_call, find_in_loop, read_wav, recording, start_call, stop_call, wait_for


def server_calls(server) -> int:
    with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
        return json.load(resp)["calls"]


def wait_calls(server, page, n: int, timeout_ms: int = 3000) -> None:
    for _ in range(timeout_ms // 50):
        if server_calls(server) == n:
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"server has {server_calls(server)} calls, expected {n}")


def test_chromium_hears_its_own_speech(voxwire_server, new_page, speech, other_speech):
    page = new_page(voxwire_server.url, "?raw=1")
    call = echo_call(page, speech, other_speech)
    call.assert_echoed()
    assert call.events["dtls_connected"] - call.events["offer_sent"] < 1000, call.events
    wait_calls(voxwire_server, page, 0)
    assert page.console_errors == []
    # We offer GCM first; as DTLS server Chromium picks its own preference (AES_CM_80 today).
    assert "connected (AEAD_AES_128_GCM)" in voxwire_server.log() or "connected (AES_CM_128_HMAC_SHA1_80)" in voxwire_server.log()


def test_two_calls_share_the_udp_port(voxwire_server, new_page, speech):
    pages = [new_page(voxwire_server.url, "?raw=1") for _ in range(2)]
    for page in pages:
        start_call(page)
    for page in pages:
        wait_for(page, "first_audio", timeout=15)
    assert server_calls(voxwire_server) == 2
    pages[0].wait_for_timeout(2500)
    sent = read_wav(speech)
    for page in pages:
        rec = recording(page)
        heard = find_in_loop(sent, rec.remote, rec.rate)
        assert heard.corr > 0.6, heard
        # The answer's only candidate is the one shared UDP port.
        answer = page.evaluate("window.voxwire.pc.remoteDescription.sdp") if page.evaluate(
            "!!(window.voxwire.pc)") else None
        if answer is not None:
            ports = {line.split()[5] for line in answer.splitlines() if line.startswith("a=candidate")}
            assert ports == {str(voxwire_server.udp_port)}, ports
    for page in pages:
        stop_call(page)
    wait_calls(voxwire_server, pages[0], 0)


def test_a_page_that_closes_without_delete_frees_its_call(voxwire_server, new_page):
    """Without data channels the server frees its DTLS connection once keyed, so it cannot read
    the close_notify that Chromium's pc.close() sends (and Chromium sends no RTCP BYE): the alert
    record followed by silence ends the call within alert_grace (2 s), not at consent loss (30 s)."""
    page = new_page(voxwire_server.url, "?raw=1&dc=0")
    start_call(page)
    wait_for(page, "first_audio", timeout=15)
    assert server_calls(voxwire_server) == 1
    page.evaluate("window.voxwire.pc.close()")  # no DELETE
    wait_calls(voxwire_server, page, 0, timeout_ms=4000)
    assert "closed: DTLS alert, then no authenticated packet" in voxwire_server.log()
