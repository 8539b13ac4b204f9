"""aiortc (an independent full-ICE WebRTC stack) against `voxwire serve`: audio both ways."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from .aiortc_client import best_correlation, run_aiortc_call, speech_signal

SPEECH = "The quick brown fox jumps over the lazy dog, then counts one two three."
OTHER = "Seven silver swans swam silently seaward, while a cat slept on the warm red mat."


def read_speech(text: str):
    audio = speech_signal(text)
    assert audio is not None, "espeak-ng is missing: run scripts/install-system.sh"
    return audio


def test_aiortc_hears_its_own_speech(voxwire_server):
    audio = read_speech(SPEECH)
    result = asyncio.run(run_aiortc_call(voxwire_server.url, audio=audio, duration=4.0))
    assert result.connected, result.connection_state_history
    corr, lag = best_correlation(result.sent, result.received)
    control, _ = best_correlation(read_speech(OTHER), result.received)
    print(f"\ntimings {result.timings}\ncorrelation {corr:.3f} lag {lag:.3f}s control {control:.3f}")
    assert corr > 0.6 and 0.0 < lag < 0.6, (corr, lag)
    assert control < corr - 0.25
    assert result.delete_status == 204
    # Our answer: ICE-lite, one host candidate on the shared port, Opus only.
    answer = result.answer_sdp
    assert "a=ice-lite" in answer
    assert sum(line.startswith("a=candidate") for line in answer.splitlines()) == 1
    with urllib.request.urlopen(voxwire_server.url + "/healthz", timeout=5) as resp:
        assert json.load(resp)["calls"] == 0
