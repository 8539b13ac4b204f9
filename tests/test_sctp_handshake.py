"""The SCTP handshake on virtual time: T1-init and T1-cookie, the handshake's drop counters, and
duplicate INIT / INIT ACK during setup.

Each association is driven by hand (``handle_packet`` / ``handle_timeout`` / ``poll_transmit`` /
``poll_timeout``), packet by packet, so a test decides exactly which packet is lost, duplicated or
delivered late, and when every timer fires.
"""

from __future__ import annotations

import random

import pytest

from voxwire.proto.sctp import (
    Closed,
    Connected,
    MessageReceived,
    SctpAssociation,
    SctpConfig,
    SctpEvent,
    State,
)
from voxwire.proto.sctp.cookie import CookieContents, seal_cookie
from voxwire.wire import sctp as w

KEY = b"k" * 32


def make(seed: int, config: SctpConfig | None = None, cookie_key: bytes | None = None) -> SctpAssociation:
    return SctpAssociation(rng=random.Random(seed), config=config, cookie_key=cookie_key)


def our_init(assoc: SctpAssociation) -> w.InitChunk:
    return w.parse_init_chunk(assoc.local_init_chunk())


def transmits(assoc: SctpAssociation) -> list[bytes]:
    """Every packet the association has to send now (a handshake step sends a few at most)."""
    out = []
    while (data := assoc.poll_transmit()) is not None:
        out.append(data)
        assert len(out) < 100, "poll_transmit does not run dry"
    return out


def events(assoc: SctpAssociation) -> list[SctpEvent]:
    out = []
    while (event := assoc.poll_event()) is not None:
        out.append(event)
    return out


def one(packets: list[bytes]) -> bytes:
    assert len(packets) == 1, [w.parse_packet(p) for p in packets]
    return packets[0]


def chunk_of(data: bytes) -> w.Chunk:
    """The single chunk of a packet the handshake sends alone."""
    packet = w.parse_packet(data)
    assert len(packet.chunks) == 1, packet
    return packet.chunks[0]


def packet(tag: int, *chunks: w.Chunk) -> bytes:
    return w.serialize_packet(w.SctpPacket(5000, 5000, tag, chunks))


def fire_timers(assoc: SctpAssociation, until: float) -> list[tuple[float, bytes]]:
    """Fire every deadline up to ``until``; what left, and when."""
    sent: list[tuple[float, bytes]] = []
    for _ in range(10_000):
        deadline = assoc.poll_timeout()
        if deadline is None or deadline > until:
            return sent
        assoc.handle_timeout(deadline)
        sent += [(deadline, data) for data in transmits(assoc)]
    raise AssertionError("a timer that does not move on")


def to_cookie_echoed(a: SctpAssociation, b: SctpAssociation) -> bytes:
    """a connects at t=0, b answers at 0.01, a takes the INIT ACK at 0.02; a's first COOKIE ECHO."""
    a.connect(0.0)
    b.handle_packet(one(transmits(a)), 0.01)
    a.handle_packet(one(transmits(b)), 0.02)
    assert a.state is State.COOKIE_ECHOED
    return one(transmits(a))


def established_pair() -> tuple[SctpAssociation, SctpAssociation]:
    """a and b established by a one-sided handshake."""
    a, b = make(1), make(2)
    b.handle_packet(to_cookie_echoed(a, b), 0.03)
    a.handle_packet(one(transmits(b)), 0.04)
    assert a.state is b.state is State.ESTABLISHED
    assert events(a) == events(b) == [Connected()]
    return a, b


def assert_data_flows(src: SctpAssociation, dst: SctpAssociation, now: float) -> None:
    src.send(1, 51, b"still up", now=now)
    for data in transmits(src):
        dst.handle_packet(data, now + 0.01)
    assert [e for e in events(dst) if isinstance(e, MessageReceived)] == [MessageReceived(1, 51, b"still up")]


# --------------------------------------------------------------------------------------------------
# T1-init


