"""Headless Chromium -> ``voxwire serve --agent realtime-ws`` -> the local Realtime protocol test
server (:mod:`voxwire.testing.realtime_server`), every hop over real sockets.

The test server runs in this process, on an asyncio loop in a thread of its own; ``voxwire serve``
runs in its own process with ``VOXWIRE_REALTIME_URL`` / ``_API_KEY`` / ``_MODEL`` pointing at it.
The fake microphone says one phrase between silences; voxwire's own VAD cuts the turn, the bridge
uploads it (``input_audio_buffer.append`` / ``commit``) and asks for a response; the test server
answers by playing the committed audio back, so the page hears its own phrase come back through
the whole chain (checked by cross-correlation with the WAV), with the server's transcript.

* a turn goes up and the model's audio comes back, in the page's recording and as events;
* a server ``error`` for the response reaches the page as an ``error`` event with the server's
  message, and the response ends ``failed``;
* a WebSocket dropped in the middle of a response (TCP abort) reaches the page as an ``error``
  event, and the next turn reconnects and is answered.

Server events are collected in the page from the ``oai-events`` channel's birth by a hook on
``RTCPeerConnection.prototype.createDataChannel`` (``?dc=1``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from voxwire.testing.realtime_server import RealtimeTestServer, start_realtime_server

from .browser import (
    find_in_loop,
    free_port,
    launch_browser,
    open_page,
    read_wav,
    recording,
    run_server,
    speech_wav,
    start_call,
    stop_call,
    voxwire_command,
    wait_for,
)
from .test_voice_agent import HOOKS, check_page, compose, of_type, server_events, types, wait_event

T = TypeVar("T")
API_KEY = "sk-e2e-realtime-bridge-0123456789"
MODEL = "e2e-model"
PHRASE = "The quick brown fox jumps over the lazy dog."


class ServerThread:
    """The Realtime test server on its own event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="realtime-server", daemon=True)
        self.thread.start()
        self.server: RealtimeTestServer = self.run(start_realtime_server(api_key=API_KEY))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (its state is not thread-safe)."""

        async def wrapped() -> T:
            return fn()

        return self.run(wrapped())

    def close(self) -> None:
        self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def model_server():
    server = ServerThread()
    yield server
    server.close()


@pytest.fixture(scope="module")
def bridge_server(model_server: ServerThread, tmp_path_factory: pytest.TempPathFactory):
    """`voxwire serve --agent realtime-ws` pointed at the test server."""
    port = free_port()
    udp_port = free_port(socket.SOCK_DGRAM)
    env = {
        "VOXWIRE_REALTIME_URL": model_server.server.url,
        "VOXWIRE_REALTIME_API_KEY": API_KEY,
        "VOXWIRE_REALTIME_MODEL": MODEL,
    }
    cmd = voxwire_command(port, udp_port, "--log-level", "info", agent="realtime-ws")
    with run_server(cmd, port=port, env=env, log_dir=tmp_path_factory.mktemp("bridge")) as server:
        yield server


@pytest.fixture(scope="module")
def mic():
    """One phrase, then enough silence for its echo to play out before the file loops."""
    return compose([1.0, PHRASE, 4.5])


@pytest.fixture
def model(model_server: ServerThread):
    """The test server, reset to its defaults for each test."""

    def reset() -> None:
        s = model_server.server
        s._failures.clear()
        s._drops.clear()
        s.received.clear()
        s.sent.clear()
        s.committed.clear()
        s.tone_hz, s.transcript, s.paced, s.chunk_ms = None, None, False, 100

    model_server.call(reset)
    yield model_server
    model_server.call(reset)


def open_call(browser, server):
    page = open_page(browser, server.url, "?dc=1&raw=1")
    page.failed_requests = []
    page.on(
        "response",
        lambda r: r.status >= 400 and page.failed_requests.append(f"{r.request.method} {r.url} {r.status}"),
    )
    page.evaluate(HOOKS)
    start_call(page)
    wait_for(page, "connected", timeout=15)
    return page


def test_a_turn_goes_up_and_the_models_audio_comes_back(bridge_server, model, mic):
    model.call(lambda: setattr(model.server, "transcript", "Here is what you said."))
    with launch_browser(mic.path) as browser:
        page = open_call(browser, bridge_server)
        events = wait_event(page, "output_audio_buffer.stopped", timeout=15)
        rec = recording(page)
        check_page(page)
        stop_call(page)
    got = types(events)
    print(f"\npage events: {got}")
    created = of_type(events, "session.created")[0]["ev"]
    assert created["session"]["model"] == "voxwire-realtime-ws", created
    for kind in ("input_audio_buffer.speech_started", "input_audio_buffer.committed", "response.created"):
        assert kind in got, (kind, got)
    transcript = "".join(e["ev"]["delta"] for e in of_type(events, "response.output_audio_transcript.delta"))
    assert transcript.strip() == "Here is what you said.", transcript
    assert of_type(events, "response.done")[0]["ev"]["response"]["status"] == "completed"

    # What the model server saw: our session configuration, the audio, one commit, one response.
    received = model.call(lambda: model.server.types())
    assert received[0] == "session.update", received
    assert "input_audio_buffer.append" in received
    assert received.count("input_audio_buffer.commit") == 1 and received.count("response.create") == 1, (
        received
    )
    committed = model.call(lambda: list(model.server.committed))
    seconds = len(committed[0]) / 2 / 24_000
    # The bridge streams all input up as it comes (the lead-in silence too) and commits at the turn.
    print(f"the model server got {seconds:.2f} s of audio in the commit")
    assert 2.5 < seconds < mic.seconds, seconds

    # ... and played it back: the page hears its own phrase.
    heard = find_in_loop(read_wav(speech_wav(PHRASE)), rec.remote, rec.rate)
    control = find_in_loop(
        read_wav(speech_wav("Seven silver swans swam silently seaward.")), rec.remote, rec.rate
    )
    print(f"echo through the model server: {heard}; unrelated speech: {control}")
    assert heard.corr <= 1.0001 and heard.corr > 0.6 and heard.windows >= 4, heard
    assert control.corr < heard.corr - 0.2, (heard, control)


def test_a_model_server_error_reaches_the_client(bridge_server, model, mic):
    message = "The model is overloaded (e2e)."
    model.call(lambda: model.server.fail_next_response(message, "server_error"))
    with launch_browser(mic.path) as browser:
        page = open_call(browser, bridge_server)
        page.wait_for_function(
            "() => window.vt.events.some((e) => e.ev.type === 'response.done')", timeout=15_000
        )
        events = server_events(page)
        check_page(page)
        stop_call(page)
    got = types(events)
    print(f"\npage events: {got}")
    errors = of_type(events, "error")
    assert errors and message in errors[0]["ev"]["error"]["message"], errors
    done = of_type(events, "response.done")[0]["ev"]
    assert done["response"]["status"] == "failed", done
    assert got.index("error") < got.index("response.done")
    assert "output_audio_buffer.started" not in got


def test_a_dropped_websocket_reaches_the_client_and_the_next_turn_reconnects(bridge_server, model, mic):
    connections = model.call(lambda: model.server.connections)
    model.call(lambda: model.server.drop_next_response(after_deltas=2))
    with launch_browser(mic.path) as browser:
        page = open_call(browser, bridge_server)
        page.wait_for_function(
            "() => window.vt.events.some((e) => e.ev.type === 'response.done')", timeout=15_000
        )
        first = server_events(page)
        errors = of_type(first, "error")
        assert errors and "closed the connection" in errors[0]["ev"]["error"]["message"], errors
        done = of_type(first, "response.done")[0]["ev"]
        assert done["response"]["status"] == "failed", done
        # The file loops: the phrase comes again, and that turn is answered on a new connection.
        events = wait_event_after(page, "response.done", count=2, timeout=15)
        check_page(page)
        stop_call(page)
    got = types(events)
    print(f"\npage events: {got}")
    second = of_type(events, "response.done")[1]["ev"]
    assert second["response"]["status"] == "completed", second
    reconnects = model.call(lambda: model.server.connections) - connections
    assert reconnects == 2, reconnects  # the call's first connection, then one after the drop


def wait_event_after(page, kind: str, count: int, timeout: float) -> list[dict]:
    """Like wait_event, but the error events seen so far are expected."""
    page.wait_for_function(
        "([kind, count]) => window.vt.events.filter((e) => e.ev.type === kind).length >= count",
        arg=[kind, count],
        timeout=timeout * 1000,
    )
    return server_events(page)
