"""A pass-through call on virtual time: every packet comes back as it is, and a media packet that
leaves at once spares the endpoint its deadline computation (``Call.handle_datagram`` returns
False) without ever leaving a timer unarmed (the invariant ``tests/conftest.py`` checks at every
endpoint poll)."""

from __future__ import annotations

import pytest

from voxwire.agent.base import CallContext, Pcm
from voxwire.agent.passthrough import PassthroughAgent, PassthroughSession
from voxwire.proto.certificate import Certificate
from voxwire.proto.endpoint import Endpoint
from voxwire.testing.calls import connect_calls
from voxwire.transceiver.call import Call
from voxwire.transceiver.service import Transceiver, TransceiverConfig

SERVER = ("192.0.2.1", 3478)
PAYLOADS = [bytes([0x78, i]) + b"\x01" * 60 for i in range(50)]  # 20 ms Opus TOC, distinct bodies


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


def count_refreshes(call: Call, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the times the endpoint refreshes ``call``'s deadline (its ``_after_drain``)."""
    refreshes = [0]
    after_drain = Endpoint._after_drain

    def counted(self: Endpoint, session: Call) -> None:  # type: ignore[type-arg]
        if session is call:
            refreshes[0] += 1
        after_drain(self, session)

    monkeypatch.setattr(Endpoint, "_after_drain", counted)
    return refreshes


def test_pass_through_packets_come_back_and_skip_the_deadline_computation(certs, monkeypatch) -> None:
    transceiver = Transceiver(TransceiverConfig(advertised=(SERVER,)), PassthroughAgent(), certificate=certs[0])
    net, [(client, call)] = connect_calls(transceiver, certs[1], 1)
    refreshes = count_refreshes(call, monkeypatch)
    before = len(client.received)
    for k, payload in enumerate(PAYLOADS):
        client.send_rtp(payload, k * 960, marker=k == 0)
        net.advance(0.02)
    assert [p.payload for p in client.received[before:]] == PAYLOADS
    # 50 packets in, 50 out, and the endpoint refreshed the call's deadline only after its own
    # timers (RTCP, consent checks): ~1 in 10 packets, not every one.
    assert refreshes[0] < 10


class QueueingSession(PassthroughSession):
    """An agent that queues every payload for the pacer (``play_encoded`` without ``now``)."""

    def __init__(self, ctx: CallContext) -> None:
        super().__init__(ctx)  # type: ignore[arg-type]
        self._queue = ctx.play_encoded  # type: ignore[attr-defined]

    def on_packet(self, payload: bytes, rtp_timestamp: int, now: float) -> None:
        self._queue(payload)

    def on_audio(self, pcm: Pcm, now: float) -> None:
        pass


class QueueingAgent(PassthroughAgent):
    def start(self, ctx: CallContext) -> QueueingSession:  # type: ignore[override]
        return QueueingSession(ctx)


def test_an_agent_that_queues_its_packets_still_sends_each_one(certs) -> None:
    # The queue path (no fast release): the frame is pushed, pulled in and sent in the same turn.
    # Had it stayed queued, the pacer's deadline would make the call report a change (checked in
    # Call._drain_session), and the invariant in conftest.py would catch a timer left unarmed.
    transceiver = Transceiver(TransceiverConfig(advertised=(SERVER,)), QueueingAgent(), certificate=certs[0])
    net, [(client, call)] = connect_calls(transceiver, certs[1], 1)
    before = len(client.received)
    for k, payload in enumerate(PAYLOADS[:5]):
        client.send_rtp(payload, k * 960, marker=k == 0)
        net.advance(0.02)
    assert [p.payload for p in client.received[before:]] == PAYLOADS[:5]