@pytest.mark.parametrize(
    ("config", "first_gaps", "cap"),
    [
        (SctpConfig(), [1.0, 2.0, 3.0, 3.0], 3.0),  # the default: rto 1 s, capped at 3 s
        (SctpConfig(rto_initial=0.5, rto_max=4.0, max_init_retransmits=None), [0.5, 1.0, 2.0, 4.0], 4.0),
    ],
    ids=["default", "explicit-none"],
)
def test_unanswered_init_is_resent_with_exponential_backoff_and_never_given_up_by_default(
    config, first_gaps, cap
):
    """RFC 9260 §5.1 A: T1-init resends the same INIT, doubling (§6.3 rules) up to RTO.Max."""
    assert config.max_init_retransmits is None
    assoc = make(1, config)
    assoc.connect(100.0)
    first = one(transmits(assoc))
    sent = [(100.0, first), *fire_timers(assoc, until=100.0 + 600)]
    for _, data in sent:
        parsed = w.parse_packet(data)
        assert parsed.verification_tag == 0 and parsed.chunks == (our_init(assoc),)  # §8.5.1 A
    times = [t for t, _ in sent]
    gaps = [round(later - earlier, 9) for earlier, later in zip(times, times[1:], strict=False)]
    assert gaps[: len(first_gaps)] == first_gaps
    assert set(gaps[len(first_gaps) :]) == {cap}
    assert len(sent) > 150  # ten minutes of resends: None means Max.Init.Retransmits is infinite
    assert assoc.state is State.COOKIE_WAIT and events(assoc) == []


@pytest.mark.parametrize(
    ("limit", "init_times", "closed_at"),
    [(0, [0.0], 1.0), (1, [0.0, 1.0], 3.0), (2, [0.0, 1.0, 3.0], 6.0)],
)
def test_init_gives_up_after_max_init_retransmits(limit, init_times, closed_at):
    """RFC 9260 §5.1 A: after Max.Init.Retransmits resends the initialization is aborted and reported."""
    assoc = make(1, SctpConfig(max_init_retransmits=limit))  # rto 1 s doubling, capped at 3 s
    assoc.connect(0.0)
    sent = [(0.0, one(transmits(assoc)))]
    fired = []
    while (deadline := assoc.poll_timeout()) is not None:
        assert events(assoc) == [] and assoc.state is State.COOKIE_WAIT
        assoc.handle_timeout(deadline)
        fired.append(deadline)
        sent += [(deadline, data) for data in transmits(assoc)]
        assert len(fired) < 20
    assert [t for t, _ in sent] == init_times
    assert all(isinstance(chunk_of(data), w.InitChunk) for _, data in sent)
    assert fired[-1] == closed_at
    assert events(assoc) == [Closed("handshake timed out", by_peer=False)]
    assert assoc.state is State.CLOSED
    assert assoc.poll_transmit() is None  # no peer tag yet: nothing to ABORT


def test_negative_max_init_retransmits_is_refused():
    """The knob's validation: None (retry forever) or a count >= 0."""
    with pytest.raises(ValueError, match="max_init_retransmits"):
        SctpConfig(max_init_retransmits=-1)


# --------------------------------------------------------------------------------------------------
# T1-cookie


def test_lost_cookie_echo_is_resent_on_t1_cookie_until_one_gets_through():
    """RFC 9260 §5.1 C: T1-cookie resends the COOKIE ECHO, backing off; the first to arrive
    establishes b (§5.1.5), its COOKIE ACK establishes a and stops T1-cookie."""
    a, b = make(1), make(2)
    echoes = [to_cookie_echoed(a, b)]  # lost
    assert a.poll_timeout() == pytest.approx(1.02)  # T1-cookie at the initial RTO
    a.handle_timeout(1.02)
    echoes.append(one(transmits(a)))  # lost
    assert a.poll_timeout() == pytest.approx(3.02)  # backed off
    a.handle_timeout(3.02)
    echoes.append(one(transmits(a)))
    cookies = set()
    for data in echoes:
        parsed = w.parse_packet(data)
        assert parsed.verification_tag == our_init(b).initiate_tag
        assert isinstance(parsed.chunks[0], w.CookieEchoChunk)
        cookies.add(parsed.chunks[0].cookie)
    assert len(cookies) == 1  # the State Cookie of the INIT ACK, unchanged
    assert b.state is State.CLOSED and events(a) == events(b) == []

    b.handle_packet(echoes[-1], 3.03)
    assert b.state is State.ESTABLISHED and events(b) == [Connected()]
    cookie_ack = one(transmits(b))
    assert isinstance(chunk_of(cookie_ack), w.CookieAckChunk)
    a.handle_packet(cookie_ack, 3.04)
    assert a.state is State.ESTABLISHED and events(a) == [Connected()]
    a.handle_timeout(6.02)  # where T1-cookie would have fired next
    assert transmits(a) == []
    assert a.poll_timeout() > 10  # only the heartbeat of an idle path is left


