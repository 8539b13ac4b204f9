"""The talk page in headless Chromium against `voxwire serve` (the echo agent, fast and deterministic).

* A call end to end, driven by clicks: the client secret comes from POST /session, the timeline
  fills in, mute silences what the agent hears (so the echo goes quiet), the live charts fill from
  getStats(), the transcript and the speaking indicators follow the oai-events channel (the test
  turns server_vad on: the echo agent starts with it off), the page fits a phone screen, and hang-up
  frees the call on the server. Screenshots go to artifacts/ (desktop and phone).
* What users are told when it goes wrong: the server is down, the API key is wrong (then a right
  key typed into the page works), the server drops the call.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from . import browser as harness
from .browser import (
    REPO,
    free_port,
    launch_browser,
    open_page,
    recording,
    rms_dbfs,
    run_server,
    voxwire_command,
    wait_for,
)

ARTIFACTS = REPO / "artifacts" / "e2e"
API_KEY = "vx-talk-page-key-0123456789abcdef"
#: server_vad on with short silences, so the looping speech (with pauses) makes turns quickly.
VAD_ON = {
    "type": "session.update",
    "session": {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 400}}}},
}


NO_BARGE_IN = {
    "type": "session.update",
    "session": {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "interrupt_response": False}}}},
}


def speech_with_pauses(text: str = harness.DEFAULT_PHRASE) -> Path:
    """Speech followed by 1.5 s of silence: the VAD sees turns end."""
    plain = harness.speech_wav(text)
    out = plain.with_name(plain.stem + "-pause1500.wav")
    if not out.exists():
        part = out.with_suffix(".part.wav")
        subprocess.run(["sox", str(plain), str(part), "pad", "0", "1.5"], check=True)
        shutil.move(part, out)
    return out


#: Short, so the assistant's first turn comes soon; the pause ends each turn.
PHRASE = "Testing voxwire, one two three."


@pytest.fixture(scope="module")
def talk_browser():
    """One Chromium for the module (Playwright's sync API allows one at a time per thread)."""
    with launch_browser(speech_with_pauses(PHRASE)) as context:
        yield context


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    with run_server(voxwire_command(port, udp_port, "--log-level", "debug"), port=port,
                    log_dir=tmp_path_factory.mktemp("talk")) as srv:
        yield srv


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def server_calls(server) -> int:
    with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
        return json.load(resp)["calls"]


def wait_until(page, expression: str, timeout: float = 10.0, arg=None) -> None:
    page.wait_for_function(expression, arg=arg, timeout=timeout * 1000)


def remote_level(page, seconds: float) -> float:
    """dBFS of the last `seconds` of what the page played (the agent's audio)."""
    rec = recording(page)
    return rms_dbfs(rec.remote[-int(seconds * rec.rate):])


def painted_pixels(page, selector: str) -> int:
    return page.evaluate(
        """(sel) => { const c = document.querySelector(sel);
           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
           let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""",
        selector,
    )


def test_a_call_through_the_talk_page(server, talk_browser):
    page = open_page(talk_browser, server.url)
    page.set_viewport_size({"width": 1100, "height": 1200})
    assert page.text_content("#talk") == "Start" and page.is_disabled("#mute")
    page.click("#talk")
    wait_for(page, "first_audio", timeout=15)
    wait_for(page, "session_created")
    timeline = harness.timeline(page)
    for event in ("client_secret", "mic", "offer_sent", "answer_received", "ice_connected", "dtls_connected",
                  "connected", "datachannel_open", "session_created", "first_audio"):
        assert event in timeline, (event, timeline)
    assert timeline["offer_sent"] < timeline["answer_received"] < timeline["dtls_connected"] < timeline["first_audio"]
    assert page.locator("#timeline tr").count() == len(harness.timeline(page))
    assert page.text_content("#talk") == "Hang up"

    # Mute: the microphone track goes silent, so the echo does too.
    page.wait_for_timeout(2500)
    before = remote_level(page, 2.5)
    page.click("#mute")
    assert page.evaluate("window.voxwire.muted") and page.get_attribute("#mute", "aria-pressed") == "true"
    page.wait_for_timeout(3000)
    muted = remote_level(page, 2.5)
    page.click("#mute")
    assert not page.evaluate("window.voxwire.muted") and page.text_content("#mute") == "Mute"
    print(f"\necho level {before:.1f} dBFS, muted {muted:.1f} dBFS")
    assert before > -45 and muted < before - 20, (before, muted)

    # The transcript and who is speaking, from the oai-events channel (server_vad on for echo).
    page.evaluate("(e) => window.voxwire.channel.send(JSON.stringify(e))", VAD_ON)
    wait_until(page, "window.voxwire.transcript.some((e) => e.role === 'assistant' && /echo of/.test(e.text))",
               timeout=20)
    wait_until(page, "(window.voxwire.events['input_audio_buffer.speech_started'] || 0) >= 1")
    wait_until(page, "window.voxwire.speaking.assistant === true")
    assert page.locator("#transcript li.user").count() >= 1
    assert "echo of" in page.text_content("#transcript li.assistant")

    # Live charts from getStats().
    wait_until(page, "['rtt', 'jitter', 'level'].every((k) => window.voxwire.series[k].filter((v) => v !== null).length >= 2)",
               timeout=10)
    series = page.evaluate("window.voxwire.series")
    rtt = [v for v in series["rtt"] if v is not None]
    assert 0 <= np.median(rtt) < 200, rtt
    for chart in ("rtt", "jitter", "lost", "jitter-buffer", "level"):
        assert painted_pixels(page, f"#chart-{chart}") > 100, chart

    page.screenshot(path=str(artifact("talk-page.png")), full_page=True)
    for selector in ("#talk", "#mute", "#who-user", "#who-assistant", "#transcript li.assistant", "#timeline",
                     "#chart-rtt", "#chart-level"):
        assert page.is_visible(selector), selector

    # A phone-sized screen: nothing wider than the viewport, the controls still there.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(artifact("talk-page-phone.png")), full_page=True)
    box = page.locator("#talk").bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390

    # Hang up: the server frees the call.
    page.click("#talk")
    assert page.evaluate("window.voxwire.state") == "ended"
    for _ in range(60):
        if server_calls(server) == 0:
            break
        page.wait_for_timeout(50)
    assert server_calls(server) == 0
    assert page.text_content("#status") == "Call ended."
    assert page.console_errors == []


def test_the_server_ends_the_call(server, talk_browser):
    page = open_page(talk_browser, server.url)
    page.click("#talk")
    wait_for(page, "first_audio", timeout=15)
    url = page.evaluate("window.voxwire.callUrl")
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5)
    wait_until(page, "window.voxwire.state === 'failed'", timeout=10)
    error = page.evaluate("window.voxwire.error")
    assert error == page.text_content("#status")
    assert "server ended the call" in error or "Connection lost" in error, error
    assert page.text_content("#talk") == "Start"


