"""Deferred call work: with ``Transceiver.on_work`` set, a datagram only decrypts and queues its
audio and a tick only sends; decoding and encoding-ahead wait for ``run_work``, which the asyncio
edge runs in slices of a few calls with the loop's other work between them."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voxwire.agent.echo import EchoAgent
from voxwire.media.opus import OpusEncoder
from voxwire.media.pipeline import FRAME_SECONDS, MediaConfig, OutboundAudio
from voxwire.proto.certificate import Certificate
from voxwire.testing.calls import connect_calls
from voxwire.testing.client import TestClient
from voxwire.testing.link import Network
from voxwire.transceiver.call import Call
from voxwire.transceiver.service import Transceiver, TransceiverConfig

SERVER = ("192.0.2.1", 3478)
RATE = 24_000


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


def connected(certs, transceiver: Transceiver, n: int) -> tuple[Network, list[tuple[TestClient, Call]]]:
    return connect_calls(transceiver, certs[1], n)


def opus_frames(n: int) -> list[bytes]:
    encoder = OpusEncoder(48_000, 1)
    pcm = tone(n * FRAME_SECONDS, 48_000)
    return [encoder.encode(pcm[i * 960 : (i + 1) * 960], 960) for i in range(n)]


def test_input_waits_for_run_work_and_run_work_respects_its_limit(certs) -> None:
    transceiver = Transceiver(TransceiverConfig(advertised=(SERVER,)), EchoAgent(), certificate=certs[0])
    told: list[int] = []
    transceiver.on_work = lambda: told.append(transceiver.work_waiting)
    net, pairs = connected(certs, transceiver, 3)
    received_before = [len(client.received) for client, _ in pairs]
    [payload] = opus_frames(1)
    for client, _ in pairs:
        client.send_rtp(payload, 0, marker=True)
    net.advance(0.05)
    # Every packet was read, none decoded: the echo agent has heard nothing yet.
    assert [len(client.received) for client, _ in pairs] == received_before
    assert transceiver.work_waiting == 3
    assert told == [1]  # the edge is told once, when the queue stops being empty
    assert transceiver.run_work(net.now, 2) == 1  # two calls done, one still waiting
    assert transceiver.run_work(net.now, 2) == 0
    net.advance(0.1)
    # Decoded now: each caller hears its echo.
    assert [len(client.received) - before for (client, _), before in zip(pairs, received_before, strict=True)] == [1] * 3


def test_a_call_waits_once_however_many_packets_it_got(certs) -> None:
    transceiver = Transceiver(TransceiverConfig(advertised=(SERVER,)), EchoAgent(), certificate=certs[0])
    transceiver.on_work = lambda: None
    net, [(client, call)] = connected(certs, transceiver, 1)
    for k, payload in enumerate(opus_frames(3)):
        client.send_rtp(payload, k * 960, marker=k == 0)
    net.advance(0.01)
    assert transceiver.work_waiting == 1
    # One visit decodes all three packets. The echo's three frames are a live stream's, and they
    # leave together (no standing queue), so the call is not queued again.
    before = len(client.received)
    assert transceiver.run_work(net.now, 8) == 0
    assert len(call.outbound.pacer) == 0
    net.advance(0.02)
    assert transceiver.work_waiting == 0 and len(client.received) - before == 3


def test_without_on_work_input_is_decoded_in_the_datagrams_turn(certs) -> None:
    transceiver = Transceiver(TransceiverConfig(advertised=(SERVER,)), EchoAgent(), certificate=certs[0])
    net, [(client, call)] = connected(certs, transceiver, 1)
    before = len(client.received)
    for k, payload in enumerate(opus_frames(3)):
        client.send_rtp(payload, k * 960, marker=k == 0)
    net.advance(0.1)
    assert transceiver.work_waiting == 0 and len(client.received) - before == 3


def test_a_tick_sends_a_frame_encoded_ahead_by_run_work(certs) -> None:
    transceiver = Transceiver(TransceiverConfig(advertised=(SERVER,)), EchoAgent(), certificate=certs[0])
    transceiver.on_work = lambda: None
    net, [(client, call)] = connected(certs, transceiver, 1)
    encoded_at: list[str] = []
    encode = call.outbound._encode
    where = ["tick"]

    def traced(pcm):  # type: ignore[no-untyped-def]
        encoded_at.append(where[0])
        return encode(pcm)

    call.outbound._encode = traced  # type: ignore[method-assign]
    call.outbound.play(tone(0.1), "resp_1")  # five frames of a response
    transceiver.wake_call(call, net.now)  # the first frame leaves at once, encoded at its tick
    assert encoded_at == ["tick"] and transceiver.work_waiting == 1  # ... and the next is announced
    for _ in range(8):
        where[0] = "work"
        transceiver.run_work(net.now, 1)  # the edge's slice: encodes the next frame ahead
        where[0] = "tick"
        net.advance(FRAME_SECONDS)  # its tick only sends it
    assert encoded_at == ["tick"] + ["work"] * 4
    assert transceiver.work_waiting == 0  # the queue ran dry: nothing more to encode
    assert call.outbound.pacer.counters.sent == 5


def test_prepare_encodes_only_the_next_frame_and_a_flush_drops_it() -> None:
    out = OutboundAudio(RATE, MediaConfig(), initial_timestamp=0)
    out.start(0.0)
    assert not out.needs_encoding() and not out.prepare()  # nothing queued
    out.play(tone(0.06), "resp_1")
    assert out.needs_encoding()
    assert out.prepare() and not out.needs_encoding() and not out.prepare()  # once per frame
    assert len(out.pacer) == 3  # one encoded, two still PCM
    ahead = out.pacer.peek()
    assert ahead is not None and isinstance(ahead[0], bytes) and ahead[1] == "resp_1"
    [first] = out.due(0.0)
    assert first.payload == ahead[0] and first.tag == "resp_1"
    assert out.needs_encoding() and out.prepare()
    assert out.flush() == 2 and not out.queued("resp_1")


def test_replace_head_on_an_empty_pacer_is_an_error() -> None:
    from voxwire.media.pacer import Pacer

    with pytest.raises(IndexError):
        Pacer[int]().replace_head(1)


def test_the_edge_runs_work_in_slices_with_the_loop_between_them() -> None:
    from voxwire.aio.udp import open_udp
    from voxwire.aio.work import attach_work_slices

    async def main() -> list[str]:
        transceiver = Transceiver(TransceiverConfig(advertised=(("127.0.0.1", 9),)), EchoAgent())
        shell = await open_udp(transceiver.endpoint, "127.0.0.1", 0)
        attach_work_slices(transceiver, shell, calls_per_slice=2)
        calls = [transceiver.create_call(TestClient(Certificate.generate(), 0.0).offer(), shell.now())[0]
                 for _ in range(5)]
        order: list[str] = []
        run_work = transceiver.run_work

        def traced(now: float, limit: int) -> int:
            waiting = run_work(now, limit)
            order.append(f"slice:{limit}:{waiting}")
            return waiting

        transceiver.run_work = traced  # type: ignore[method-assign]
        for call in calls:  # audio arrived for five calls in one read batch
            assert call.on_work is not None
            call.on_work(call)
        asyncio.get_running_loop().call_soon(order.append, "other")  # ready after the first slice
        await asyncio.sleep(0.01)
        shell.transport.close()  # type: ignore[union-attr]
        return order

    assert asyncio.run(main()) == ["slice:2:3", "other", "slice:2:1", "slice:2:0"]
    with pytest.raises(ValueError):
        asyncio.run(_attach_zero())


async def _attach_zero() -> None:
    from voxwire.aio.udp import open_udp
    from voxwire.aio.work import attach_work_slices

    transceiver = Transceiver(TransceiverConfig(advertised=(("127.0.0.1", 9),)), EchoAgent())
    shell = await open_udp(transceiver.endpoint, "127.0.0.1", 0)
    try:
        attach_work_slices(transceiver, shell, calls_per_slice=0)
    finally:
        shell.transport.close()  # type: ignore[union-attr]
