"""`voxwire loadgen` against `voxwire serve --agent echo`: 20 synthetic calls for 5 s on loopback.

Every call must connect and have every frame sent in the measured window echoed back (loopback
loses nothing). Lateness is printed, not asserted: these machines are shared and noisy; the
capacity ramp with its glitch criterion lives in bench/capacity.py.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import urllib.request

import uvloop

from voxwire.loadgen.cli import run_loadgen

from . import browser as harness

CALLS = 20
SECONDS = 5.0


def loadgen_options(url: str, **overrides: object) -> argparse.Namespace:
    opts = dict(
        url=url, calls=CALLS, duration=SECONDS, ramp=40.0, token=None, json=None, data_channel=False,
        session=None, audio="synthetic", bind="127.0.0.1", late_ms=20.0, connect_timeout=10.0,
    )
    opts.update(overrides)
    return argparse.Namespace(**opts)


def test_twenty_echo_calls_connect_and_lose_nothing(tmp_path):
    port = harness.free_port()
    udp_port = harness.free_port(socket.SOCK_DGRAM)
    command = harness.voxwire_command(port, udp_port, "--log-level", "warning", agent="echo")
    with harness.run_server(command, port=port, log_dir=tmp_path) as server:
        report = uvloop.run(run_loadgen(loadgen_options(server.url)))
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
            left = json.load(resp)["calls"]
    window = report["window"]
    print(json.dumps({k: v for k, v in report.items() if k != "per_call"}, indent=1))
    assert report["connected"] == CALLS and report["failed"] == 0, report["errors"]
    assert report["never_echoed"] == 0
    assert window["calls"] == CALLS
    assert window["sent"] >= CALLS * SECONDS * 50 * 0.95, window  # 50 packets/s per call
    assert window["lost"] == 0, window
    for row in report["per_call"]:
        assert row["received"] > 0 and row["lost"] == 0, row
        assert row["setup_keys_ms"] is not None and row["setup_first_echo_ms"] is not None, row
    assert left == 0  # the load generator hung every call up


def test_passthrough_returns_every_packet(tmp_path):
    from voxwire.agent import AGENTS

    if "passthrough" not in AGENTS:
        import pytest

        pytest.skip("the passthrough agent is not registered in voxwire.agent.AGENTS")
    port = harness.free_port()
    udp_port = harness.free_port(socket.SOCK_DGRAM)
    command = harness.voxwire_command(port, udp_port, "--log-level", "warning", agent="passthrough")
    out = tmp_path / "report.json"
    with harness.run_server(command, port=port, log_dir=tmp_path) as server:
        # The command users run, exit status included (0: every call connected and echoed).
        done = subprocess.run(
            [sys.executable, "-m", "voxwire", "loadgen", "--url", server.url, "--calls", "10", "--duration", "3",
             "--audio", "synthetic", "--json", str(out)],
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "10/10 calls connected" in done.stdout
    report = json.loads(out.read_text())
    window = report["window"]
    assert report["connected"] == 10 and report["never_echoed"] == 0, report["errors"]
    assert window["lost"] == 0, window
    for row in report["per_call"]:
        assert row["unmatched"] == 0 and row["duplicates"] == 0 and row["srtp_failures"] == 0, row


def test_loadgen_exits_nonzero_when_calls_fail():
    port = harness.free_port()  # nothing listens there
    done = subprocess.run(
        [sys.executable, "-m", "voxwire", "loadgen", "--url", f"http://127.0.0.1:{port}", "--calls", "2",
         "--duration", "1", "--audio", "synthetic", "--connect-timeout", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0/2 calls connected" in done.stdout, done.stdout
