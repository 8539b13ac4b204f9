"""Self-check of the aiortc client harness (test-only).

The harness's own parts, checked without any server: the correlation measure and the scoped
loopback-candidate patch. The client itself is exercised against voxwire in test_aiortc_echo.py.
"""

from __future__ import annotations

import aioice.ice
import numpy as np

from .aiortc_client import (
    RATE,
    best_correlation,
    loopback_candidates,
    synthetic_speech,
)


def test_best_correlation_finds_delay_despite_level_and_noise() -> None:
    sent = synthetic_speech(2.0)
    rng = np.random.default_rng(7)
    delay = int(0.137 * RATE)
    received = np.concatenate([np.zeros(delay), 0.3 * sent, np.zeros(RATE // 2)])
    received += rng.normal(0, 200, len(received))
    for envelope in (True, False):
        peak, lag = best_correlation(sent, received, envelope=envelope)
        assert peak > 0.8, (envelope, peak)
        assert abs(lag - 0.137) < 0.003, (envelope, lag)
    unrelated = synthetic_speech(2.5, seed=99)
    assert best_correlation(sent, unrelated)[0] < 0.5
    assert best_correlation(sent, np.zeros(RATE)) == (0.0, 0.0)
    assert best_correlation(sent, received, max_lag=0.05)[0] < 0.8


def test_loopback_candidates_is_scoped() -> None:
    with loopback_candidates():
        assert "127.0.0.1" in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
