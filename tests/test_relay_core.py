"""RelayCore on virtual time: tokens open flows, nothing else does; replies go back; garbage is counted.

Also the transceiver side (RelayedEndpoint, TokenUfragSource): a TestClient reaches a Transceiver
through the relay core on the in-memory network, sees its media echoed, and the transceiver sees the
client's true address.
"""

from __future__ import annotations

import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.agent.echo import EchoAgent
from voxwire.proto.certificate import Certificate
from voxwire.proto.session import SessionConfig, State
from voxwire.relay.core import Directory, LookupFlow, RelayConfig, RelayCore, ResolveTransceiver, StoreFlow
from voxwire.relay.flows import FlowTableConfig
from voxwire.relay.transceiver_side import RelayedEndpoint, TokenUfragSource
from voxwire.testing.client import TestClient
from voxwire.testing.link import Link, LinkConfig, Network
from voxwire.transceiver.service import Transceiver, TransceiverConfig
from voxwire.wire import stun
from voxwire.wire.encap import pack_addr
from voxwire.wire.token import TokenKey, TokenMinter, TokenVerifier
from voxwire.wire.types import Address

UNIX = 1_760_000_000.0
START = 1000.0
OFFSET = UNIX - START  # wallclock = monotonic + OFFSET
KEY = TokenKey(1, bytes(range(32)))
OLD_KEY = TokenKey(2, bytes(range(100, 132)))
TX: Address = ("10.0.0.2", 4000)
TX2: Address = ("10.0.0.3", 4000)
CLIENT: Address = ("198.51.100.7", 50000)
RTP = b"\x80\x6f" + bytes(158)
DTLS = b"\x16\xfe\xfd" + bytes(60)


def minter(tid: int = 7, key: TokenKey = KEY, cluster: int = 0, seed: int = 1) -> TokenMinter:
    return TokenMinter(key, cluster, tid, random.Random(seed).randbytes)


def check(ufrag: str | bytes, txid: bytes = b"t" * 12) -> bytes:
    """A client's ICE connectivity check to the server ufrag (a STUN Binding Request)."""
    server = ufrag.encode() if isinstance(ufrag, str) else ufrag
    msg = stun.StunMessage(stun.BINDING, stun.StunClass.REQUEST, txid, username=server + b":cli1", priority=1)
    return stun.serialize(msg, integrity_key=b"p" * 22)


def make_core(**kw: object) -> RelayCore:
    verifier = TokenVerifier([KEY, OLD_KEY], max_age=3600)
    return RelayCore(RelayConfig(**kw), verifier, Directory([(7, TX)]), START, wallclock_offset=OFFSET)  # type: ignore[arg-type]


def requests(core: RelayCore) -> list[object]:
    out = []
    while (r := core.poll_request()) is not None:
        out.append(r)
    return out


def test_valid_token_opens_a_flow_and_later_datagrams_follow_it():
    core = make_core()
    ufrag = minter().mint(UNIX)
    stun_check = check(ufrag)
    out = core.from_client(stun_check, CLIENT, START)
    assert out == (pack_addr(CLIENT) + stun_check, TX)
    assert requests(core) == [StoreFlow(CLIENT, 7)]
    for payload in (DTLS, RTP, b"\xff garbage is opaque once the flow exists"):
        assert core.from_client(payload, CLIENT, START + 1) == (pack_addr(CLIENT) + payload, TX)
    flow = core.table.get(CLIENT)
    assert flow is not None and flow.packets_in == 4 and flow.last_seen == START + 1
    assert requests(core) == []


def test_old_key_still_verifies_during_rotation():
    core = make_core()
    assert core.from_client(check(minter(key=OLD_KEY).mint(UNIX)), CLIENT, START) is not None


@pytest.mark.parametrize(
    ("make_ufrag", "reason"),
    [
        (lambda: minter(key=TokenKey(9, b"k" * 32)).mint(UNIX), "drop_token_unknown_key"),
        (lambda: minter(key=TokenKey(1, b"x" * 32)).mint(UNIX), "drop_token_bad_tag"),  # forged: wrong secret
        (lambda: minter().mint(UNIX - 7200), "drop_token_expired"),
        (lambda: minter().mint(UNIX + 600), "drop_token_future"),
        (lambda: minter(cluster=3).mint(UNIX), "drop_token_cluster"),
        (lambda: minter().mint(UNIX)[:-1], "drop_token_malformed"),  # truncated
        (lambda: "random16charsXYZ", "drop_token_malformed"),
    ],
)
def test_bad_tokens_open_nothing(make_ufrag, reason):
    core = make_core()
    assert core.from_client(check(make_ufrag()), CLIENT, START) is None
    assert core.counters == {reason: 1}
    assert len(core.table) == 0 and requests(core) == []


