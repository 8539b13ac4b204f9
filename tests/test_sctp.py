"""Two SCTP associations on virtual time, SCTP packets directly on an in-memory link (no DTLS).

Handshake (crossing INITs and one-sided), SNAP without the INIT round trips, small and 256 KiB
messages, loss and reordering, partial reliability, stream reset, abort, shutdown, back-pressure,
RTO backoff, heartbeats, and remote garbage never raising.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.proto.sctp import (
    BufferedAmountLow,
    Closed,
    Connected,
    MessageReceived,
    MessageTooLarge,
    SctpAssociation,
    SctpConfig,
    SctpStateError,
    SendBufferFull,
    State,
    StreamClosing,
    StreamsReset,
)
from voxwire.proto.sctp.cookie import CookieContents, StaleCookie, open_cookie, seal_cookie
from voxwire.testing.link import Link, LinkConfig, Network
from voxwire.wire import sctp as w

A = ("192.0.2.1", 5000)
B = ("192.0.2.2", 5000)
CHROMIUM_SNAP_INIT = base64.b64decode("AQAAHmz8WQYAUAAA/////72YVxzAAAAEgAgABoLA")


class Peer:
    """Adapts an association to the link's driver shape and records events and transmits."""

    def __init__(self, assoc: SctpAssociation, remote: tuple[str, int], clock: Callable[[], float]) -> None:
        self.assoc = assoc
        self.remote = remote
        self.clock = clock
        self.events: list[object] = []
        self.sent: list[tuple[float, w.SctpPacket]] = []

    def handle_datagram(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        self.assoc.handle_packet(data, now)
        self._drain()

    def handle_timeout(self, now: float) -> None:
        self.assoc.handle_timeout(now)
        self._drain()

    def poll_transmit(self) -> tuple[bytes, tuple[str, int]] | None:
        data = self.assoc.poll_transmit()
        self._drain()
        if data is None:
            return None
        self.sent.append((self.clock(), w.parse_packet(data)))
        return data, self.remote

    def poll_timeout(self) -> float | None:
        return self.assoc.poll_timeout()

    def _drain(self) -> None:
        while (event := self.assoc.poll_event()) is not None:
            self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def messages(self, stream_id: int | None = None) -> list[bytes]:
        return [e.data for e in self.of(MessageReceived) if stream_id is None or e.stream_id == stream_id]

    def chunk_types(self) -> list[str]:
        return [type(c).__name__ for _, p in self.sent for c in p.chunks]


def make_pair(
    link: LinkConfig | None = None,
    *,
    seed: int = 1,
    config: SctpConfig | None = None,
    b_config: SctpConfig | None = None,
    snap: bool = False,
    connect: tuple[bool, bool] = (True, True),
    a_options: dict | None = None,
    b_options: dict | None = None,
) -> tuple[Network, Peer, Peer]:
    net = Network(Link(link or LinkConfig(delay=0.02), seed=seed))
    a = SctpAssociation(rng=random.Random(seed), config=config, **(a_options or {}))
    b = SctpAssociation(rng=random.Random(seed + 1000), config=b_config or config, **(b_options or {}))
    pa, pb = Peer(a, B, lambda: net.now), Peer(b, A, lambda: net.now)
    net.add(A, pa)
    net.add(B, pb)
    if snap:
        init_a, init_b = a.local_init_chunk(), b.local_init_chunk()
        a.start_snap(init_b, net.now)
        b.start_snap(init_a, net.now)
    else:
        if connect[0]:
            a.connect(net.now)
        if connect[1]:
            b.connect(net.now)
    return net, pa, pb


def connected(net: Network, *peers: Peer) -> None:
    net.run_until(lambda: all(p.assoc.state is State.ESTABLISHED for p in peers), timeout=30)


# --------------------------------------------------------------------------------------------------
# Setup


def test_crossing_inits_establish_both_sides_in_one_and_a_half_round_trips():
    net, pa, pb = make_pair()
    start = net.now
    connected(net, pa, pb)
    assert net.now - start == pytest.approx(0.06)  # INIT, INIT ACK, COOKIE ECHO (RFC 9260 §5.2.1)
    net.advance(0.1)
    assert len(pa.of(Connected)) == len(pb.of(Connected)) == 1
    assert pa.chunk_types()[:3] == ["InitChunk", "InitAckChunk", "CookieEchoChunk"]


def test_one_sided_connect_and_the_responder_keeps_no_state_before_cookie_echo():
    net, pa, pb = make_pair(connect=(True, False))
    connected(net, pa, pb)
    assert pa.chunk_types()[:2] == ["InitChunk", "CookieEchoChunk"]
    assert pb.chunk_types()[:2] == ["InitAckChunk", "CookieAckChunk"]


def test_data_rides_with_the_cookie_echo():
    net, pa, pb = make_pair(connect=(True, False))
    pa.assoc.send(1, 51, b"early", now=net.now)  # queued before the association exists
    net.run_until(lambda: pb.messages() == [b"early"], timeout=1)
    cookie_packet = next(p for _, p in pa.sent if isinstance(p.chunks[0], w.CookieEchoChunk))
    assert any(isinstance(c, w.DataChunk) for c in cookie_packet.chunks)


def test_lost_handshake_packets_are_retransmitted():
    dropped: list[int] = []

    def drop_first_three(data: bytes, src: tuple[str, int]) -> bool:
        if len(dropped) < 3:
            dropped.append(1)
            return True
        return False

    net, pa, pb = make_pair(LinkConfig(delay=0.02, drop=drop_first_three))
    connected(net, pa, pb)
    assert len(pa.of(Connected)) == len(pb.of(Connected)) == 1


def test_snap_skips_the_handshake():
    net, pa, pb = make_pair(snap=True)
    assert pa.assoc.state is pb.assoc.state is State.ESTABLISHED
    start = net.now
    pa.assoc.send(0, 51, b"first", now=net.now)
    net.run_until(lambda: pb.messages() == [b"first"], timeout=1)
    assert net.now - start == pytest.approx(0.02)  # one way: no INIT / COOKIE round trips
    handshake = {"InitChunk", "InitAckChunk", "CookieEchoChunk", "CookieAckChunk"}
    assert not handshake & set(pa.chunk_types() + pb.chunk_types())


def test_snap_local_init_matches_what_chromium_offers():
    assoc = SctpAssociation(rng=random.Random(3))
    ours = w.parse_init_chunk(assoc.local_init_chunk())
    chromium = w.parse_init_chunk(CHROMIUM_SNAP_INIT)
    assert len(assoc.local_init_chunk()) == len(CHROMIUM_SNAP_INIT) == 30
    for field in (
        "outbound_streams",
        "inbound_streams",
        "forward_tsn_supported",
        "supported_extensions",
        "other_params",
    ):
        assert getattr(ours, field) == getattr(chromium, field)


def test_snap_with_chromiums_init_uses_its_tag_and_tsn():
    assoc = SctpAssociation(rng=random.Random(3))
    assoc.start_snap(CHROMIUM_SNAP_INIT, 10.0)
    assoc.send(1, 51, b"x", now=10.0)
    packet = w.parse_packet(assoc.poll_transmit() or b"")
    ours = w.parse_init_chunk(assoc.local_init_chunk())
    assert packet.verification_tag == 0x6CFC5906
    data = packet.chunks[0]
    assert isinstance(data, w.DataChunk) and data.tsn == ours.initial_tsn
    # Chromium's first DATA (TSN = its initial TSN, our tag) is accepted and SACKed.
    raw = w.serialize_packet(
        w.SctpPacket(5000, 5000, ours.initiate_tag, (w.DataChunk(0xBD98571C, 0, 0, 51, b"hi"),))
    )
    assoc.handle_packet(raw, 10.01)
    assert assoc.poll_event() == Connected()
    assert assoc.poll_event() == MessageReceived(0, 51, b"hi")


def test_snap_refuses_garbage_and_a_second_start():
    assoc = SctpAssociation(rng=random.Random(3))
    with pytest.raises(w.ParseError):
        assoc.start_snap(b"\x01\x00\x00\x04", 0.0)
    assoc.start_snap(CHROMIUM_SNAP_INIT, 0.0)
    with pytest.raises(SctpStateError):
        assoc.start_snap(CHROMIUM_SNAP_INIT, 0.0)
    with pytest.raises(SctpStateError):
        assoc.connect(0.0)


# --------------------------------------------------------------------------------------------------
# Data


@pytest.mark.parametrize("snap", [False, True])
def test_small_and_256_kib_messages(snap):
    net, pa, pb = make_pair(snap=snap)
    connected(net, pa, pb)
    big = random.Random(5).randbytes(256 * 1024)
    pa.assoc.send(1, 51, b"hello", now=net.now)
    pa.assoc.send(2, 53, big, now=net.now)
    pb.assoc.send(1, 51, b"back", now=net.now)
    net.run_until(lambda: len(pb.messages()) == 2 and len(pa.messages()) == 1, timeout=10)
    assert pb.messages(1) == [b"hello"]
    assert pb.messages(2) == [big]
    assert pa.messages() == [b"back"]
    assert all(len(w.serialize_packet(p)) <= 1160 for _, p in pa.sent)


def test_message_larger_than_peer_max_message_size_is_refused_locally():
    assoc = SctpAssociation(rng=random.Random(1), remote_max_message_size=1000)
    with pytest.raises(MessageTooLarge):
        assoc.send(0, 53, bytes(1001), now=0.0)
    with pytest.raises(ValueError):
        assoc.send(0, 53, b"", now=0.0)


@pytest.mark.parametrize("seed", range(4))
def test_loss_and_reordering_deliver_each_message_once_and_in_order(seed):
    net, pa, pb = make_pair(LinkConfig(delay=0.02, jitter=0.03, loss=0.1), seed=seed)
    connected(net, pa, pb)
    rng = random.Random(seed)
    sent: dict[int, list[bytes]] = {1: [], 2: []}
    for i in range(150):
        sid = rng.choice([1, 2])
        data = i.to_bytes(4, "big") + bytes(rng.choice([1, 100, 1200, 5000]))
        pa.assoc.send(sid, 53, data, ordered=sid == 1, now=net.now)
        sent[sid].append(data)
        if rng.random() < 0.3:
            net.advance(0.01)
    net.run_until(lambda: len(pb.messages()) >= 150, timeout=120)
    net.advance(2)
    assert pb.messages(1) == sent[1]  # ordered: exactly once, in order
    assert sorted(pb.messages(2)) == sorted(sent[2])  # unordered: exactly once
    stats = pa.assoc.stats
    assert stats["retransmitted"] > 0 and stats["fast_retransmits"] > 0


@pytest.mark.parametrize("ordered", [True, False])
def test_max_retransmits_zero_drops_lost_messages_and_moves_on(ordered):
    net, pa, pb = make_pair(LinkConfig(delay=0.02, loss=0.2), seed=3)
    connected(net, pa, pb)
    for i in range(200):
        pa.assoc.send(
            1,
            53,
            i.to_bytes(4, "big") + bytes(1500 if i % 3 == 0 else 20),
            ordered=ordered,
            max_retransmits=0,
            now=net.now,
        )
        net.advance(0.005)
    net.advance(10)
    got = [int.from_bytes(m[:4], "big") for m in pb.messages(1)]
    assert len(got) == len(set(got))  # never twice
    assert 0 < len(got) < 200  # some were dropped, most arrived
    if ordered:
        assert got == sorted(got)
    stats = pa.assoc.stats
    assert stats["abandoned"] > 0 and stats["retransmitted"] == 0  # sent once, never again
    pa.assoc.send(2, 53, b"reliable after", now=net.now)  # the association still works: FORWARD TSN moved on
    net.run_until(lambda: pb.messages(2) == [b"reliable after"], timeout=30)
    assert "ForwardTsnChunk" in pa.chunk_types()


def test_abandoning_a_partly_sent_message_skips_it_at_the_receiver():
    net, pa, pb = make_pair(LinkConfig(delay=0.05), snap=True)
    # The first window's fragments arrive and are acknowledged; the rest expires unsent.
    pa.assoc.send(1, 53, bytes(50_000), max_lifetime=0.06, now=net.now)
    pa.assoc.send(1, 53, b"next", now=net.now)  # same ordered stream: must not wait for the first
    net.run_until(lambda: pb.messages(1) == [b"next"], timeout=30)
    net.advance(1)
    assert pa.assoc.stats["abandoned"] == 1
    assert "ForwardTsnChunk" in pa.chunk_types()
    assert pb.assoc.receive_held == 0  # the fragments that arrived were dropped, not kept forever


def test_max_lifetime_expires_messages():
    net, pa, pb = make_pair(LinkConfig(delay=0.02, loss=1.0), seed=2, snap=True)
    pa.assoc.send(1, 53, b"doomed", max_lifetime=0.5, now=net.now)
    net.advance(3)
    net.link.config.loss = 0.0
    pa.assoc.send(1, 53, b"fresh", now=net.now)
    net.run_until(lambda: pb.messages() == [b"fresh"], timeout=30)
    assert pa.assoc.stats["abandoned"] == 1


def test_oversized_message_at_the_receiver_is_dropped_and_counted():
    config = SctpConfig(receive_window=64 * 1024)
    # b announced 10 000 bytes; a was told 100 000 (a misbehaving sender)
    net, pa, pb = make_pair(
        config=config,
        snap=True,
        a_options={"remote_max_message_size": 100_000, "max_message_size": 60_000},
        b_options={"max_message_size": 10_000},
    )
    pa.assoc.send(1, 53, bytes(20_000), now=net.now)
    pa.assoc.send(1, 53, b"after", now=net.now)
    net.run_until(lambda: pb.messages() == [b"after"], timeout=30)
    assert pb.assoc.stats["oversized_messages"] == 1


# --------------------------------------------------------------------------------------------------
# Stream reset, abort, shutdown


def test_stream_reset_both_ways_and_the_stream_restarts_at_ssn_zero():
    net, pa, pb = make_pair(LinkConfig(delay=0.02, loss=0.1), seed=5)
    connected(net, pa, pb)
    for i in range(5):
        pa.assoc.send(3, 51, b"x%d" % i, now=net.now)
    pa.assoc.reset_streams([3], net.now)
    with pytest.raises(StreamClosing):
        pa.assoc.send(3, 51, b"refused", now=net.now)
    net.run_until(lambda: bool(pa.of(StreamsReset)), timeout=30)
    assert pb.messages(3) == [b"x0", b"x1", b"x2", b"x3", b"x4"]  # data before the reset arrives first
    assert pb.of(StreamsReset) == [StreamsReset((3,), by_peer=True)]
    assert pa.of(StreamsReset) == [StreamsReset((3,), by_peer=False)]
    pb.assoc.reset_streams([3], net.now)
    net.run_until(lambda: len(pb.of(StreamsReset)) == 2, timeout=30)
    pa.assoc.send(3, 51, b"again", now=net.now)
    net.run_until(lambda: pb.messages(3)[-1:] == [b"again"], timeout=30)
    sent_ssns = [
        c.ssn for _, p in pa.sent for c in p.chunks if isinstance(c, w.DataChunk) and c.data == b"again"
    ]
    assert set(sent_ssns) == {0}


def test_last_message_is_delivered_before_a_reset_bundled_after_it():
    assoc = SctpAssociation(rng=random.Random(1))
    assoc.start_snap(CHROMIUM_SNAP_INIT, 0.0)
    tag = w.parse_init_chunk(assoc.local_init_chunk()).initiate_tag
    ours = w.parse_init_chunk(assoc.local_init_chunk()).initial_tsn
    data = w.DataChunk(0xBD98571C, 2, 0, 51, b"bye")
    reset = w.ReconfigChunk((w.OutgoingResetRequest(0xBD98571C, ours - 1, 0xBD98571C, (2,)),))
    assoc.handle_packet(w.serialize_packet(w.SctpPacket(5000, 5000, tag, (data, reset))), 0.1)
    events = [assoc.poll_event() for _ in range(3)]
    assert events == [Connected(), MessageReceived(2, 51, b"bye"), StreamsReset((2,), by_peer=True)]


def test_abort_closes_both_sides():
    net, pa, pb = make_pair()
    connected(net, pa, pb)
    pa.assoc.abort("going away", net.now)
    net.run_until(lambda: bool(pb.of(Closed)), timeout=1)
    assert pa.of(Closed) == [Closed("going away", by_peer=False)]
    assert pb.of(Closed)[0].by_peer and "going away" in pb.of(Closed)[0].reason
    assert pa.assoc.poll_timeout() is None and pb.assoc.poll_timeout() is None
    with pytest.raises(SctpStateError):
        pb.assoc.send(0, 51, b"late", now=net.now)


def test_shutdown_delivers_queued_data_first():
    net, pa, pb = make_pair(LinkConfig(delay=0.02, loss=0.1), seed=9)
    connected(net, pa, pb)
    for i in range(20):
        pa.assoc.send(1, 53, bytes(3000) + bytes([i]), now=net.now)
    pa.assoc.shutdown(net.now)
    with pytest.raises(SctpStateError):
        pa.assoc.send(1, 53, b"too late", now=net.now)
    net.run_until(lambda: bool(pa.of(Closed)) and bool(pb.of(Closed)), timeout=60)
    assert [m[-1] for m in pb.messages(1)] == list(range(20))
    assert pa.of(Closed) == [Closed("shutdown", by_peer=False)]
    assert pb.of(Closed) == [Closed("shutdown", by_peer=True)]


# --------------------------------------------------------------------------------------------------
# Back-pressure, timers


def test_send_buffer_bound_and_buffered_amount_low():
    config = SctpConfig(send_buffer=64 * 1024)
    net, pa, pb = make_pair(config=config, snap=True)
    pa.assoc.set_buffered_amount_low_threshold(1, 16 * 1024)
    sent = 0
    with pytest.raises(SendBufferFull):
        while True:
            pa.assoc.send(1, 53, bytes(10_000), now=net.now)
            sent += 1
    assert sent == 6 and pa.assoc.buffered_amount == 60_000 <= config.send_buffer
    net.run_until(lambda: bool(pa.of(BufferedAmountLow)), timeout=10)
    assert pa.assoc.buffered_amount_of(1) <= 16 * 1024
    pa.assoc.send(1, 53, bytes(10_000), now=net.now)  # room again
    net.run_until(lambda: len(pb.messages()) == 7, timeout=10)


def test_rto_backs_off_to_the_maximum_while_the_peer_is_silent():
    config = SctpConfig(rto_initial=0.5, rto_min=0.4, rto_max=3.0)
    net, pa, pb = make_pair(config=config, snap=True)
    net.link.config.drop = lambda data, src: src == A  # everything a sends is lost
    pa.assoc.send(1, 53, b"lost", now=net.now)
    net.advance(20)
    times = [t for t, p in pa.sent if any(isinstance(c, w.DataChunk) for c in p.chunks)]
    gaps = [round(b - a, 3) for a, b in zip(times, times[1:], strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 3.0]  # RFC 6298 §5.5: doubling, capped at rto_max
    assert set(gaps[4:]) == {3.0}
    assert pa.assoc.state is State.ESTABLISHED  # WebRTC default: never give up on retransmissions


def test_max_retransmits_fails_the_association():
    config = SctpConfig(max_retransmits=3, rto_max=1.0)
    net, pa, pb = make_pair(config=config, snap=True)
    net.link.config.loss = 1.0
    pa.assoc.send(1, 53, b"lost", now=net.now)
    net.run_until(lambda: bool(pa.of(Closed)), timeout=30)
    assert pa.of(Closed) == [Closed("too many retransmissions", by_peer=False)]


def test_rtt_estimate_follows_the_path():
    net, pa, pb = make_pair(LinkConfig(delay=0.05), snap=True)
    for _ in range(30):
        pa.assoc.send(
            1, 53, bytes(2000), now=net.now
        )  # two packets: the second is SACKed at once (RFC 9260 §6.2)
        net.advance(0.3)
    assert pa.assoc.srtt == pytest.approx(0.1, abs=0.05)
    assert pa.assoc.rto == pytest.approx(0.4)  # clamped to rto_min


def test_idle_association_sends_heartbeats_and_detects_a_dead_peer():
    config = SctpConfig(heartbeat_interval=5.0, max_retransmits=2)
    net, pa, pb = make_pair(config=config, snap=True)
    net.advance(30)
    assert pa.assoc.stats["heartbeats_sent"] >= 3
    assert "HeartbeatAckChunk" in pb.chunk_types() and not pa.of(Closed)
    net.link.config.loss = 1.0
    net.advance(60)
    assert pa.of(Closed) == [Closed("too many retransmissions", by_peer=False)]


def test_delayed_sack_fires_without_more_data():
    net, pa, pb = make_pair(snap=True)
    pa.assoc.send(1, 53, b"one", now=net.now)
    net.run_until(lambda: any(isinstance(c, w.SackChunk) for _, p in pb.sent for c in p.chunks), timeout=1)
    assert net.now - 1000 == pytest.approx(0.02 + 0.2)  # RFC 9260 §6.2: within 200 ms


# --------------------------------------------------------------------------------------------------
# Cookies and remote garbage


def test_cookie_is_signed_and_has_a_lifetime():
    contents = CookieContents(1, 2, 3, 4, 5, 6, 7, True, False, 100.0, 60.0)
    cookie = seal_cookie(contents, b"k" * 32)
    assert open_cookie(cookie, b"k" * 32, 150.0) == contents
    assert open_cookie(cookie, b"x" * 32, 150.0) == "bad_cookie"
    assert open_cookie(cookie[:-1] + bytes([cookie[-1] ^ 1]), b"k" * 32, 150.0) == "bad_cookie"
    assert open_cookie(cookie, b"k" * 32, 160.0) == contents  # the last instant of its lifetime
    assert open_cookie(cookie, b"k" * 32, 98.0) == "stale_cookie"  # from the future: not ours


@pytest.mark.parametrize(
    ("now", "staleness_us"),
    [
        (161.0, 1_000_000),
        (160.0000004, 1),  # RFC 9260 §3.3.10.3: rounded up to whole microseconds
        (160.3, 300_000),  # not pushed a microsecond up by float noise (0.30000000000001137 s)
        (160.0 + 4295.0, 0xFFFFFFFF),  # beyond 32 bits of microseconds: the field's largest value
    ],
)
def test_cookie_past_its_lifetime_is_stale_by_a_measure_in_microseconds(now, staleness_us):
    """RFC 9260 §5.1.5 step 3 and §3.3.10.3: a genuine cookie past its lifetime comes back with its
    contents and how long past expiry it arrived, for the Stale Cookie error cause."""
    contents = CookieContents(1, 2, 3, 4, 5, 6, 7, True, False, 100.0, 60.0)
    cookie = seal_cookie(contents, b"k" * 32)
    assert open_cookie(cookie, b"k" * 32, now) == StaleCookie(contents, staleness_us)
    assert open_cookie(cookie, b"x" * 32, now) == "bad_cookie"  # the MAC is checked first


def test_forged_cookie_echo_is_dropped():
    assoc = SctpAssociation(rng=random.Random(1))
    tag = w.parse_init_chunk(assoc.local_init_chunk()).initiate_tag
    forged = w.serialize_packet(w.SctpPacket(5000, 5000, tag, (w.CookieEchoChunk(bytes(77)),)))
    assoc.handle_packet(forged, 1.0)
    assert assoc.state is State.CLOSED and assoc.counters["bad_cookie"] == 1
    assert assoc.poll_transmit() is None


def test_remote_garbage_is_counted_not_raised():
    net, pa, pb = make_pair(snap=True)
    assoc = pa.assoc
    tag = w.parse_init_chunk(assoc.local_init_chunk()).initiate_tag
    assoc.handle_packet(b"\x00" * 7, net.now)
    assoc.handle_packet(w.serialize_packet(w.SctpPacket(5000, 5000, tag + 1, (w.CookieAckChunk(),))), net.now)
    assoc.handle_packet(w.serialize_packet(w.SctpPacket(5000, 4000, tag, (w.CookieAckChunk(),))), net.now)
    assoc.handle_packet(
        w.serialize_packet(w.SctpPacket(5000, 5000, tag, (w.SackChunk(12345, 100),))), net.now
    )
    assert (
        assoc.counters["malformed"] == 1
        and assoc.counters["bad_tag"] == 1
        and assoc.counters["bad_port"] == 1
    )
    assert pa.assoc.state is State.CLOSED  # a SACK for TSNs never sent is a protocol violation


def test_unknown_chunks_follow_the_upper_bit_rule():
    assoc = SctpAssociation(rng=random.Random(1))
    assoc.start_snap(CHROMIUM_SNAP_INIT, 0.0)
    tag = w.parse_init_chunk(assoc.local_init_chunk()).initiate_tag
    skip_report = w.UnknownChunk(0xC5, 0, b"\x01\x02")
    data = w.DataChunk(0xBD98571C, 0, 0, 51, b"after")
    assoc.handle_packet(w.serialize_packet(w.SctpPacket(5000, 5000, tag, (skip_report, data))), 0.1)
    assert MessageReceived(0, 51, b"after") in [assoc.poll_event(), assoc.poll_event()]
    reply = w.parse_packet(assoc.poll_transmit() or b"")
    assert any(
        isinstance(c, w.ErrorChunk) and c.causes[0].code == w.CAUSE_UNRECOGNIZED_CHUNK for c in reply.chunks
    )
    stop = w.UnknownChunk(0x3F, 0, b"")
    assoc.handle_packet(
        w.serialize_packet(w.SctpPacket(5000, 5000, tag, (stop, w.DataChunk(0xBD98571D, 0, 1, 51, b"no")))),
        0.2,
    )
    assert assoc.poll_event() is None


_garbage_chunks = st.one_of(
    st.builds(
        w.DataChunk,
        st.integers(0, 2**32 - 1),
        st.integers(0, 5),
        st.integers(0, 5),
        st.sampled_from([50, 51, 53]),
        st.binary(min_size=1, max_size=30),
        st.booleans(),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        w.SackChunk,
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**20),
        st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=3).map(tuple),
    ),
    st.builds(
        w.ForwardTsnChunk,
        st.integers(0, 2**32 - 1),
        st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9)), max_size=2).map(tuple),
    ),
    st.builds(
        w.ReconfigChunk,
        st.tuples(
            st.builds(
                w.OutgoingResetRequest,
                st.integers(0, 2**32 - 1),
                st.integers(0, 9),
                st.integers(0, 2**32 - 1),
                st.lists(st.integers(0, 5), max_size=2).map(tuple),
            )
        ),
    ),
    st.builds(
        w.ReconfigChunk,
        st.tuples(st.builds(w.ReconfigResponse, st.integers(0, 2**32 - 1), st.integers(0, 7))),
    ),
    st.builds(w.HeartbeatAckChunk, st.binary(max_size=16)),
    st.builds(w.CookieEchoChunk, st.binary(max_size=80)),
    st.just(w.ShutdownChunk(0)),
    st.just(w.ShutdownAckChunk()),
    st.just(w.CookieAckChunk()),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_garbage_chunks, min_size=1, max_size=3), min_size=1, max_size=6))
