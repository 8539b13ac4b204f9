"""Two peers on virtual time: the transceiver (endpoint + calls) and the in-memory test client.

ICE-lite + DTLS + SRTP complete and carry audio both ways through the echo agent; the session frees
itself on consent loss, connect timeout, DTLS failure and hang-up; garbage is counted, not raised.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from voxwire.agent.echo import EchoAgent
from voxwire.media.opus import OpusDecoder, OpusEncoder
from voxwire.proto.certificate import Certificate
from voxwire.proto.session import Session, SessionConfig, State
from voxwire.testing.client import TestClient
from voxwire.testing.link import Link, LinkConfig, Network
from voxwire.transceiver.service import Transceiver, TransceiverConfig

SERVER = ("192.0.2.1", 3478)
CLIENT = ("192.0.2.10", 50000)


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


@pytest.fixture(autouse=True)
def remembered_timeout_is_always_fresh(monkeypatch):
    """Every scenario here also checks the session's remembered deadline: after whatever just
    happened (handshake, media, loss, consent expiry, alerts, ICE restart, hang-up), it equals
    the earliest deadline computed afresh. A memo gone stale would sleep through a timer."""
    remembered = Session.poll_timeout

    def checked(self: Session) -> float | None:
        answer = remembered(self)
        assert answer == self._earliest_deadline(), f"stale session deadline in state {self.state}"
        return answer

    monkeypatch.setattr(Session, "poll_timeout", checked)


def make_pair(
    certs: tuple[Certificate, Certificate],
    *,
    link: LinkConfig | None = None,
    setup: str = "active",
    seed: int = 1,
    client_cert: Certificate | None = None,
) -> tuple[Network, Transceiver, TestClient, str]:
    net = Network(Link(link or LinkConfig(delay=0.02), seed=seed))
    config = TransceiverConfig(advertised=(SERVER,), preferred_setup=setup, session=SessionConfig(connect_timeout=10))
    transceiver = Transceiver(config, EchoAgent(), certificate=certs[0])
    client = TestClient(client_cert or certs[1], net.now, rng=random.Random(seed))
    call, answer = transceiver.create_call(client.offer(), net.now)
    client.answer(answer, net.now)
    net.add(SERVER, transceiver.endpoint)
    net.add(CLIENT, client)
    return net, transceiver, client, call.call_id


def speech_like(seconds: float, rate: int = 48000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t) ** 2
    return (voice * envelope * 6000).astype(np.int16)


def talk(net: Network, client: TestClient, pcm: np.ndarray) -> None:
    """Send ``pcm`` as Opus at 50 packets/s in virtual real time."""
    enc = OpusEncoder(48000, 1)
    ts = 0
    for i in range(0, len(pcm) - 959, 960):
        client.send_rtp(enc.encode(pcm[i : i + 960], 960), ts, marker=i == 0)
        ts += 960
        net.advance(0.02)


def decode_all(client: TestClient) -> np.ndarray:
    dec = OpusDecoder(48000, 1)
    packets = sorted(client.received, key=lambda p: p.sequence_number)
    return np.frombuffer(b"".join(dec.decode(p.payload) for p in packets), dtype=np.int16)


@pytest.mark.parametrize("setup", ["active", "passive"])
def test_connects_in_either_dtls_role_and_echoes(certs, setup):
    net, transceiver, client, call_id = make_pair(certs, setup=setup)
    call = transceiver.calls[call_id]
    start = net.now
    net.run_until(lambda: client.srtp is not None and call.session.state is State.CONNECTED, timeout=2)
    # Active (our ClientHello on the first check) needs one round trip less than passive.
    round_trips = (net.now - start) / 0.04
    assert round_trips <= (3.1 if setup == "active" else 4.1), round_trips
    # No data channel: as the DTLS client the server frees its OpenSSL connection once keyed; as
    # the server it keeps it (its last flight may have to be re-sent).
    assert call.session.dtls.released is (setup == "active")
    talk(net, client, speech_like(1.0))
    net.advance(0.2)
    assert len(client.received) >= 45
    echoed = decode_all(client).astype(float)
    assert np.sqrt(np.mean(echoed**2)) > 500  # speech energy came back
    # Timestamps advance by exactly one 20 ms frame within a talkspurt.
    ts = [p.timestamp for p in client.received[:20]]
    assert all((b - a) % (1 << 32) == 960 for a, b in zip(ts, ts[1:], strict=False))
    assert client.received[0].marker


def test_survives_loss_and_reordering(certs):
    link = LinkConfig(delay=0.02, jitter=0.045, loss=0.05)
    net, transceiver, client, call_id = make_pair(certs, link=link, seed=3)
    call = transceiver.calls[call_id]
    net.run_until(lambda: client.srtp is not None and call.session.state is State.CONNECTED, timeout=8)
    talk(net, client, speech_like(2.0))
    net.advance(0.3)
    inbound = call.session.inbound
    assert inbound is not None and inbound.received > 80
    # The reorder buffer put packets back in order, FEC/PLC filled what was lost.
    counters = call.inbound.reorder.counters
    assert counters.reordered > 0
    assert counters.fec + counters.lost > 0
    assert len(client.received) > 75


def test_consent_expiry_frees_the_call(certs):
    net, transceiver, client, call_id = make_pair(certs)
    net.run_until(lambda: client.srtp is not None, timeout=2)
    client.stop_checks()
    net.advance(29.0)
    assert call_id in transceiver.calls
    net.advance(2.0)
    transceiver.collect()
    assert call_id not in transceiver.calls
    assert len(transceiver.endpoint) == 0


def test_connect_timeout_frees_a_call_that_never_connects(certs):
    net, transceiver, client, call_id = make_pair(certs)
    net.peers.pop(CLIENT)  # the client never sends a check
    net.advance(9.9)
    transceiver.collect()
    assert call_id in transceiver.calls
    net.advance(0.2)
    transceiver.collect()
    assert call_id not in transceiver.calls


def test_wrong_fingerprint_closes_and_frees(certs):
    net, transceiver, client, call_id = make_pair(certs)
    call = transceiver.calls[call_id]
    # The client presents a certificate other than the one its offer advertised.
    assert client.dtls is not None
    client.dtls = type(client.dtls)(Certificate.generate(), client.dtls.role, [certs[0].fingerprint])
    if client.dtls.role.value == "server":
        client.dtls.start(net.now)
    net.advance(2.0)
    transceiver.collect()
    assert call.close_reason is not None and "fingerprint" in call.close_reason
    assert call_id not in transceiver.calls
    assert client.srtp is None


def test_hangup_frees_everything(certs):
    net, transceiver, client, call_id = make_pair(certs)
    call = transceiver.calls[call_id]
    net.run_until(lambda: client.srtp is not None and call.session.state is State.CONNECTED, timeout=2)
    assert transceiver.end_call(call_id, net.now)
    net.advance(0.1)
    transceiver.collect()
    assert call_id not in transceiver.calls and len(transceiver.endpoint) == 0
    assert client.closed_reason == "RTCP BYE"  # the call had no data channel: DTLS was released, BYE told the client
    assert transceiver.end_call(call_id, net.now)  # a late DELETE of an ended call succeeds
    assert not transceiver.end_call("rtc_never_existed", net.now)


def test_rtcp_bye_from_the_client_ends_the_call(certs):
    """The client's authenticated BYE for its own stream ends the call at once (a released DTLS
    cannot read a close_notify); a BYE for another source, or a forged one, does not."""
    net, transceiver, client, call_id = make_pair(certs)
    call = transceiver.calls[call_id]
    net.run_until(lambda: client.srtp is not None and call.session.state is State.CONNECTED, timeout=2)
    talk(net, client, speech_like(0.2))
    client.send_bye(ssrc=client.ssrc ^ 1)
    net.advance(0.05)
    transceiver.collect()
    assert call_id in transceiver.calls
    assert client.remote is not None
    forged = bytes([0x81, 203, 0, 1]) + client.ssrc.to_bytes(4, "big")  # a plain, unauthenticated BYE
    net.link.send(forged, CLIENT, client.remote, net.now)
    net.advance(0.05)
    transceiver.collect()
    assert call_id in transceiver.calls and call.session.counters["drop_srtcp_auth"] == 1
    client.send_bye()
    net.advance(0.05)
    transceiver.collect()
    assert call_id not in transceiver.calls and call.close_reason == "RTCP BYE"
    assert client.closed_reason is None  # nothing is sent back to a client that left


def test_an_alert_after_the_dtls_release_ends_a_silent_call_only(certs):
    """A released DTLS cannot read a close_notify (Chromium's pc.close() sends one and no BYE): an
    alert record followed by ``alert_grace`` without an authenticated packet ends the call, while
    a forged alert amid the client's media changes nothing."""
    net, transceiver, client, call_id = make_pair(certs)
    call = transceiver.calls[call_id]
    net.run_until(lambda: client.srtp is not None and call.session.state is State.CONNECTED, timeout=2)
    assert call.session.dtls.released and client.remote is not None
    # An alert record in epoch 1, as anyone who can spoof the client's address could send one.
    forged = bytes([21, 0xFE, 0xFD, 0, 1]) + bytes(6) + (26).to_bytes(2, "big") + bytes(26)
    net.link.send(forged, CLIENT, client.remote, net.now)
    talk(net, client, speech_like(3.0))  # the client keeps talking through the grace period
    transceiver.collect()
    assert call_id in transceiver.calls and call.session.alert_deadline is None
    assert call.session.counters["dtls_alert_after_release"] == 1
    left = net.now
    client.close(net.now)  # the client leaves: close_notify, then silence
    net.run_until(lambda: call.session.is_closed, timeout=5)
    transceiver.collect()
    assert call_id not in transceiver.calls
    assert call.close_reason == "DTLS alert, then no authenticated packet"
    assert net.now - left == pytest.approx(0.02 + call.session.config.alert_grace, abs=0.01)  # one-way delay + grace


def test_garbage_from_anywhere_is_counted_not_raised(certs):
    net, transceiver, client, call_id = make_pair(certs)
    call = transceiver.calls[call_id]
    net.run_until(lambda: client.srtp is not None and call.session.state is State.CONNECTED, timeout=2)
    rng = random.Random(5)
    endpoint = transceiver.endpoint
    for i in range(2000):
        data = rng.randbytes(rng.randrange(0, 300))
        src = CLIENT if i % 2 else ("198.51.100.7", 1000 + i)
        endpoint.handle_datagram(data, src, net.now)
    while endpoint.poll_transmit() is not None:
        pass
    assert call.session.state is State.CONNECTED
    assert endpoint.counters.get("drop_unknown_source", 0) > 0
    assert len(endpoint) == 1


def test_two_sessions_share_one_socket(certs):
    net, transceiver, client_a, id_a = make_pair(certs)
    client_b = TestClient(certs[1], net.now, rng=random.Random(99), ssrc=0x0BADCAFE)
    call_b, answer = transceiver.create_call(client_b.offer(), net.now)
    client_b.answer(answer, net.now)
    net.add(("192.0.2.11", 40000), client_b)
    net.run_until(lambda: client_a.srtp is not None and client_b.srtp is not None, timeout=2)
    talk(net, client_a, speech_like(0.4))
    net.advance(0.2)
    assert len(client_a.received) > 10 and len(client_b.received) == 0
    assert transceiver.calls[id_a].session.remote == CLIENT
    assert call_b.session.remote == ("192.0.2.11", 40000)


def test_the_endpoint_sends_its_sessions_datagrams_in_the_order_they_were_made(certs):
    """One outbox for all sessions: what the calls queue leaves in order, each to its own client,
    and a closing call's last datagram (its RTCP BYE) leaves before the call is taken out."""
    net, transceiver, client_a, id_a = make_pair(certs)
    client_b = TestClient(certs[1], net.now, rng=random.Random(99), ssrc=0x0BADCAFE)
    call_b, answer = transceiver.create_call(client_b.offer(), net.now)
    client_b.answer(answer, net.now)
    net.add(("192.0.2.11", 40000), client_b)
    endpoint, call_a = transceiver.endpoint, transceiver.calls[id_a]
    net.run_until(lambda: call_a.session.srtp is not None and call_b.session.srtp is not None, timeout=2)
    while endpoint.poll_transmit() is not None:
        pass
    assert call_b.session.send_audio(b"\xf8b", 960, False, net.now)
    assert call_a.session.send_audio(b"\xf8a", 960, False, net.now)
    assert call_b.session.send_audio(b"\xf8c", 1920, False, net.now)
    assert [addr for _, addr in iter(endpoint.poll_transmit, None)] == [("192.0.2.11", 40000), CLIENT, ("192.0.2.11", 40000)]
    transceiver.end_call(call_b.call_id, net.now)
    last = endpoint.poll_transmit()
    assert last is not None and last[1] == ("192.0.2.11", 40000) and last[0][1] == 200  # SR, then BYE
    assert endpoint.poll_transmit() is None  # all sent: the closed call leaves the endpoint
    transceiver.collect()
    assert call_b.call_id not in transceiver.calls and len(endpoint) == 1
    # Taken out, the call's session queues on its own again: nothing more reaches the socket.
    assert call_b.session.send_audio(b"\xf8d", 2880, False, net.now)
    assert endpoint.poll_transmit() is None and call_b.session.poll_transmit() is not None


def test_follows_a_client_that_moves_to_another_pair(certs):
    net, transceiver, client, call_id = make_pair(certs)
    call = transceiver.calls[call_id]
    net.run_until(lambda: call.session.state is State.CONNECTED, timeout=2)
    moved = ("198.51.100.20", 61000)  # e.g. Wi-Fi -> cellular
    net.peers[moved] = net.peers.pop(CLIENT)
    client.restart_ice(*client.remote_credentials, net.now)  # check again at once
    net.advance(0.1)
    assert call.session.remote == moved
    before = len(client.received)
    talk(net, client, speech_like(0.4))
    net.advance(0.2)
    assert len(client.received) > before + 10


def test_ice_restart_keeps_the_call(certs):
    net, transceiver, client, call_id = make_pair(certs)
    call = transceiver.calls[call_id]
    net.run_until(lambda: call.session.state is State.CONNECTED, timeout=2)
    old_ufrag = call.local_ufrag
    ufrag, pwd = transceiver.restart_ice(call_id, client.new_credentials(), net.now)
    assert transceiver.endpoint.get(ufrag) is call and transceiver.endpoint.get(old_ufrag) is None
    # Media keeps flowing on the old pair until the new checks arrive.
    talk(net, client, speech_like(0.2))
    client.restart_ice(ufrag, pwd, net.now)
    net.advance(0.2)
    assert not call.session.ice_restarting
    before = len(client.received)
    talk(net, client, speech_like(0.4))
    net.advance(0.2)
    assert len(client.received) > before + 10
    # A restart the client never completes ends the call after connect_timeout.
    transceiver.restart_ice(call_id, client.new_credentials(), net.now)
    net.advance(10.5)
    transceiver.collect()
    assert call_id not in transceiver.calls



def test_certificate_is_renewed_before_it_expires(certs):
    config = TransceiverConfig(advertised=(SERVER,))
    transceiver = Transceiver(config, EchoAgent(), certificate=certs[0], wallclock_offset=0.0)
    client = TestClient(certs[1], 0.0)
    expiry = certs[0].not_after
    transceiver.create_call(client.offer(), expiry - 2 * 86_400)
    assert transceiver.certificate is certs[0]
    _, answer = transceiver.create_call(client.offer(), expiry - 3600)
    assert transceiver.certificate is not certs[0]
    assert transceiver.certificate.fingerprint[1] in answer and transceiver.certificate.not_after > expiry