def test_every_single_character_mutation_of_a_token_is_rejected():
    core = make_core()
    ufrag = minter().mint(UNIX)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    rng = random.Random(5)
    for i in range(len(ufrag)):
        for ch in rng.sample(alphabet, 6):
            if ch == ufrag[i]:
                continue
            mutated = ufrag[:i] + ch + ufrag[i + 1 :]
            assert core.from_client(check(mutated), (f"198.51.100.{i}", 1000 + ord(ch)), START) is None
    assert len(core.table) == 0
    assert set(core.counters) <= {"drop_token_bad_tag", "drop_token_malformed", "drop_token_unknown_key"}


def test_stun_that_is_not_a_usable_binding_request_is_dropped():
    core = make_core()
    ufrag = minter().mint(UNIX)
    response = bytearray(check(ufrag))
    response[0:2] = b"\x01\x01"  # Binding success response
    no_username = stun.serialize(stun.StunMessage(stun.BINDING, stun.StunClass.REQUEST, b"u" * 12))
    colonless = stun.serialize(stun.StunMessage(stun.BINDING, stun.StunClass.REQUEST, b"v" * 12, username=b"abc"))
    assert core.from_client(bytes(response), CLIENT, START) is None
    assert core.from_client(no_username, CLIENT, START) is None
    assert core.from_client(colonless, CLIENT, START) is None
    assert core.counters == {
        "drop_stun_not_binding_request": 1, "drop_stun_without_username": 1, "drop_stun_bad_username": 1
    }


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 65535))
def test_random_datagrams_from_unknown_addresses_are_never_forwarded(data, port):
    core = make_core(flow_cache=False)
    assert core.from_client(data, ("203.0.113.5", port), START) is None
    assert len(core.table) == 0 and core.poll_transmit() is None


def test_transceiver_replies_leave_for_the_client_and_refresh_the_flow():
    core = make_core()
    core.from_client(check(minter().mint(UNIX)), CLIENT, START)
    assert core.from_transceiver(pack_addr(CLIENT) + RTP, TX, START + 2) == (RTP, CLIENT)
    flow = core.table.get(CLIENT)
    assert flow is not None and flow.packets_out == 1 and flow.bytes_out == len(RTP) and flow.last_seen == START + 2
    # Only known transceivers may send, and only well-formed headers pass.
    assert core.from_transceiver(pack_addr(CLIENT) + RTP, ("10.0.0.99", 4000), START) is None
    assert core.from_transceiver(b"\x09" + RTP, TX, START) is None
    assert core.from_transceiver(b"", TX, START) is None
    assert core.counters == {"drop_internal_unknown_source": 1, "drop_internal_bad_header": 2}


def test_a_reply_without_a_flow_restores_it():
    core = make_core()
    assert core.from_transceiver(pack_addr(CLIENT) + RTP, TX, START) == (RTP, CLIENT)
    assert core.counters["flows_learned"] == 1
    assert core.from_client(RTP, CLIENT, START + 0.02) == (pack_addr(CLIENT) + RTP, TX)
    off = make_core(learn_from_transceiver=False)
    assert off.from_transceiver(pack_addr(CLIENT) + RTP, TX, START) == (RTP, CLIENT)
    assert off.from_client(RTP, CLIENT, START) is None


def test_unknown_transceiver_id_parks_the_check_until_resolved():
    core = make_core()
    first, second = check(minter(tid=9).mint(UNIX), b"a" * 12), check(minter(tid=9).mint(UNIX), b"b" * 12)
    assert core.from_client(first, CLIENT, START) is None
    assert core.from_client(second, ("198.51.100.8", 1), START) is None
    assert requests(core) == [ResolveTransceiver(9)]  # once per id
    core.transceiver_resolved(9, TX2, START + 0.001)
    released = [core.poll_transmit(), core.poll_transmit()]
    assert released == [(pack_addr(CLIENT) + first, TX2), (pack_addr(("198.51.100.8", 1)) + second, TX2)]
    assert core.directory.get(9) == TX2 and TX2 in core.directory.addresses
    assert requests(core) == [StoreFlow(CLIENT, 9), StoreFlow(("198.51.100.8", 1), 9)]
    # An id nobody registered: the parked check is dropped.
    core.from_client(check(minter(tid=10).mint(UNIX)), ("198.51.100.9", 1), START)
    core.transceiver_resolved(10, None, START)
    assert core.poll_transmit() is None and core.counters["drop_transceiver_unknown"] == 1


