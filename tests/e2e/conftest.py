"""Fixtures for end-to-end tests: real Chromium, servers in their own processes, loopback only.

Every test here runs inside a private network namespace that has only loopback (scripts/test.sh
and scripts/netns-run.sh arrange it), so nothing leaves the machine and every ICE candidate is
127.0.0.1. Set VOXWIRE_E2E_ANY_NETNS=1 to run them in any namespace anyway.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from . import browser as harness

HERE = Path(__file__).parent
OTHER_PHRASE = "Seven silver swans swam silently seaward, while a cat slept on the warm red mat."


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def loopback_only_netns() -> None:
    # The kernel's view of this process's namespace (/sys/class/net shows whichever namespace
    # mounted sysfs, so it misleads after a plain `unshare -n`).
    others = sorted({name for _, name in socket.if_nameindex()} - {"lo"})
    if others and os.environ.get("VOXWIRE_E2E_ANY_NETNS") != "1":
        pytest.fail(
            f"end-to-end tests need a private network namespace with only loopback, but this one "
            f"also has {', '.join(others)}. Run them through scripts/test.sh, or e.g. "
            f"`scripts/netns-run.sh .venv/bin/pytest tests/e2e` (set VOXWIRE_E2E_ANY_NETNS=1 to "
            f"run here anyway).",
            pytrace=False,
        )
    missing = [tool for tool in (harness.CHROMIUM, "espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-system.sh", pytrace=False)


@pytest.fixture(scope="session")
def speech() -> Path:
    """The fake microphone's speech (48 kHz mono 16-bit WAV)."""
    return harness.speech_wav()


@pytest.fixture(scope="session")
def other_speech() -> Path:
    """Different speech, as a negative control for correlation checks."""
    return harness.speech_wav(OTHER_PHRASE)


@pytest.fixture(scope="module")
def browser(speech: Path):
    """One headless Chromium per test module; its microphone loops `speech`."""
    with harness.launch_browser(speech) as context:
        yield context


@pytest.fixture
def new_page(browser):
    """new_page(url, query="") opens the call page in a fresh tab; the tabs close after the test."""
    opened = []

    def open_page(url: str, query: str = ""):
        opened.append(harness.open_page(browser, url, query))
        return opened[-1]

    yield open_page
    for tab in opened:
        tab.close()


@pytest.fixture(scope="module")
def baseline_server(tmp_path_factory: pytest.TempPathFactory):
    """The aiortc echo baseline (bench/baseline/aiortc_echo.py) in its own process."""
    port = harness.free_port()
    log_dir = tmp_path_factory.mktemp("baseline")
    with harness.run_server(
        harness.baseline_command(port) + ["--verbose"], port=port, log_dir=log_dir
    ) as server:
        yield server


@pytest.fixture(scope="module")
def voxwire_server(tmp_path_factory: pytest.TempPathFactory):
    """`voxwire serve` (echo agent) in its own process, on loopback."""
    port = harness.free_port()
    udp_port = harness.free_port(socket.SOCK_DGRAM)
    log_dir = tmp_path_factory.mktemp("voxwire")
    with harness.run_server(
        harness.voxwire_command(port, udp_port, "--log-level", "debug"), port=port, log_dir=log_dir
    ) as server:
        server.udp_port = udp_port
        yield server
