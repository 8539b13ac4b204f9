"""Self-check of the aiortc client harness against a tiny aiortc echo answerer (test-only).

The answerer serves voxwire's signaling API on 127.0.0.1 in the test's own event loop, so the
harness is validated independently of the voxwire server. Run inside a loopback-only namespace:
``scripts/netns-run.sh .venv/bin/pytest tests/e2e/test_aiortc_client_selfcheck.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aioice.ice
import numpy as np
import pytest
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from .aiortc_client import (
    RATE,
    CallSetupError,
    best_correlation,
    loopback_candidates,
    run_aiortc_call,
    speech_signal,
    synthetic_speech,
)

SPEECH = "The quick brown fox jumps over the lazy dog, then counts one two three."
OTHER_SPEECH = "Seven silver swans swam silently seaward, while a cat slept on the warm red mat."


@asynccontextmanager
async def echo_answerer(token: str | None = None) -> AsyncIterator[str]:
    """An aiortc echo server with voxwire's HTTP API; yields its base URL."""
    calls: dict[str, RTCPeerConnection] = {}

    def authorized(request: web.Request) -> bool:
        return token is None or request.headers.get("Authorization") == f"Bearer {token}"

    async def create(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": {"type": "unauthorized", "message": "token"}}, status=401)
        if request.content_type != "application/sdp":
            return web.json_response({"error": {"type": "bad_request", "message": "sdp"}}, status=415)
        offer = RTCSessionDescription(sdp=await request.text(), type="offer")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        call_id = uuid.uuid4().hex
        calls[call_id] = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                pc.addTrack(track)

        @pc.on("datachannel")
        def on_datachannel(channel) -> None:  # noqa: ANN001 - aiortc's RTCDataChannel
            channel.on("message", lambda message: channel.send(message))

        await pc.setRemoteDescription(offer)
        with loopback_candidates():
            await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(
            status=201,
            body=pc.localDescription.sdp.encode(),
            content_type="application/sdp",
            headers={"Location": f"/v1/realtime/calls/{call_id}"},
        )

    async def delete(request: web.Request) -> web.Response:
        pc = calls.pop(request.match_info["call_id"], None)
        if pc is None:
            return web.json_response({"error": {"type": "not_found", "message": "no such call"}}, status=404)
        await pc.close()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/v1/realtime/calls", create)
    app.router.add_delete("/v1/realtime/calls/{call_id}", delete)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        for pc in calls.values():
            await pc.close()
        await runner.cleanup()


def _candidate_addresses(sdp: str) -> set[str]:
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


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


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_echo_call_round_trip() -> None:
    audio = speech_signal(SPEECH)
    if audio is None:
        audio = synthetic_speech(3.0)
    audio_seconds = len(audio) / RATE

    async def scenario():
        async with echo_answerer(token="secret") as base_url:
            with pytest.raises(CallSetupError) as refused:
                await run_aiortc_call(base_url, audio=audio, duration=0.1, token="wrong")
            assert refused.value.status == 401
            return await run_aiortc_call(
                base_url,
                audio=audio,
                duration=audio_seconds + 1.0,
                token="secret",
                data_channel=True,
                data_channel_send=["ping"],
            )

    result = asyncio.run(scenario())
    print(f"\ntimings: { {k: round(v * 1000, 1) for k, v in result.timings.items()} } ms")
    assert result.connected, result.connection_state_history
    assert "127.0.0.1" in _candidate_addresses(result.offer_sdp)
    assert "127.0.0.1" in _candidate_addresses(result.answer_sdp)
    assert [state for _, state in result.connection_state_history][-2:] == ["connected", "closed"]
    assert result.delete_status == 204
    assert result.data_channel_messages == ["ping"]
    for key in (
        "gather",
        "answer",
        "ice_connected",
        "dtls_connected",
        "first_audio",
        "first_voice",
        "datachannel_open",
    ):
        assert key in result.timings, key
    assert result.timings["answer"] < result.timings["dtls_connected"] < result.timings["first_voice"]
    assert len(result.sent) >= len(audio)
    np.testing.assert_array_equal(result.sent[: len(audio)], audio)

    peak, lag = best_correlation(result.sent, result.received)
    print(
        f"correlation {peak:.3f} at lag {lag * 1000:.0f} ms; "
        f"raw waveform {best_correlation(result.sent, result.received, envelope=False)[0]:.3f}"
    )
    assert peak > 0.5
    assert 0.0 < lag < 1.0
    other = speech_signal(OTHER_SPEECH)
    other = synthetic_speech(3.0, seed=2) if other is None else other
    control = best_correlation(other, result.received)[0]
    print(f"negative control (other speech): {control:.3f}")
    assert control < 0.5