def test_flow_cache_lookup_recovers_an_established_flow():
    core = make_core()
    assert core.from_client(RTP, CLIENT, START) is None
    assert core.from_client(RTP + b"2", CLIENT, START + 0.02) is None  # replaces the parked one
    assert requests(core) == [LookupFlow(CLIENT)]
    core.flow_recovered(CLIENT, 7, TX, START + 0.021)
    assert core.poll_transmit() == (pack_addr(CLIENT) + RTP + b"2", TX)
    assert core.from_client(RTP, CLIENT, START + 0.04) == (pack_addr(CLIENT) + RTP, TX)
    assert requests(core) == []  # a recovered flow is already in the cache


def test_flow_cache_miss_is_remembered_for_a_while():
    core = make_core(negative_ttl=5.0)
    core.from_client(DTLS, CLIENT, START)
    assert requests(core) == [LookupFlow(CLIENT)]
    core.flow_not_found(CLIENT, START + 0.001)
    core.from_client(DTLS, CLIENT, START + 1)
    assert requests(core) == []
    core.handle_timeout(START + 6)
    core.from_client(DTLS, CLIENT, START + 6)
    assert requests(core) == [LookupFlow(CLIENT)]


def test_lookups_are_bounded_by_pending_and_rate():
    core = make_core(max_pending=50, lookup_rate=100.0)
    for i in range(1000):
        core.from_client(RTP, (f"203.0.{i >> 8}.{i & 255}", 9), START)
    assert len(requests(core)) == 50
    assert core.counters["drop_pending_full"] == 950
    for i in range(50):
        core.flow_not_found((f"203.0.{i >> 8}.{i & 255}", 9), START)
    for i in range(1000, 2000):
        core.from_client(RTP, (f"203.0.{i >> 8}.{i & 255}", 9), START)
    assert len(requests(core)) == 50  # the bucket (100/s, burst 100) had 50 tokens left
    assert core.stats()["parked"] == 50


def test_flood_of_replayed_checks_from_new_addresses_never_displaces_a_live_call():
    core = make_core(flows=FlowTableConfig(max_flows=100, evict_idle=2.0))
    live_check = check(minter().mint(UNIX))
    core.from_client(live_check, CLIENT, START)
    replay = check(minter(seed=2).mint(UNIX))
    now = START
    for i in range(20000):
        now += 0.0005
        if i % 40 == 0:  # the live call sends every 20 ms
            assert core.from_client(RTP, CLIENT, now) is not None
        out = core.from_client(replay, (f"203.0.{i >> 8 & 255}.{i & 255}", 1024 + (i >> 16)), now)
        assert out is None or out[1] == TX  # never anywhere but a directory address
        core.handle_timeout(now)
    assert len(core.table) <= 100
    assert core.table.get(CLIENT) is not None
    stats = core.stats()
    assert stats["flows_evicted"] > 0 and stats["drop_table_full"] > 0


def test_idle_flows_expire_on_the_sweep_and_live_ones_are_refreshed_in_the_cache():
    core = make_core(flows=FlowTableConfig(idle_timeout=60.0), flow_cache_refresh=100.0)
    core.from_client(check(minter().mint(UNIX)), CLIENT, START)
    core.from_client(check(minter(seed=3).mint(UNIX)), ("198.51.100.8", 1), START)
    requests(core)
    t = START
    stores = []
    while t < START + 400:
        t += 1.0
        core.from_client(RTP, CLIENT, t)
        core.handle_timeout(t)
        stores += requests(core)
    assert core.table.get(("198.51.100.8", 1)) is None and core.table.get(CLIENT) is not None
    assert stores and all(s == StoreFlow(CLIENT, 7) for s in stores) and 2 <= len(stores) <= 4


# -- the transceiver side, end to end on virtual time ------------------------------------------------

PUBLIC: Address = ("192.0.2.1", 3478)
INTERNAL: Address = ("10.0.0.1", 5000)
TX_ADDR: Address = ("10.0.0.2", 4000)


class _Side:
    """One of the relay's two sockets as a Network peer; both share one RelayCore."""

    def __init__(self, relay: _Relay, public: bool) -> None:
        self.relay, self.public = relay, public
        self.out: deque[tuple[bytes, Address]] = deque()

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None:
        core = self.relay.core
        out = core.from_client(data, addr, now) if self.public else core.from_transceiver(data, addr, now)
        if out is not None:
            (self.relay.internal if self.public else self.relay.public).out.append(out)

    def handle_timeout(self, now: float) -> None:
        self.relay.core.handle_timeout(now)

    def poll_timeout(self) -> float | None:
        return self.relay.core.poll_timeout() if self.public else None

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        return self.out.popleft() if self.out else None