def test_t1_cookie_restarts_the_count_and_the_rto_then_gives_up():
    """RFC 9260 §5.1 C: T1-cookie starts afresh after T1-init backed off, and Max.Init.Retransmits
    bounds COOKIE ECHO resends as it bounds INIT resends."""
    config = SctpConfig(max_init_retransmits=1)
    a, b = make(1, config), make(2, config)
    a.connect(0.0)
    transmits(a)  # the INIT is lost
    a.handle_timeout(1.0)  # the one INIT resend allowed; T1-init now 2 s
    b.handle_packet(one(transmits(a)), 1.01)
    a.handle_packet(one(transmits(b)), 1.02)
    transmits(a)  # the COOKIE ECHO is lost
    assert a.poll_timeout() == pytest.approx(2.02)  # the initial RTO again, not 2 s
    a.handle_timeout(2.02)
    assert isinstance(w.parse_packet(one(transmits(a))).chunks[0], w.CookieEchoChunk)  # resend: lost
    assert a.state is State.COOKIE_ECHOED and events(a) == []
    assert a.poll_timeout() == pytest.approx(4.02)
    a.handle_timeout(4.02)
    assert events(a) == [Closed("handshake timed out", by_peer=False)]
    assert a.state is State.CLOSED and a.poll_timeout() is None


# --------------------------------------------------------------------------------------------------
# Drop counters for bad handshake input


def _in_state(situation: str) -> SctpAssociation:
    """An association in ``situation``: closed, cookie-wait (its INIT sent) or established (SNAP)."""
    assoc = make(1)
    if situation == "cookie-wait":
        assoc.connect(0.0)
    elif situation == "established":
        assoc.start_snap(our_init(make(2)), 0.0)
        events(assoc)
    transmits(assoc)
    return assoc


SITUATIONS = ["closed", "cookie-wait", "established"]


@pytest.mark.parametrize("situation", SITUATIONS)
def test_init_with_zero_initiate_tag_is_silently_discarded(situation):
    """RFC 9260 §3.3.2: an INIT whose Initiate Tag is 0 is silently discarded: nothing is sent and
    no state changes."""
    assoc = _in_state(situation)
    state, deadline = assoc.state, assoc.poll_timeout()
    assoc.handle_packet(packet(0, w.InitChunk(0, 65536, 10, 10, 7)), 0.5)
    assert assoc.counters == {"bad_init": 1}
    assert transmits(assoc) == [] and events(assoc) == []
    assert assoc.state is state and assoc.poll_timeout() == deadline


@pytest.mark.parametrize(
    "init",
    [
        w.InitChunk(0x1234, 65536, 0, 10, 7),  # zero outbound streams
        w.InitChunk(0x1234, 65536, 10, 0, 7),  # zero inbound streams
        w.InitChunk(0x1234, 65536, 0, 0, 7),
    ],
    ids=["zero-os", "zero-mis", "zero-both"],
)
@pytest.mark.parametrize("situation", SITUATIONS)
def test_init_with_zero_stream_count_is_answered_with_abort(init, situation):
    """RFC 9260 §3.3.2: the receiver of an INIT with a zero OS or MIS SHOULD abort. The ABORT carries
    an Invalid Mandatory Parameter cause (§3.3.10.7) under the INIT's Initiate Tag with the T bit
    clear (§8.4 item 3), travels alone, and no state is created or changed."""
    assoc = _in_state(situation)
    state, deadline = assoc.state, assoc.poll_timeout()
    assoc.handle_packet(packet(0, init), 0.5)
    assert assoc.counters == {"bad_init": 1}
    reply = w.parse_packet(one(transmits(assoc)))
    assert reply.verification_tag == 0x1234
    assert reply.chunks == (
        w.AbortChunk((w.ErrorCause(w.CAUSE_INVALID_MANDATORY_PARAMETER),), reflected=False),
    )
    assert w.serialize_chunk(reply.chunks[0]) == bytes.fromhex("06000008 00070004")
    assert events(assoc) == [] and assoc.state is state and assoc.poll_timeout() == deadline


