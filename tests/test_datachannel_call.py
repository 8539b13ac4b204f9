"""Data channels through a whole call on virtual time: SCTP over the call's DTLS, with and without
SNAP, the oai-events channel speaking the Realtime protocol, other channels echoing."""

from __future__ import annotations

import json
import random

import pytest

from voxwire.agent.echo import EchoAgent
from voxwire.proto.certificate import Certificate
from voxwire.proto.session import SessionConfig, State
from voxwire.testing.client import TestClient
from voxwire.testing.link import Link, LinkConfig, Network
from voxwire.transceiver.service import Transceiver, TransceiverConfig

SERVER = ("192.0.2.1", 3478)
CLIENT = ("192.0.2.10", 50000)
DELAY = 0.02


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


def connect(certs, *, snap: bool, loss: float = 0.0, seed: int = 1):
    net = Network(Link(LinkConfig(delay=DELAY, loss=loss, jitter=0.01 if loss else 0.0), seed=seed))
    transceiver = Transceiver(
        TransceiverConfig(advertised=(SERVER,), session=SessionConfig(connect_timeout=20)),
        EchoAgent(),
        certificate=certs[0],
    )
    client = TestClient(certs[1], net.now, rng=random.Random(seed))
    call, answer = transceiver.create_call(client.offer(data_channel=True, snap=snap), net.now)
    assert ("a=sctp-init:" in answer) == snap
    client.answer(answer, net.now)
    net.add(SERVER, transceiver.endpoint)
    net.add(CLIENT, client)
    net.run_until(lambda: call.session.state is State.CONNECTED and client.srtp is not None, timeout=10)
    return net, transceiver, client, call


def server_events(client: TestClient, channel: int) -> list[dict]:
    return [json.loads(data) for cid, data in client.channel_messages if cid == channel]


@pytest.mark.parametrize("snap", [False, True])
def test_oai_events_channel_speaks_realtime(certs, snap):
    net, transceiver, client, call = connect(certs, snap=snap)
    assert not call.session.dtls.released  # data channels ride on DTLS: the connection stays
    dtls_done = net.now
    events = client.open_channel("oai-events", net.now)
    net.run_until(lambda: server_events(client, events), timeout=5)
    # SNAP: the channel works within one round trip of DTLS; without it, the SCTP handshake costs more.
    elapsed = net.now - dtls_done
    assert elapsed <= (2 * DELAY + 0.001 if snap else 4 * DELAY + 0.001), elapsed
    assert server_events(client, events)[0]["type"] == "session.created"
    client.send_message(events, json.dumps({"type": "session.update", "event_id": "e1",
                                            "session": {"type": "realtime", "instructions": "hi"}}), net.now)
    client.send_message(events, json.dumps({"type": "bogus", "event_id": "e2"}), net.now)
    net.run_until(lambda: len(server_events(client, events)) >= 3, timeout=5)
    got = server_events(client, events)
    assert got[1]["type"] == "session.updated" and got[1]["session"]["instructions"] == "hi"
    assert got[2]["type"] == "error" and got[2]["error"]["event_id"] == "e2"


def test_large_messages_on_a_second_channel_survive_loss(certs):
    net, transceiver, client, call = connect(certs, snap=False, loss=0.05, seed=4)
    other = client.open_channel("chat", net.now)
    big = bytes(random.Random(2).randbytes(256 * 1024))
    client.send_message(other, big, net.now)
    client.send_message(other, "", net.now)
    client.send_message(other, "small", net.now)
    net.run_until(lambda: len([m for c, m in client.channel_messages if c == other]) >= 3, timeout=30)
    assert [m for c, m in client.channel_messages if c == other] == [big, "", "small"]


def test_session_config_from_the_offer_is_applied_before_the_first_event(certs):
    net = Network(Link(LinkConfig(delay=DELAY)))
    transceiver = Transceiver(TransceiverConfig(advertised=(SERVER,)), EchoAgent(), certificate=certs[0])
    client = TestClient(certs[1], net.now)
    config = {"instructions": "be brief", "audio": {"input": {"turn_detection": None}}}
    call, answer = transceiver.create_call(client.offer(data_channel=True), net.now, session=config)
    client.answer(answer, net.now)
    net.add(SERVER, transceiver.endpoint)
    net.add(CLIENT, client)
    net.run_until(lambda: client.srtp is not None, timeout=5)
    events = client.open_channel("oai-events", net.now)
    net.run_until(lambda: server_events(client, events), timeout=5)
    created = server_events(client, events)[0]
    assert created["session"]["instructions"] == "be brief"
    assert created["session"]["audio"]["input"]["turn_detection"] is None