def test_established_association_never_raises_on_any_chunks(packets):
    assoc = SctpAssociation(rng=random.Random(1))
    assoc.start_snap(CHROMIUM_SNAP_INIT, 0.0)
    assoc.send(1, 53, bytes(3000), now=0.0)
    tag = w.parse_init_chunk(assoc.local_init_chunk()).initiate_tag
    now = 0.0
    for chunks in packets:
        now += 0.05
        assoc.handle_packet(w.serialize_packet(w.SctpPacket(5000, 5000, tag, tuple(chunks))), now)
        assoc.handle_timeout(now)
        while assoc.poll_transmit() is not None:
            pass
        while assoc.poll_event() is not None:
            pass
        deadline = assoc.poll_timeout()
        assert deadline is None or deadline > now - 1e-9 or assoc.state is State.CLOSED


def test_a_large_send_leaves_in_bursts_of_at_most_max_burst_packets():
    """RFC 9260 Max.Burst: a 64 KiB message does not leave as one burst of ~55 datagrams."""
    import random as _random

    from voxwire.proto.sctp import SctpAssociation
    from voxwire.proto.sctp.retransmit import MAX_BURST

    a = SctpAssociation(rng=_random.Random(1))
    b = SctpAssociation(rng=_random.Random(2))
    a.start_snap(b.local_init_chunk(), 0.0)
    b.start_snap(a.local_init_chunk(), 0.0)
    a.send(1, 53, bytes(64 * 1024), now=0.0)
    burst = []
    while (packet := a.poll_transmit()) is not None:
        burst.append(packet)
    assert len(burst) <= MAX_BURST
    # Each acknowledgement opens the next burst (at most MAX_BURST again): the message arrives whole.
    now, delivered = 0.0, []

    def to_a(packet: bytes) -> None:
        a.handle_packet(packet, now)
        sent = []
        while (out := a.poll_transmit()) is not None:
            sent.append(out)
        assert len(sent) <= MAX_BURST
        burst.extend(sent)

    while not delivered and now < 5:
        now += 0.001
        pending, burst[:] = list(burst), []
        for packet in pending:
            b.handle_packet(packet, now)
            while (reply := b.poll_transmit()) is not None:
                to_a(reply)
        b.handle_timeout(now)
        while (reply := b.poll_transmit()) is not None:
            to_a(reply)
        a.handle_timeout(now)
        while (packet := a.poll_transmit()) is not None:
            burst.append(packet)
        while (event := b.poll_event()) is not None:
            if type(event).__name__ == "MessageReceived":
                delivered.append(event)
    assert delivered and len(delivered[0].data) == 64 * 1024
