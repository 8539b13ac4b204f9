"""Data channels over two SCTP associations on virtual time: DCEP both ways, negotiated channels,
string / binary / empty messages, reliability parameters, close and id reuse."""

from __future__ import annotations

import random

import pytest

from voxwire.proto.datachannel import (
    ChannelClosed,
    ChannelMessage,
    ChannelOpen,
    ChannelStateError,
    DataChannel,
    DataChannelManager,
)
from voxwire.proto.sctp import Closed, Connected, SctpAssociation
from voxwire.testing.link import Link, LinkConfig, Network
from voxwire.wire import sctp as w
from voxwire.wire.dcep import Ppid

CLIENT = ("192.0.2.1", 5000)  # the DTLS client: even stream ids
SERVER = ("192.0.2.2", 5000)  # the DTLS server: odd stream ids


class Peer:
    def __init__(self, manager: DataChannelManager, remote: tuple[str, int]) -> None:
        self.mgr = manager
        self.remote = remote
        self.events: list[object] = []
        self.sent: list[w.SctpPacket] = []

    def handle_datagram(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        self.mgr.handle_packet(data, now)
        self._drain()

    def handle_timeout(self, now: float) -> None:
        self.mgr.handle_timeout(now)
        self._drain()

    def poll_transmit(self) -> tuple[bytes, tuple[str, int]] | None:
        data = self.mgr.poll_transmit()
        self._drain()
        if data is None:
            return None
        self.sent.append(w.parse_packet(data))
        return data, self.remote

    def poll_timeout(self) -> float | None:
        return self.mgr.poll_timeout()

    def _drain(self) -> None:
        while (event := self.mgr.poll_event()) is not None:
            self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def received(self, channel_id: int) -> list[str | bytes]:
        return [e.data for e in self.of(ChannelMessage) if e.channel_id == channel_id]

    def dcep_sent(self) -> list[int]:
        return [
            c.stream_id
            for p in self.sent
            for c in p.chunks
            if isinstance(c, w.DataChunk) and c.ppid == Ppid.DCEP
        ]


def make_pair(
    *, snap: bool = True, link: LinkConfig | None = None, seed: int = 1
) -> tuple[Network, Peer, Peer]:
    net = Network(Link(link or LinkConfig(delay=0.02), seed=seed))
    a = SctpAssociation(rng=random.Random(seed))
    b = SctpAssociation(rng=random.Random(seed + 1000))
    client = Peer(DataChannelManager(a, dtls_client=True), SERVER)
    server = Peer(DataChannelManager(b, dtls_client=False), CLIENT)
    net.add(CLIENT, client)
    net.add(SERVER, server)
    if snap:
        init_a, init_b = a.local_init_chunk(), b.local_init_chunk()
        a.start_snap(init_b, net.now)
        b.start_snap(init_a, net.now)
    else:
        a.connect(net.now)
        b.connect(net.now)
    return net, client, server


@pytest.mark.parametrize("snap", [True, False])
def test_dcep_open_and_ack_in_both_directions(snap):
    net, client, server = make_pair(snap=snap)
    oai = client.mgr.open_channel("oai-events", protocol="json", now=net.now)
    back = server.mgr.open_channel("server-side", now=net.now)
    assert oai.id % 2 == 0 and back.id % 2 == 1  # RFC 8832 §6 parity
    client.mgr.send(oai.id, "hello", now=net.now)  # allowed before the ACK (sent ordered)
    net.run_until(
        lambda: server.received(oai.id) == ["hello"] and len(client.of(ChannelOpen)) == 2, timeout=5
    )
    opened_at_server = {e.channel.id: e.channel for e in server.of(ChannelOpen)}
    assert opened_at_server[oai.id] == DataChannel(oai.id, "oai-events", "json")
    assert [e.channel.id for e in client.of(ChannelOpen)] == [oai.id, back.id]
    assert client.dcep_sent().count(oai.id) == 1 and server.dcep_sent().count(oai.id) == 1  # OPEN and ACK
    assert len(client.of(Connected)) == len(server.of(Connected)) == 1


def test_snap_channel_usable_within_one_way_delay():
    net, client, server = make_pair(snap=True)
    start = net.now
    ch = client.mgr.open_channel("oai-events", now=net.now)
    client.mgr.send(ch.id, '{"type":"session.update"}', now=net.now)
    net.run_until(lambda: bool(server.received(ch.id)), timeout=1)
    assert net.now - start == pytest.approx(0.02)


def test_negotiated_channels_skip_dcep():
    net, client, server = make_pair()
    a = client.mgr.open_channel("pre", negotiated_id=7, now=net.now)
    b = server.mgr.open_channel("pre", negotiated_id=7, now=net.now)
    assert a.negotiated and b.negotiated and a.id == b.id == 7
    client.mgr.send(7, b"\x01\x02", now=net.now)
    server.mgr.send(7, "hi", now=net.now)
    net.run_until(lambda: server.received(7) == [b"\x01\x02"] and client.received(7) == ["hi"], timeout=5)
    assert client.dcep_sent() == [] and server.dcep_sent() == []
    with pytest.raises(ValueError):
        client.mgr.open_channel("dup", negotiated_id=7, now=net.now)


def test_strings_binaries_and_empty_messages():
    net, client, server = make_pair()
    ch = client.mgr.open_channel("c", now=net.now)
    messages: list[str | bytes] = ["text", "", b"", b"\x00\xff", "ünïcødé", bytes(70_000)]
    for m in messages:
        client.mgr.send(ch.id, m, now=net.now)
    net.run_until(lambda: len(server.received(ch.id)) == len(messages), timeout=10)
    assert server.received(ch.id) == messages
    ppids = [c.ppid for p in client.sent for c in p.chunks if isinstance(c, w.DataChunk) and c.beginning]
    assert ppids[1:6] == [Ppid.STRING, Ppid.STRING_EMPTY, Ppid.BINARY_EMPTY, Ppid.BINARY, Ppid.STRING]


def test_reliability_parameters_travel_in_the_open():
    net, client, server = make_pair()
    client.mgr.open_channel("lossy", ordered=False, max_retransmits=0, now=net.now)
    client.mgr.open_channel("timed", max_packet_lifetime=250, now=net.now)
    net.run_until(lambda: len(server.of(ChannelOpen)) == 2, timeout=5)
    lossy, timed = (e.channel for e in server.of(ChannelOpen))
    assert (lossy.ordered, lossy.max_retransmits, lossy.max_packet_lifetime) == (False, 0, None)
    assert (timed.ordered, timed.max_retransmits, timed.max_packet_lifetime) == (True, None, 250)


def test_unordered_channel_sends_ordered_until_acked_then_unordered():
    net, client, server = make_pair()
    ch = client.mgr.open_channel("u", ordered=False, now=net.now)
    client.mgr.send(ch.id, "before ack", now=net.now)
    net.run_until(lambda: bool(client.of(ChannelOpen)) and bool(server.received(ch.id)), timeout=5)
    net.advance(0.1)  # the ACK is back
    client.mgr.send(ch.id, "after ack", now=net.now)
    net.run_until(lambda: len(server.received(ch.id)) == 2, timeout=5)
    flags = {
        c.data: c.unordered
        for p in client.sent
        for c in p.chunks
        if isinstance(c, w.DataChunk) and c.ppid == Ppid.STRING
    }
    assert flags == {b"before ack": False, b"after ack": True}


@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_from_either_side_resets_both_directions_and_frees_the_id(closer):
    net, client, server = make_pair()
    ch = client.mgr.open_channel("c", now=net.now)
    client.mgr.send(ch.id, "last words", now=net.now)
    net.run_until(lambda: bool(server.of(ChannelOpen)), timeout=5)
    (client if closer == "client" else server).mgr.close(ch.id, now=net.now)
    net.run_until(lambda: bool(client.of(ChannelClosed)) and bool(server.of(ChannelClosed)), timeout=5)
    assert server.received(ch.id) == ["last words"]
    assert client.mgr.channels == {} and server.mgr.channels == {}
    with pytest.raises(ChannelStateError):
        client.mgr.send(ch.id, "gone", now=net.now)
    again = client.mgr.open_channel("again", now=net.now)
    assert again.id == ch.id  # the stream id is reused, with SSN 0 again
    client.mgr.send(again.id, "new life", now=net.now)
    net.run_until(lambda: server.received(ch.id)[-1:] == ["new life"], timeout=5)


def test_channels_open_before_sctp_is_up_and_close_with_it():
    net, client, server = make_pair(snap=False)
    ch = client.mgr.open_channel("early", now=net.now)
    client.mgr.send(ch.id, "queued", now=net.now)
    assert client.of(ChannelOpen) == []
    net.run_until(lambda: server.received(ch.id) == ["queued"], timeout=5)
    assert [type(e) for e in client.events[:2]] == [Connected, ChannelOpen]
    server.mgr.association.abort("bye", net.now)
    server._drain()
    net.run_until(lambda: bool(client.of(Closed)), timeout=5)
    assert client.of(ChannelClosed) == [ChannelClosed(ch.id)]
    assert server.of(ChannelClosed) == [ChannelClosed(ch.id)]
    with pytest.raises(ChannelStateError):
        client.mgr.open_channel("late", now=net.now)


def test_messages_survive_loss():
    net, client, server = make_pair(link=LinkConfig(delay=0.02, jitter=0.02, loss=0.1), seed=4)
    ch = client.mgr.open_channel("c", now=net.now)
    sent = [f"m{i}" for i in range(100)]
    for m in sent:
        client.mgr.send(ch.id, m, now=net.now)
    net.run_until(lambda: len(server.received(ch.id)) == 100, timeout=60)
    assert server.received(ch.id) == sent


def test_bad_input_is_counted_not_raised():
    net, client, server = make_pair()
    ch = client.mgr.open_channel("c", now=net.now)
    net.run_until(lambda: bool(server.of(ChannelOpen)), timeout=5)
    assoc = client.mgr.association
    assoc.send(ch.id, Ppid.STRING, b"\xff\xfe", now=net.now)  # not UTF-8
    assoc.send(ch.id, 99, b"?", now=net.now)  # unknown PPID
    assoc.send(ch.id, Ppid.DCEP, b"\x09", now=net.now)  # unknown DCEP message
    assoc.send(100, Ppid.BINARY, b"nobody", now=net.now)  # no channel on stream 100
    client.mgr.send(ch.id, "fine", now=net.now)
    net.run_until(lambda: server.received(ch.id) == ["fine"], timeout=5)
    assert server.mgr.counters == {"bad_utf8": 1, "unknown_ppid": 1, "bad_dcep": 1, "no_channel": 1}