def test_server_down(talk_browser, tmp_path):
    port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    with run_server(voxwire_command(port, udp_port), port=port, log_dir=tmp_path) as srv:
        page = open_page(talk_browser, srv.url)
        srv.proc.terminate()
        srv.proc.wait(5)
    page.click("#talk")
    wait_until(page, "window.voxwire.state === 'failed'")
    error = page.evaluate("window.voxwire.error")
    assert "Server unreachable" in error and error == page.text_content("#status")
    assert "error" in page.get_attribute("#status", "class")


def test_wrong_key_then_the_right_one(talk_browser, tmp_path):
    port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    env = {"VOXWIRE_API_KEYS": API_KEY}
    with run_server(voxwire_command(port, udp_port), port=port, env=env, log_dir=tmp_path) as srv:
        page = open_page(talk_browser, srv.url)
        page.click("#talk")  # no key: the server will not mint a client secret
        wait_until(page, "window.voxwire.state === 'failed'")
        error = page.evaluate("window.voxwire.error")
        assert "Authentication refused (HTTP 401)" in error, error
        assert page.is_visible("#key-form")
        page.fill("#key", "not-the-key-0123456789")
        page.click("#key-form button")
        page.click("#talk")
        wait_until(page, "window.voxwire.state === 'failed'")
        assert "Authentication refused" in page.evaluate("window.voxwire.error")
        page.screenshot(path=str(artifact("talk-page-auth-error.png")))
        page.fill("#key", API_KEY)
        page.click("#key-form button")
        page.click("#talk")
        wait_for(page, "datachannel_open", timeout=15)
        assert page.evaluate("window.voxwire.error") is None
        page.click("#talk")
        assert API_KEY not in srv.log()


def test_the_assistant_fills_both_sides_of_the_transcript(talk_browser, tmp_path):
    """The default agent (offline speech recognition and synthesis): what the fake microphone says
    comes back as the user's transcript, and the assistant's reply is transcribed too."""
    port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    with run_server(voxwire_command(port, udp_port, agent="assistant"), port=port, log_dir=tmp_path) as srv:
        page = open_page(talk_browser, srv.url)
        page.click("#talk")
        wait_for(page, "session_created", timeout=15)
        # The looping microphone would interrupt every reply (barge-in) on a slow machine: not here.
        page.evaluate("(e) => window.voxwire.channel.send(JSON.stringify(e))", NO_BARGE_IN)
        wait_until(page, """window.voxwire.transcript.some((e) => e.role === 'user' && e.text)
                            && window.voxwire.transcript.some((e) => e.role === 'assistant' && e.text)""", timeout=20)
        transcript = page.evaluate("window.voxwire.transcript")
        heard = " ".join(e["text"] for e in transcript if e["role"] == "user").lower()
        print(f"\ntranscript: {transcript}")
        assert any(word in heard for word in ("testing", "one", "two", "three", "1", "2", "3")), heard
        assert page.evaluate("window.voxwire.events['input_audio_buffer.speech_stopped'] >= 1")
        wait_until(page, "window.voxwire.speaking.assistant === true", timeout=10)
        page.screenshot(path=str(artifact("talk-page-assistant.png")), full_page=True)
        page.click("#talk")
