"""The operator dashboard and /metrics in headless Chromium against `voxwire serve` (echo agent).

* A call placed from the talk page appears on the dashboard (live, without reloading) with its state,
  client address, codec, RTCP round-trip time; its detail view draws charts over the call's life;
  after hang-up it disappears and is listed as recently ended. /metrics, parsed with the Prometheus
  parser, counts the call while it lives and after it ends. A screenshot goes to artifacts/.
* With API keys configured the dashboard's data and /metrics need the key: the page asks for it
  and then shows the live sessions.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .browser import free_port, open_page, run_server, voxwire_command, wait_for
from .test_talk_page import artifact, server_calls

API_KEY = "vx-dashboard-key-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    with run_server(voxwire_command(port, udp_port, "--log-level", "debug"), port=port,
                    log_dir=tmp_path_factory.mktemp("dashboard")) as srv:
        yield srv


def metrics(server, key: str | None = None) -> dict[tuple[str, tuple], float]:
    request = urllib.request.Request(server.url + "/metrics")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(parsed, name: str, **labels: str) -> float:
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)


def open_dashboard(browser, url: str):
    page = browser.new_page()
    page.console_errors = []
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(url + "/dashboard")
    page.wait_for_function("window.dashboard !== undefined")
    return page


def test_a_call_appears_and_disappears(server, browser):
    board = open_dashboard(browser, server.url)
    board.wait_for_function("window.dashboard.live && window.dashboard.updates >= 1", timeout=10000)
    assert board.locator("#sessions tbody tr.empty").count() == 1
    before = metrics(server)

    talk = open_page(browser, server.url, "?raw=1")
    talk.click("#talk")
    wait_for(talk, "first_audio", timeout=15)
    call_id = talk.evaluate("window.voxwire.callUrl").rsplit("/", 1)[1]
    row = f'#sessions tbody tr[data-id="{call_id}"]'
    board.wait_for_selector(row, timeout=5000)
    board.wait_for_function("(id) => window.dashboard.overview.sessions.some((s) => s.id === id && s.rtt_ms !== null)",
                            arg=call_id, timeout=25000)  # SRs and Chrome's reports: every ~5 s
    session = board.evaluate("(id) => window.dashboard.overview.sessions.find((s) => s.id === id)", call_id)
    assert session["state"] == "connected" and session["datachannel"] is True
    assert session["client"].startswith("127.0.0.1:") and session["codec"].startswith("opus/48000/2")
    assert 0 <= session["rtt_ms"] < 200 and session["packets_in"] > 0 and session["packets_out"] > 0
    assert board.get_attribute(row, "data-state") == "connected"
    assert "127.0.0.1:" in board.text_content(row)

    # The detail view: setup timeline, counters, charts over the call's life.
    board.click(row)
    board.wait_for_function("window.dashboard.detail && window.dashboard.detail.history.points.length >= 3",
                            timeout=10000)
    detail = board.evaluate("window.dashboard.detail")
    assert detail["id"] == call_id and detail["timeline_ms"]["connected"] is not None
    assert board.is_visible("#detail") and board.locator("#detail-timeline tr").count() >= 4
    painted = board.evaluate("""() => ['rtt', 'jitter', 'loss', 'pps'].map((n) => {
        const c = document.getElementById('detail-' + n);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let k = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) k++; return k; })""")
    assert all(p > 100 for p in painted), painted
    board.screenshot(path=str(artifact("dashboard.png")), full_page=True)
    for selector in ("#load .card", "#sessions", row, "#detail", "#detail-rtt", "#drops"):
        assert board.is_visible(selector), selector

    during = metrics(server)
    assert sample(during, "voxwire_calls_created_total") == sample(before, "voxwire_calls_created_total") + 1
    assert sample(during, "voxwire_sessions", state="connected") == 1
    assert sample(during, "voxwire_udp_datagrams_total", direction="in", kind="rtp") > 50
    assert sample(during, "voxwire_udp_datagrams_total", direction="out", kind="rtcp") >= 1
    assert sample(during, "voxwire_rtcp_round_trip_time_seconds_count") >= 1
    assert sample(during, "voxwire_call_setup_phase_seconds_count", phase="datachannel") >= 1

    # Hang-up: the row goes, the call is listed as ended, the counters moved.
    talk.click("#talk")
    board.wait_for_selector(row, state="detached", timeout=5000)
    board.wait_for_function("(id) => window.dashboard.overview.recent.some((r) => r.id === id)", arg=call_id,
                            timeout=5000)
    assert board.locator(f'#recent tr[data-id="{call_id}"]').count() == 1
    assert "(ended)" in board.text_content("#detail-id") or board.evaluate("window.dashboard.detail.id") == call_id
    assert server_calls(server) == 0
    after = metrics(server)
    assert sample(after, "voxwire_sessions", state="connected") == 0
    assert sample(after, "voxwire_calls_ended_total", reason="hung_up") == sample(
        before, "voxwire_calls_ended_total", reason="hung_up") + 1
    assert board.console_errors == [] and talk.console_errors == []
    board.close()
    talk.close()


def test_the_dashboard_needs_the_api_key(browser, tmp_path):
    port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    env = {"VOXWIRE_API_KEYS": API_KEY}
    with run_server(voxwire_command(port, udp_port), port=port, env=env, log_dir=tmp_path) as srv:
        for path in ("/metrics", "/dashboard/api/overview", "/dashboard/api/stream"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(srv.url + path, timeout=5)
            assert refused.value.code == 401, path
            assert json.load(refused.value)["error"]["code"] == "invalid_api_key"
        assert sample(metrics(srv, API_KEY), "voxwire_sessions_max") == 1000

        board = open_dashboard(browser, srv.url)
        board.wait_for_selector("#key-form", state="visible", timeout=5000)
        assert "needs the server API key" in board.text_content("#status")
        board.fill("#key", "wrong-key-0123456789")
        board.click("#key-form button")
        board.wait_for_function("document.getElementById('status').textContent.includes('(refused)')", timeout=5000)
        board.fill("#key", API_KEY)
        board.click("#key-form button")
        board.wait_for_function("window.dashboard.live && window.dashboard.updates >= 1", timeout=10000)
        assert board.is_hidden("#key-form")
        board.close()