def test_init_with_zero_stream_count_aborts_the_peer_that_sent_it():
    """The ABORT answering a bad INIT reaches its sender: when INITs cross, the sender's tag is the
    one its INIT announced, so it takes the ABORT and closes."""
    a, b = make(1), make(2)
    b.connect(0.0)
    theirs = our_init(b)
    bad = w.InitChunk(theirs.initiate_tag, theirs.a_rwnd, 0, theirs.inbound_streams, theirs.initial_tsn)
    a.handle_packet(packet(0, bad), 0.01)
    b.handle_packet(one(transmits(a)), 0.02)
    assert b.state is State.CLOSED and b.counters == {}
    [closed] = events(b)
    assert isinstance(closed, Closed) and closed.by_peer and "cause 7" in closed.reason
    assert a.state is State.CLOSED and events(a) == [] and a.poll_timeout() is None


@pytest.mark.parametrize(
    ("tag", "extra"),
    [(0x1234, ()), (0, (w.CookieAckChunk(),))],
    ids=["nonzero-tag", "bundled"],
)
def test_init_must_travel_alone_with_tag_zero(tag, extra):
    """RFC 9260 §8.5.1 A and §6.10: an INIT packet has verification tag 0 and no other chunk."""
    assoc = make(1)
    assoc.handle_packet(packet(tag, our_init(make(2)), *extra), 0.5)
    assert assoc.counters == {"bad_tag": 1}
    assert transmits(assoc) == []


def test_init_while_established_is_dropped_and_the_association_stays_up():
    """RFC 9260 §5.2.2: restart is not supported, so an INIT once established is counted, not answered."""
    a, b = established_pair()
    stranger = make(3)
    b.handle_packet(packet(0, our_init(stranger)), 0.5)
    b.handle_packet(packet(0, our_init(a)), 0.6)  # a's INIT again, late
    assert b.counters == {"init_while_established": 2}
    assert transmits(b) == [] and events(b) == []
    assert b.state is State.ESTABLISHED
    assert_data_flows(a, b, 1.0)
    assert_data_flows(b, a, 1.1)


def _init_ack(tag: int = 0x4321) -> w.InitAckChunk:
    return w.InitAckChunk(tag, 65536, 10, 10, 7, True, (), state_cookie=b"c" * 16)


@pytest.mark.parametrize(
    "situation", ["closed", "closed-zero-streams", "cookie-wait-zero-tag", "established"]
)
def test_unexpected_init_ack_is_dropped(situation):
    """RFC 9260 §5.2.3 (§8.4 when out of the blue): an INIT ACK outside COOKIE-WAIT is discarded,
    even one with a zero stream count, and so is one with a zero Initiate Tag (§3.3.3), which
    creates no TCB."""
    assoc = make(1)
    ack = _init_ack()
    if situation == "closed-zero-streams":
        ack = w.InitAckChunk(0x4321, 65536, 0, 0, 7, True, (), state_cookie=b"c" * 16)
    elif situation == "cookie-wait-zero-tag":
        assoc.connect(0.0)
        transmits(assoc)
        ack = _init_ack(tag=0)
    elif situation == "established":
        assoc.start_snap(our_init(make(2)), 0.0)
        events(assoc)
    state, deadline = assoc.state, assoc.poll_timeout()
    assoc.handle_packet(packet(our_init(assoc).initiate_tag, ack), 0.5)
    assert assoc.counters == {"unexpected_init_ack": 1}
    sent = [c for data in transmits(assoc) for c in w.parse_packet(data).chunks]
    assert not any(isinstance(c, w.CookieEchoChunk | w.AbortChunk) for c in sent)
    assert assoc.state is not State.COOKIE_ECHOED
    if situation != "cookie-wait-zero-tag":  # §3.3.3 would have that one end the association
        assert events(assoc) == [] and assoc.state is state and assoc.poll_timeout() == deadline