class _Relay:
    def __init__(self, core: RelayCore) -> None:
        self.core = core
        self.public, self.internal = _Side(self, True), _Side(self, False)


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


def test_client_reaches_the_transceiver_through_the_relay_and_media_echoes(certs):
    net = Network(Link(LinkConfig(delay=0.005)), start=START)
    relay = _Relay(RelayCore(RelayConfig(), TokenVerifier([KEY], 3600), Directory([(7, TX_ADDR)]), net.now,
                             wallclock_offset=OFFSET))
    source = TokenUfragSource(minter(), lambda: net.now + OFFSET)
    config = TransceiverConfig(advertised=(PUBLIC,), session=SessionConfig(connect_timeout=10))
    transceiver = Transceiver(config, EchoAgent(), certificate=certs[0], ufrag_factory=source)
    relayed = RelayedEndpoint(transceiver.endpoint, [(INTERNAL[0], 0)])
    net.add(PUBLIC, relay.public)
    net.add(INTERNAL, relay.internal)
    net.add(TX_ADDR, relayed)

    via_relay = TestClient(certs[1], net.now, rng=random.Random(1))
    call, answer = transceiver.create_call(via_relay.offer(), net.now)
    assert len(call.local_ufrag) == 29  # a routing token
    via_relay.answer(answer, net.now)
    net.add(CLIENT, via_relay)
    # The same transceiver still serves a client directly (single-node mode).
    direct = TestClient(certs[1], net.now, rng=random.Random(2))
    direct_call, direct_answer = transceiver.create_call(direct.offer(), net.now)
    direct.answer(direct_answer.replace(f"{PUBLIC[0]} {PUBLIC[1]}", f"{TX_ADDR[0]} {TX_ADDR[1]}"), net.now)
    net.add(("198.51.100.99", 40000), direct)

    net.run_until(lambda: call.session.state is State.CONNECTED and direct_call.session.state is State.CONNECTED
                  and via_relay.srtp is not None and direct.srtp is not None, timeout=3)
    assert call.session.accepts(CLIENT)  # the transceiver saw the client's true address
    for i in range(25):
        via_relay.send_rtp(b"\xf8\xff\xfe", i * 960)
        direct.send_rtp(b"\xf8\xff\xfe", i * 960)
        net.advance(0.02)
    net.advance(0.3)
    assert len(via_relay.received) >= 15 and len(direct.received) >= 15
    flow = relay.core.table.get(CLIENT)
    assert flow is not None and flow.packets_in > 25 and flow.packets_out > 15
    assert relay.core.table.get(("198.51.100.99", 40000)) is None
    assert relayed.counters == {}


def test_relayed_endpoint_refuses_encapsulation_from_strangers():
    from voxwire.proto.endpoint import Endpoint

    relayed = RelayedEndpoint(Endpoint(), [INTERNAL])
    relayed.handle_datagram(pack_addr(CLIENT) + RTP, ("10.9.9.9", 5000), START)
    relayed.handle_datagram(b"\x0b" + RTP, INTERNAL, START)
    relayed.handle_datagram(RTP, INTERNAL, START)
    assert relayed.counters == {
        "drop_encapsulated_from_non_relay": 1, "drop_bad_encapsulation": 1, "drop_plain_from_relay": 1
    }


def test_cli_parsers_for_keys_addresses_and_static_transceivers():
    from voxwire.relay.cli import parse_addresses, parse_static_transceivers, parse_token_keys

    keys = parse_token_keys(f"1:{'ab' * 16}, 2:{'cd' * 20}")
    assert [k.key_id for k in keys] == [1, 2] and keys[1].secret == bytes.fromhex("cd" * 20)
    for bad in ("", "1", f"x:{'ab' * 16}", "1:abcd", f"1:{'zz' * 16}", f"300:{'ab' * 16}"):
        with pytest.raises(ValueError) as info:
            parse_token_keys(bad)
        assert "ab" * 16 not in str(info.value)
    assert parse_addresses("0.0.0.0:3478,[::]:3478,10.0.0.1", 0) == [("0.0.0.0", 3478), ("::", 3478), ("10.0.0.1", 0)]
    with pytest.raises(ValueError):
        parse_addresses("10.0.0.1")
    assert parse_static_transceivers("7=10.0.0.2:4000, 8=[fd00::2]:4000") == [(7, ("10.0.0.2", 4000)),
                                                                             (8, ("fd00::2", 4000))]
