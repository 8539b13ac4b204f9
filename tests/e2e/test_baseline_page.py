"""Harness self-check: the page and the harness against the aiortc echo baseline.

If these fail, suspect the page, the harness or the machine, not voxwire: the server here is
bench/baseline/aiortc_echo.py.
"""

from __future__ import annotations

import time

from .browser import echo_call, start_call

CALLS = "**/v1/realtime/calls"


def test_page_hears_its_own_speech(baseline_server, new_page, speech, other_speech):
    page = new_page(baseline_server.url, "?raw=1")  # raw microphone: the cleanest signal
    call = echo_call(page, speech, other_speech)
    call.assert_echoed()
    events = call.events
    order = [
        "offer_sent",
        "answer_received",
        "ice_connected",
        "dtls_connected",
        "track_unmuted",
        "first_audio",
    ]
    assert [events[e] for e in order] == sorted(events[e] for e in order), events
    assert page.evaluate("window.voxwire.state") == "ended"
    assert wait_for_log(baseline_server, '"DELETE /v1/realtime/calls/call_'), "hang-up sent no DELETE"
    assert page.console_errors == []


def test_page_shows_the_servers_error_message(baseline_server, new_page):
    page = new_page(baseline_server.url)
    body = {"error": {"type": "invalid_request_error", "message": "the offer has no audio"}}
    page.route(CALLS, lambda route: route.fulfill(status=400, json=body))
    error = failed_call(page)
    assert "HTTP 400" in error and "the offer has no audio" in error, error


def test_page_says_when_the_server_is_unreachable(baseline_server, new_page):
    page = new_page(baseline_server.url)
    page.route(CALLS, lambda route: route.abort("connectionrefused"))
    assert "Server unreachable" in failed_call(page)


def test_page_says_when_the_microphone_is_denied(baseline_server, new_page):
    page = new_page(baseline_server.url)
    page.evaluate("""() => { navigator.mediaDevices.getUserMedia =
        () => Promise.reject(new DOMException("denied", "NotAllowedError")); }""")
    assert "Microphone permission denied" in failed_call(page)


def failed_call(page) -> str:
    start_call(page)
    page.wait_for_function("window.voxwire.state === 'failed'", timeout=5000)
    assert page.text_content("#status") == page.evaluate("window.voxwire.error")
    return page.evaluate("window.voxwire.error")


def wait_for_log(server, text: str, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while text not in server.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