@pytest.mark.parametrize(("os_", "mis"), [(0, 10), (10, 0), (0, 0)], ids=["zero-os", "zero-mis", "zero-both"])
def test_init_ack_with_zero_stream_count_is_aborted_and_ends_the_handshake(os_, mis):
    """RFC 9260 §3.3.3: the receiver of an INIT ACK with a zero OS or MIS SHOULD destroy the
    association. It answers with an ABORT carrying Invalid Mandatory Parameter (§3.3.10.7) under
    the INIT ACK's Initiate Tag, T bit clear, and closes: no TCB, no COOKIE ECHO, no more INITs."""
    assoc = make(1)
    assoc.connect(0.0)
    transmits(assoc)
    ack = w.InitAckChunk(0x4321, 65536, os_, mis, 7, True, (), state_cookie=b"c" * 16)
    assoc.handle_packet(packet(our_init(assoc).initiate_tag, ack), 0.5)
    assert assoc.counters == {"bad_init_ack": 1}
    reply = w.parse_packet(one(transmits(assoc)))
    assert reply.verification_tag == 0x4321
    assert reply.chunks == (
        w.AbortChunk((w.ErrorCause(w.CAUSE_INVALID_MANDATORY_PARAMETER),), reflected=False),
    )
    assert events(assoc) == [Closed("INIT ACK with a zero stream count (RFC 9260 §3.3.3)", by_peer=False)]
    assert assoc.state is State.CLOSED and assoc.poll_timeout() is None
    assoc.handle_timeout(10.0)
    assert transmits(assoc) == []  # T1-init is gone: the INIT is not resent
    assoc.handle_packet(packet(our_init(assoc).initiate_tag, _init_ack()), 11.0)
    assert assoc.counters == {"bad_init_ack": 1, "after_close": 1}


def _stray_cookie_echo(victim: SctpAssociation, now: float) -> bytes:
    """A COOKIE ECHO carrying a genuine cookie ``victim`` minted (before it was established) for
    some other peer's INIT."""
    stranger = make(3)
    stranger.connect(now)
    victim.handle_packet(one(transmits(stranger)), now)
    stranger.handle_packet(one(transmits(victim)), now)
    return one(transmits(stranger))


@pytest.mark.parametrize("when", ["cookie-echoed", "established"])
def test_cookie_echo_for_another_peer_is_dropped_as_cookie_tag_mismatch(when):
    """RFC 9260 §5.2.4: a valid cookie whose peer tag is not our peer's (a restart or a stale
    collision) does not replace the association we have; restart is not supported."""
    a, b = make(1), make(2)
    echo = to_cookie_echoed(a, b)
    stray = _stray_cookie_echo(a, 0.025)  # minted while a was still setting up
    if when == "established":
        b.handle_packet(echo, 0.03)
        a.handle_packet(one(transmits(b)), 0.04)
        assert events(a) == events(b) == [Connected()]
    assert a.counters == {}
    a.handle_packet(stray, 0.06)
    assert a.counters == {"cookie_tag_mismatch": 1}
    assert transmits(a) == [] and events(a) == []  # no COOKIE ACK
    assert a.state is (State.ESTABLISHED if when == "established" else State.COOKIE_ECHOED)
    if when == "cookie-echoed":  # the real peer still gets through
        b.handle_packet(echo, 0.07)
        a.handle_packet(one(transmits(b)), 0.08)
        assert events(a) == [Connected()]
    assert_data_flows(a, b, 0.1)


def test_stale_cookie_is_answered_with_a_stale_cookie_error():
    """RFC 9260 §5.1.5 step 3: a cookie older than Valid.Cookie.Life establishes nothing, and the
    peer is sent an ERROR with a Stale Cookie cause (§3.3.10.3) whose Measure of Staleness is how
    long past its expiry the cookie arrived, in microseconds. The ERROR goes under the peer's
    Initiate Tag (§8.5), which the cookie holds, so the peer takes it."""
    config = SctpConfig(cookie_lifetime=5.0)
    a, b = make(1), make(2, config)
    echo = to_cookie_echoed(a, b)  # b minted the cookie at t=0.01: it expired at 5.01
    b.handle_packet(echo, 5.02)
    assert b.counters == {"stale_cookie": 1}
    reply = w.parse_packet(one(transmits(b)))
    assert reply.verification_tag == our_init(a).initiate_tag
    [error] = reply.chunks
    assert isinstance(error, w.ErrorChunk) and [c.code for c in error.causes] == [w.CAUSE_STALE_COOKIE]
    assert w.measure_of_staleness(error.causes[0]) == 10_000  # 5.02 - 5.01 s
    assert events(b) == [] and b.state is State.CLOSED and b.poll_timeout() is None
    a.handle_packet(w.serialize_packet(reply), 5.03)
    assert a.counters == {"error_chunks": 1}  # accepted: the tag is a's own, not a bad_tag drop
    twin = make(2, config)  # b's twin: same tag and cookie key, so the cookie is good here too
    twin.handle_packet(echo, 5.0)  # within its lifetime
    assert twin.state is State.ESTABLISHED and twin.counters == {}


def test_cookie_from_the_future_is_dropped_as_stale():
    """RFC 9260 §5.1.5: a cookie created later than now was not minted by this clock. It has not
    expired, so there is no staleness to report and no Stale Cookie ERROR goes out."""
    assoc = make(1, cookie_key=KEY)
    tag = our_init(assoc).initiate_tag
    contents = CookieContents(tag, 0x55, 1, 2, 65536, 10, 10, True, True, 100.0, 60.0)
    assoc.handle_packet(packet(tag, w.CookieEchoChunk(seal_cookie(contents, KEY))), 50.0)
    assert assoc.counters == {"stale_cookie": 1}
    assert assoc.state is State.CLOSED and transmits(assoc) == []


def test_stale_cookie_of_another_association_is_bad_not_stale():
    """A stale cookie signed with a shared key but minted by another association is not ours to
    report on: it is dropped as a bad cookie, with no Stale Cookie ERROR."""
    a, b, minter = make(1), make(2, cookie_key=KEY), make(4, SctpConfig(cookie_lifetime=5.0), cookie_key=KEY)
    chunk = w.parse_packet(to_cookie_echoed(a, minter)).chunks[0]
    assert isinstance(chunk, w.CookieEchoChunk)
    b.handle_packet(packet(our_init(b).initiate_tag, chunk), 60.0)
    assert b.counters == {"bad_cookie": 1}
    assert transmits(b) == [] and events(b) == [] and b.state is State.CLOSED


@pytest.mark.parametrize("forgery", ["flipped-bit", "other-association"])
def test_forged_cookie_is_dropped_as_bad_cookie(forgery):
    """RFC 9260 §5.1.5 steps 1-2: a cookie whose MAC fails is discarded, and so is one minted for
    another association (it does not carry our tag)."""
    if forgery == "flipped-bit":
        a, b = make(1), make(2)
        chunk = w.parse_packet(to_cookie_echoed(a, b)).chunks[0]
        assert isinstance(chunk, w.CookieEchoChunk)
        cookie = bytearray(chunk.cookie)
        cookie[5] ^= 0x01  # inside the signed body: the peer tag
        b.handle_packet(packet(our_init(b).initiate_tag, w.CookieEchoChunk(bytes(cookie))), 0.03)
    else:  # signed with b's key, but minted by another association that shares it
        a, b, minter = make(1), make(2, cookie_key=KEY), make(4, cookie_key=KEY)
        chunk = w.parse_packet(to_cookie_echoed(a, minter)).chunks[0]
        assert isinstance(chunk, w.CookieEchoChunk)
        b.handle_packet(packet(our_init(b).initiate_tag, chunk), 0.03)
    assert b.counters == {"bad_cookie": 1}
    assert transmits(b) == [] and events(b) == [] and b.state is State.CLOSED


# --------------------------------------------------------------------------------------------------
# Duplicates during setup


def test_duplicate_init_and_init_ack_to_a_one_sided_handshake_still_establish():
    """RFC 9260 §5.1 B, §5.2.3: a stateless responder answers each copy of the INIT with the same tag
    and TSN; the initiator echoes the first INIT ACK and discards the second."""
    a, b = make(1), make(2)
    a.connect(0.0)
    init = one(transmits(a))
    b.handle_packet(init, 0.01)
    b.handle_packet(init, 0.011)  # duplicated on the path
    acks = transmits(b)
    assert len(acks) == 2 and b.state is State.CLOSED and b.poll_timeout() is None  # no state kept
    theirs = our_init(b)
    for data in acks:
        ack = chunk_of(data)
        assert isinstance(ack, w.InitAckChunk)
        assert (ack.initiate_tag, ack.initial_tsn) == (theirs.initiate_tag, theirs.initial_tsn)
    a.handle_packet(acks[0], 0.02)
    a.handle_packet(acks[1], 0.021)
    assert a.counters == {"unexpected_init_ack": 1}
    echo = one(transmits(a))  # one COOKIE ECHO, not one per INIT ACK
    b.handle_packet(echo, 0.03)
    a.handle_packet(one(transmits(b)), 0.04)
    assert a.state is b.state is State.ESTABLISHED
    assert events(a) == events(b) == [Connected()]
    assert b.counters == {}
    assert_data_flows(a, b, 0.1)


def test_duplicate_init_and_init_ack_when_inits_cross_still_establish():
    """RFC 9260 §5.2.1: an INIT in COOKIE-ECHOED is answered with our original tag and TSN; the
    extra INIT ACK is discarded (§5.2.3) and the crossing COOKIE ECHOes establish both (§5.2.4 D)."""
    a, b = make(1), make(2)
    a.connect(0.0)
    b.connect(0.0)
    init_a, init_b = one(transmits(a)), one(transmits(b))
    a.handle_packet(init_b, 0.01)
    b.handle_packet(init_a, 0.01)
    ack_from_a, ack_from_b = one(transmits(a)), one(transmits(b))
    a.handle_packet(ack_from_b, 0.02)
    assert a.state is State.COOKIE_ECHOED
    echo_a = one(transmits(a))
    a.handle_packet(init_b, 0.021)  # b's INIT again, now that a is in COOKIE-ECHOED
    second_ack = chunk_of(one(transmits(a)))
    assert isinstance(second_ack, w.InitAckChunk)
    assert (second_ack.initiate_tag, second_ack.initial_tsn) == (
        our_init(a).initiate_tag,
        our_init(a).initial_tsn,
    )
    b.handle_packet(ack_from_a, 0.03)
    echo_b = one(transmits(b))
    b.handle_packet(packet(our_init(b).initiate_tag, second_ack), 0.031)
    assert b.counters == {"unexpected_init_ack": 1} and a.counters == {}
    b.handle_packet(echo_a, 0.04)
    a.handle_packet(echo_b, 0.04)
    for data in transmits(a):
        b.handle_packet(data, 0.05)
    for data in transmits(b):
        a.handle_packet(data, 0.05)
    assert a.state is b.state is State.ESTABLISHED
    assert events(a) == events(b) == [Connected()]
    assert_data_flows(a, b, 0.1)
    assert_data_flows(b, a, 0.2)


def test_duplicate_cookie_echo_after_a_lost_cookie_ack_is_acked_again():
    """RFC 9260 §5.2.4 action D: a COOKIE ECHO for the association we have is answered with a COOKIE
    ACK, without a second Connected."""
    a, b = make(1), make(2)
    b.handle_packet(to_cookie_echoed(a, b), 0.03)
    assert events(b) == [Connected()]
    transmits(b)  # the COOKIE ACK is lost
    a.handle_timeout(1.02)
    b.handle_packet(one(transmits(a)), 1.03)
    assert b.counters == {} and events(b) == []
    a.handle_packet(one(transmits(b)), 1.04)
    assert a.state is b.state is State.ESTABLISHED
    assert events(a) == [Connected()]
