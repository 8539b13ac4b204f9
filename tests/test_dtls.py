"""DTLS 1.2 + DTLS-SRTP keying, on virtual time with two in-memory peers (voxwire.testing.link)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from voxwire.proto.certificate import Certificate
from voxwire.proto.dtls import (
    AlertAfterRelease,
    ApplicationData,
    DtlsClosed,
    DtlsConfig,
    DtlsEvent,
    DtlsRole,
    DtlsStateError,
    DtlsTransport,
    HandshakeComplete,
)
from voxwire.proto.srtp import SrtpProfile, SrtpSession
from voxwire.testing.link import Link, LinkConfig, Network
from voxwire.wire.types import Address

CLIENT_ADDR: Address = ("192.0.2.1", 50000)
SERVER_ADDR: Address = ("192.0.2.2", 3478)
GCM, CM80 = SrtpProfile.AEAD_AES_128_GCM, SrtpProfile.AES_CM_128_HMAC_SHA1_80


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


class Peer:
    """Adapts a DtlsTransport (address-less) to the link's Driven protocol and records events."""

    def __init__(self, transport: DtlsTransport, remote: Address) -> None:
        self.t = transport
        self.remote = remote
        self.events: list[DtlsEvent] = []
        self.sent: list[bytes] = []

    def _collect(self) -> None:
        while (e := self.t.poll_event()) is not None:
            self.events.append(e)

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None:
        assert addr == self.remote
        self.t.handle_datagram(data, now)
        self._collect()

    def handle_timeout(self, now: float) -> None:
        self.t.handle_timeout(now)
        self._collect()

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        data = self.t.poll_transmit()
        if data is None:
            return None
        self.sent.append(data)
        return data, self.remote

    def poll_timeout(self) -> float | None:
        return self.t.poll_timeout()

    def of(self, kind: type) -> list[DtlsEvent]:
        self._collect()
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def completed(self) -> HandshakeComplete | None:
        done = self.of(HandshakeComplete)
        return done[0] if done else None  # type: ignore[return-value]

    @property
    def closed(self) -> DtlsClosed | None:
        c = self.of(DtlsClosed)
        return c[0] if c else None  # type: ignore[return-value]


def make_pair(
    certs: tuple[Certificate, Certificate],
    *,
    link: LinkConfig | None = None,
    client_config: DtlsConfig | None = None,
    server_config: DtlsConfig | None = None,
    client_expects: list[tuple[str, str]] | None = None,
    server_expects: list[tuple[str, str]] | None = None,
    seed: int = 1,
) -> tuple[Network, Peer, Peer]:
    ccert, scert = certs
    net = Network(Link(link or LinkConfig(), seed=seed))
    client = Peer(
        DtlsTransport(ccert, DtlsRole.CLIENT, client_expects or [scert.fingerprint], client_config),
        SERVER_ADDR,
    )
    server = Peer(
        DtlsTransport(scert, DtlsRole.SERVER, server_expects or [ccert.fingerprint], server_config),
        CLIENT_ADDR,
    )
    net.add(CLIENT_ADDR, client)
    net.add(SERVER_ADDR, server)
    server.t.start(net.now)
    client.t.start(net.now)
    return net, client, server


def both_done(client: Peer, server: Peer) -> Callable[[], bool]:
    return lambda: (
        (client.completed is not None or client.closed is not None)
        and (server.completed is not None or server.closed is not None)
    )


def assert_connected(client: Peer, server: Peer, profile: SrtpProfile = GCM) -> None:
    assert client.closed is None and server.closed is None, (client.closed, server.closed)
    c, s = client.completed, server.completed
    assert c is not None and s is not None
    assert c.srtp_profile is s.srtp_profile is profile
    assert len(c.local_key) == len(c.remote_key) == profile.keying_len
    # RFC 5764 §4.2: what the client writes with is what the server reads with, and vice versa.
    assert c.local_key == s.remote_key and c.remote_key == s.local_key
    assert c.local_key != c.remote_key


# -- handshake -------------------------------------------------------------------------------------


def test_handshake_completes_with_crosswise_srtp_keys(certs: tuple[Certificate, Certificate]) -> None:
    net, client, server = make_pair(certs)
    net.run_until(both_done(client, server))
    assert_connected(client, server)
    # Happy path: two round trips (delay 10 ms each way), and no timer ever fired.
    assert net.now - 1000.0 == pytest.approx(0.04)
    for p in (client, server):
        assert p.t.counters.retransmits == p.t.counters.verbatim_resends == 0
        assert p.t.poll_timeout() is None
    assert len(client.sent) == 2 and len(server.sent) == 2  # CH | F3, F2 | F4


def test_srtp_sessions_from_the_keys_interoperate(certs: tuple[Certificate, Certificate]) -> None:
    net, client, server = make_pair(certs)
    net.run_until(both_done(client, server))
    c, s = client.completed, server.completed
    assert c is not None and s is not None
    cs = SrtpSession(c.srtp_profile, c.local_key, c.remote_key)
    ss = SrtpSession(s.srtp_profile, s.local_key, s.remote_key)
    rtp = bytes.fromhex("80780001000000a0deadbeef") + b"\x01" * 40
    assert ss.unprotect_rtp(cs.protect_rtp(rtp)) == rtp
    assert cs.unprotect_rtp(ss.protect_rtp(rtp)) == rtp


def test_cm80_is_chosen_when_it_is_all_the_client_offers(certs: tuple[Certificate, Certificate]) -> None:
    net, client, server = make_pair(certs, client_config=DtlsConfig(srtp_profiles=(CM80,)))
    net.run_until(both_done(client, server))
    assert_connected(client, server, CM80)


def test_cm80_is_chosen_when_it_is_all_the_server_accepts(certs: tuple[Certificate, Certificate]) -> None:
    net, client, server = make_pair(certs, server_config=DtlsConfig(srtp_profiles=(CM80,)))
    net.run_until(both_done(client, server))
    assert_connected(client, server, CM80)


def test_server_prefers_gcm_even_when_the_client_lists_cm80_first(
    certs: tuple[Certificate, Certificate],
) -> None:
    net, client, server = make_pair(certs, client_config=DtlsConfig(srtp_profiles=(CM80, GCM)))
    net.run_until(both_done(client, server))
    assert_connected(client, server, GCM)


def test_no_common_srtp_profile_closes_both(certs: tuple[Certificate, Certificate]) -> None:
    net, client, server = make_pair(
        certs, client_config=DtlsConfig(srtp_profiles=(GCM,)), server_config=DtlsConfig(srtp_profiles=(CM80,))
    )
    net.run_until(both_done(client, server))
    net.advance(0.1)
    assert client.completed is None and server.completed is None
    for p in (client, server):
        assert p.closed is not None and "no SRTP profile negotiated" in p.closed.reason


def test_handshake_with_reversed_start_order(certs: tuple[Certificate, Certificate]) -> None:
    """The server may be started late: the ClientHello is retransmitted until it is."""
    ccert, scert = certs
    net = Network(Link())
    client = Peer(DtlsTransport(ccert, DtlsRole.CLIENT, [scert.fingerprint]), SERVER_ADDR)
    net.add(CLIENT_ADDR, client)
    client.t.start(net.now)
    net.advance(0.5)  # the ClientHello went nowhere
    server = Peer(DtlsTransport(scert, DtlsRole.SERVER, [ccert.fingerprint]), CLIENT_ADDR)
    net.add(SERVER_ADDR, server)
    server.t.start(net.now)
    net.run_until(both_done(client, server))
    assert_connected(client, server)
    assert client.t.counters.verbatim_resends >= 1


# -- fingerprints ------------------------------------------------------------------------------------


def test_wrong_server_fingerprint_closes_both(certs: tuple[Certificate, Certificate]) -> None:
    ccert, _ = certs
    net, client, server = make_pair(certs, client_expects=[ccert.fingerprint])  # not the server's
    net.run_until(both_done(client, server))
    assert client.completed is None and server.completed is None
    assert client.closed == DtlsClosed("fingerprint mismatch")
    assert server.closed is not None and server.closed.reason.startswith("handshake failed")
    assert "alert" in server.closed.reason  # the client told it why
    assert client.t.poll_timeout() is None and server.t.poll_timeout() is None


def test_wrong_client_fingerprint_closes_both(certs: tuple[Certificate, Certificate]) -> None:
    _, scert = certs
    net, client, server = make_pair(certs, server_expects=[scert.fingerprint])  # not the client's
    net.run_until(both_done(client, server))
    assert client.completed is None and server.completed is None
    assert server.closed == DtlsClosed("fingerprint mismatch")
    assert client.closed is not None and "alert" in client.closed.reason


def test_fingerprint_in_other_hash_functions_and_case(certs: tuple[Certificate, Certificate]) -> None:
    ccert, scert = certs
    net, client, server = make_pair(
        certs,
        client_expects=[("sha-256", "00:11"), ("SHA-512", scert.fingerprint_with("sha-512").lower())],
        server_expects=[("md5", "00:11"), ("sha-1", ccert.fingerprint_with("sha-1"))],
    )
    net.run_until(both_done(client, server))
    assert_connected(client, server)


def test_no_usable_fingerprint_is_refused_at_construction(certs: tuple[Certificate, Certificate]) -> None:
    with pytest.raises(ValueError, match="no usable remote fingerprint"):
        DtlsTransport(certs[0], DtlsRole.CLIENT, [("md5", "00:11")])


# -- loss, retransmission, timeouts -------------------------------------------------------------------


@pytest.mark.parametrize(
    "drop",
    [{0}, {1}, {2}, {3}, {0, 1}, {1, 2}, {2, 3}, {1, 2, 3}, {3, 4, 5}],
    ids=lambda d: "drop" + "+".join(map(str, sorted(d))),
)
def test_lost_flights_are_recovered(certs: tuple[Certificate, Certificate], drop: set[int]) -> None:
    """Datagram n of the exchange is lost (0 ClientHello, 1 server flight, 2 client flight,
    3 final server flight, then whatever comes next)."""
    counter = itertools.count()
    net, client, server = make_pair(certs, link=LinkConfig(drop=lambda data, src: next(counter) in drop))
    net.run_until(both_done(client, server), timeout=12)
    assert_connected(client, server)
    assert net.link.dropped == len(drop)
    resends = sum(p.t.counters.verbatim_resends + p.t.counters.retransmits for p in (client, server))
    assert resends >= 1
    if drop == {3}:
        # The final flight is recovered by the server answering the client's repeated flight.
        assert server.t.counters.verbatim_resends == 1 and client.t.counters.verbatim_resends == 1


@pytest.mark.parametrize("seed", range(12))
def test_random_loss_and_jitter(certs: tuple[Certificate, Certificate], seed: int) -> None:
    net, client, server = make_pair(
        certs,
        link=LinkConfig(loss=0.25, delay=0.03, jitter=0.02, mtu=600),
        client_config=DtlsConfig(mtu=600, handshake_timeout=60),
        server_config=DtlsConfig(mtu=600, handshake_timeout=60),
        seed=seed,
    )
    net.run_until(both_done(client, server), timeout=60)
    assert_connected(client, server)
    # and data still flows both ways afterwards on the same lossy link
    client.t.send(b"ping")
    server.t.send(b"pong")
    net.link.config.loss = 0.0
    net.advance(0.2)
    assert ApplicationData(b"ping") in server.events and ApplicationData(b"pong") in client.events


def test_handshake_timeout_when_the_peer_never_answers(certs: tuple[Certificate, Certificate]) -> None:
    net, client, server = make_pair(
        certs,
        link=LinkConfig(drop=lambda data, src: src == CLIENT_ADDR),
        client_config=DtlsConfig(handshake_timeout=5),
    )
    net.run_until(lambda: client.closed is not None, timeout=6)
    assert client.closed == DtlsClosed("handshake timeout")
    assert net.now - 1000.0 == pytest.approx(5.0)
    assert client.t.counters.verbatim_resends >= 3  # the ClientHello was re-sent meanwhile
    assert client.t.poll_timeout() is None
    net.run_until(lambda: server.closed is not None, timeout=6)
    assert server.closed == DtlsClosed("handshake timeout")
    assert server.completed is None


def test_timers_only_move_forward(certs: tuple[Certificate, Certificate]) -> None:
    """handle_timeout always pushes poll_timeout past now (the driver would spin otherwise)."""
    net, client, _ = make_pair(certs, link=LinkConfig(loss=1.0))
    now = net.now
    for _ in range(20):
        t = client.t.poll_timeout()
        if t is None:
            break
        assert t > now
        now = t
        client.t.handle_timeout(now)


# -- MTU ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mtu", [256, 300, 576, 1200])
def test_every_datagram_fits_the_mtu(certs: tuple[Certificate, Certificate], mtu: int) -> None:
    net, client, server = make_pair(
        certs,
        link=LinkConfig(mtu=mtu),  # the link raises MtuExceeded on any larger datagram
        client_config=DtlsConfig(mtu=mtu),
        server_config=DtlsConfig(mtu=mtu),
    )
    net.run_until(both_done(client, server))
    assert_connected(client, server)
    if mtu < 600:
        assert len(server.sent) > 2  # the certificate flight had to be split
    assert max(map(len, client.sent + server.sent)) <= mtu
    for sender in (client, server):
        payload = bytes(range(256)) * (sender.t.max_send_size // 256 + 1)
        sender.t.send(payload[: sender.t.max_send_size])
        with pytest.raises(ValueError):
            sender.t.send(payload[: sender.t.max_send_size + 1])
    net.advance(0.1)
    assert max(map(len, client.sent + server.sent)) <= mtu
    assert len(client.of(ApplicationData)) == len(server.of(ApplicationData)) == 1


# -- application data and close ------------------------------------------------------------------------


def test_application_data_both_ways(certs: tuple[Certificate, Certificate]) -> None:
    net, client, server = make_pair(certs)
    net.run_until(both_done(client, server))
    for i in range(5):
        client.t.send(b"c%d" % i)
        server.t.send(b"s%d" % i)
    net.advance(0.1)
    assert [e for e in server.events if isinstance(e, ApplicationData)] == [
        ApplicationData(b"c%d" % i) for i in range(5)
    ]
    assert [e for e in client.events if isinstance(e, ApplicationData)] == [
        ApplicationData(b"s%d" % i) for i in range(5)
    ]


def test_send_before_the_handshake_and_after_close_raises(certs: tuple[Certificate, Certificate]) -> None:
    net, client, server = make_pair(certs)
    with pytest.raises(DtlsStateError, match="client: send"):
        client.t.send(b"early")
    net.run_until(both_done(client, server))
    client.t.close(net.now)
    with pytest.raises(DtlsStateError, match="closed"):
        client.t.send(b"late")


def test_misuse_raises_typed_errors(certs: tuple[Certificate, Certificate]) -> None:
    t = DtlsTransport(certs[0], DtlsRole.SERVER, [certs[1].fingerprint])
    with pytest.raises(DtlsStateError, match="before start"):
        t.handle_datagram(b"\x16\xfe\xfd" + bytes(10), 0.0)
    t.start(0.0)
    with pytest.raises(DtlsStateError, match="start"):
        t.start(0.0)
    with pytest.raises(DtlsStateError):
        _ = t.max_send_size


def test_close_notify_reaches_the_peer(certs: tuple[Certificate, Certificate]) -> None:
    net, client, server = make_pair(certs)
    net.run_until(both_done(client, server))
    client.t.close(net.now)
    assert client.closed == DtlsClosed("closed locally")
    net.advance(0.1)
    assert server.closed == DtlsClosed("closed by peer")
    client.t.close(net.now)  # idempotent
    assert len(client.of(DtlsClosed)) == 1 and len(server.of(DtlsClosed)) == 1
    assert server.t.poll_timeout() is None and client.t.poll_timeout() is None


def test_a_connected_client_releases_its_connection(certs: tuple[Certificate, Certificate]) -> None:
    """release(): only a connected client frees OpenSSL; what arrives later is counted, not read;
    close() then reports closed without a close_notify; send() is refused."""
    net, client, server = make_pair(certs)
    assert not client.t.release() and not client.t.released  # still handshaking
    net.run_until(both_done(client, server))
    assert_connected(client, server)
    assert not server.t.release() and not server.t.released  # the server may have to resend its last flight
    assert client.t.release() and client.t.released and client.t.is_connected
    assert client.t.release()  # idempotent
    assert client.t.poll_timeout() is None
    server.t.close(net.now)  # the peer's close_notify cannot be read (nor authenticated) any more
    net.advance(0.1)
    assert client.t.counters.after_release == 1 and client.closed is None
    assert client.of(AlertAfterRelease) == [AlertAfterRelease()]  # only a hint: it is not authenticated
    with pytest.raises(DtlsStateError, match="released"):
        client.t.send(b"sctp")
    sent = len(client.sent)
    client.t.close(net.now)
    net.advance(0.1)
    assert client.closed == DtlsClosed("closed locally") and len(client.sent) == sent


def test_close_during_the_handshake(certs: tuple[Certificate, Certificate]) -> None:
    net, client, server = make_pair(certs)
    net.step()
    server.t.close(net.now)
    assert server.closed == DtlsClosed("closed locally")
    net.advance(0.5)
    assert server.completed is None and server.t.counters.after_close >= 1


# -- garbage -----------------------------------------------------------------------------------------

GARBAGE = [
    b"",
    b"\x16",
    b"\x16\xfe\xfd" + bytes(9),  # short header
    b"\x16\xfe\xfd" + bytes(8) + b"\x00\x10" + bytes(4),  # length beyond the datagram
    b"\x18\xfe\xfd" + bytes(8) + b"\x00\x00",  # heartbeat content type
    b"\x17\x03\x03" + bytes(8) + b"\x00\x00",  # TLS, not DTLS, version
    b"\x2f" + bytes(40),  # DTLS 1.3 unified header
    b"\x3f\xff" * 30,
    b"\x17\xfe\xfd" + bytes(8) + b"\x00\x01x" + b"\x99",  # trailing junk after a record
]


def test_garbage_is_counted_and_ignored_during_and_after_the_handshake(
    certs: tuple[Certificate, Certificate],
) -> None:
    net, client, server = make_pair(certs)
    for g in GARBAGE:
        server.t.handle_datagram(g, net.now)
    assert server.t.counters.malformed == len(GARBAGE)
    net.run_until(both_done(client, server))
    assert_connected(client, server)
    for g in GARBAGE:
        client.t.handle_datagram(g, net.now)
    assert client.t.counters.malformed == len(GARBAGE)
    # Well-formed application-data records that do not decrypt: counted, no event, still connected.
    forged = b"\x17\xfe\xfd\x00\x01\x00\x00\x00\x00\x00\x07\x00\x30" + bytes(0x30)
    server.t.handle_datagram(forged, net.now)
    assert server.t.counters.undecryptable == 1
    # A replayed genuine record is dropped by the replay window (RFC 6347 §4.1.2.6).
    client.t.send(b"once")
    record = client.t.poll_transmit()
    assert record is not None
    server.t.handle_datagram(record, net.now)
    server.t.handle_datagram(record, net.now)
    assert server.of(ApplicationData) == [ApplicationData(b"once")]
    assert server.t.counters.undecryptable == 2
    assert client.closed is None and server.closed is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(st.binary(max_size=300), max_size=8))
def test_any_bytes_after_the_handshake_never_raise_or_disconnect(
    certs: tuple[Certificate, Certificate], data: list[bytes]
) -> None:
    net, client, server = connected_pair(certs)
    for d in data:
        server.t.handle_datagram(d, net.now)
        # also as record headers with a plausible shape, so OpenSSL sees them too
        server.t.handle_datagram(b"\x17\xfe\xfd\x00\x01" + bytes(6) + len(d).to_bytes(2, "big") + d, net.now)
    assert server.closed is None and server.t.is_connected
    client.t.send(b"still here")
    net.advance(0.05)
    assert ApplicationData(b"still here") in server.events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(st.binary(max_size=300), max_size=6), epoch=st.integers(0, 2), ctype=st.integers(20, 23))
def test_any_bytes_during_the_handshake_never_raise(
    certs: tuple[Certificate, Certificate], data: list[bytes], epoch: int, ctype: int
) -> None:
    """Garbage may end a handshake (a spoofed fatal message can), but never escapes as an exception."""
    server = DtlsTransport(certs[1], DtlsRole.SERVER, [certs[0].fingerprint])
    server.start(0.0)
    for d in data:
        server.handle_datagram(d, 0.0)
        header = (
            bytes([ctype]) + b"\xfe\xfd" + epoch.to_bytes(2, "big") + bytes(6) + len(d).to_bytes(2, "big")
        )
        server.handle_datagram(header + d, 0.0)
    events = list(iter(server.poll_event, None))
    assert all(isinstance(e, DtlsClosed) for e in events) and len(events) <= 1
    assert server.counters.datagrams_in == 2 * len(data)


_pairs: dict[int, tuple[Network, Peer, Peer]] = {}


def connected_pair(certs: tuple[Certificate, Certificate]) -> tuple[Network, Peer, Peer]:
    """One connected pair shared by the property's examples (a handshake per example is slow)."""
    key = id(certs)
    if key not in _pairs:
        net, client, server = make_pair(certs)
        net.run_until(both_done(client, server))
        _pairs[key] = (net, client, server)
    return _pairs[key]


# -- Chromium 156's DTLS 1.3 ClientHello -------------------------------------------------------------------

# Captured from Debian's chromium 156.0.8078.108 (headless, two RTCPeerConnections over loopback in a
# private network namespace, sniffed on lo). One 1413-byte ClientHello in two records, one per
# datagram (1200 + 263 bytes): supported_versions {DTLS 1.3, DTLS 1.2}, key_share X25519MLKEM768
# (0x11EC, 1216 bytes) + X25519, use_srtp {0x0001, 0x0008, 0x0007}.
CHROMIUM_CH1 = bytes.fromhex(
    "16feff000000000000000004a3010005850000000000000497fefd606c023a2fa9c49c675fe13adce2445b07f49762f0"
    "d05a322ba5e7909200f8770000001c130113021303c02bc02fcca9cca8c009c013c00ac014009c002f00350100053f00"
    "170000002d00020101000a000a000811ec001d00170018002b000504fefcfefdff01000100003304ea04e811ec04c0a9"
    "dca10f2b4e5bd6612dc66db4558ad42343fbf727a7a79f32d1aa7358224317745a7a4d10f31971d545d5966997925911"
    "52759cfb5782879dca814a9123480d617f2ce7a0dc18a99ac26be16b79c1460b218b9f3b42b67faccd18a4683f391f28"
    "5921e4290f9671c239422741241d66854d06b4ad0769a8dc1b33506b57de9c9e8ef01d0b8715ef291ca3a042ace1418d"
    "12c7a7cac98c6ab39c1ab132a7573c655af4ba732a5a2d2eea171af3559462c3e03ac482147b3602331b4c6db8f5946b"
    "61831eb4c9aff061e182431390bdd8652d7a64c56eb5cf99bcb26ffa74c80b951660c44f985e0d68b5e6a863cec66ef2"
    "eb23e58936d517792cb8560677c3851331b01896c4a97ca970084ec7b5298a0837a5a52bf072a74c1cf1798e74189eb4"
    "9918a337ab1f9575c34563425853b1762e732cc87ba76d09d03513499ab5162d50519239e28f2eaa75e1f0070e649044"
    "8660de60b3efc8b35552558d6471665aa559107b4289775a477dc381215ce5678977009ddc0931622905c46aa0ccbd4c"
    "b58268626b9fb3b3e2d46aba628506785548a0cbc9d5a409604cb301687b69a44226068e5b8573867114102489963dde"
    "7bc6ba153b595436dc45b45a5848656c1784c756c52a9710b85609890c129b0379a67a78720ea51cc5181baa1a03b5de"
    "34aab742298e74177f2b717f6396ac7599bf6c1372c37ffeb634873abf8d074f56d035f1987de72062db9781c0da9fcb"
    "a79869313591e9aba0c1a3d73886f31210d6518734eabaa2c4cf702c6a07c7a865529987b1c1fb22387a5044d44c67ae"
    "38221ad3b2bba0a19b2c3f0b600f47eb4367013af2544bd69023ffb243249a4835f3b27b5b0729b31cb0764039c240a6"
    "e1b57fa72b3c3a9fad5b917e7c46e183a172831b323b3998f4aea332849c05596e43c8f8a896bf56cad95552fc4494d4"
    "e4169e67b2bdd88bf249713f781f03d5240bd02c7a64872662a6f4963c45003e1fac0bbb0307ee2185758701e4316306"
    "831c51995bc2d4b0c523431fe8c8f95998867469afd832f685beb69b4cb2d736502ab536545aff0b6f94ca211c00c7f9"
    "7562f3543f5c26aed5b54a31b2ca5371ca468654f3936318341cabf2ae4ff040f5704859349d1297b35a2562ac248f49"
    "091bd970ad4c88762ceac7227580f23811753a1fa2d2889b52b8e3c67149f163d448a053b7534d3567fee40aa4bc1be6"
    "9952c2308183d9a2cc9a20f6a9746cb92fd10a642fd04ed454a3ea37b3a9f73be9216196a14e608b78329433ec5a6b0e"
    "06ab5752b79b4677444897c36b94320012bf7611a5a5a27f2472ffc4ce9299423c2a65f7c650d64a5119a2a027596de2"
    "132ab0467f5a075aad5838c9790570bb887f4417741652cf77cf9f868234d63f574c44e605cd2819734dacc2d3c52c08"
    "2b2ba4458d06a16c83d244f0f68fb1c53a4aa6c61fe89fbaa63f4c08b4882024c662bd67d738fcb84d7b4c8b22b69ed7"
)
CHROMIUM_CH2 = bytes.fromhex(
    "16feff000000000000000100fa0100058500000004970000eee934dc5c1438e66c2af8796a527bd7501bc852a2b3e817"
    "d5d26bad5a9feb348ebaa09c65911dc9863da4995a6d051152a567902a653f316254953ae3e1c642dc4bdaa2c368a41b"
    "ee8b6f7f571a0ad1532a47110f1116da3668d9a403d14795feca50007e583cf83c807ac9aa92479b1e3b42e0dc8375d1"
    "67d635f72b0d96d30bed02f65bf91494c33aba845ed585b69c8f18a8af4d25ebe10adc913ae28e7d001d0020dbdaa19d"
    "722656e9999e6b97e8ddc8f4f77f8c88eb336f01b58c8f8ef3f3d56d000e0009000600010008000700000b0002010000"
    "0d00140012040308040401050308050501080606010201"
)


def _server_hello(datagram: bytes) -> dict[str, object]:
    """Version, cipher suite and extensions of the ServerHello at the start of a datagram."""
    assert datagram[0] == 22 and datagram[13] == 2, "a handshake record holding a ServerHello"
    body = datagram[13 + 12 :]
    p = 2 + 32
    p += 1 + body[p]  # session id
    suite = body[p : p + 2].hex()
    p += 3  # suite, compression
    ext_end = p + 2 + int.from_bytes(body[p : p + 2], "big")
    p += 2
    exts: dict[int, bytes] = {}
    while p < ext_end:
        etype, elen = int.from_bytes(body[p : p + 2], "big"), int.from_bytes(body[p + 2 : p + 4], "big")
        exts[etype] = body[p + 4 : p + 4 + elen]
        p += 4 + elen
    return {"record_version": datagram[1:3].hex(), "version": body[:2].hex(), "suite": suite, "exts": exts}


@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_chromium_dtls13_client_hello_is_answered_with_dtls12(
    certs: tuple[Certificate, Certificate], order: str
) -> None:
    assert len(CHROMIUM_CH1) == 1200 and len(CHROMIUM_CH2) == 263
    server = DtlsTransport(certs[1], DtlsRole.SERVER, [certs[0].fingerprint])
    server.start(0.0)
    first, second = (CHROMIUM_CH1, CHROMIUM_CH2) if order == "in-order" else (CHROMIUM_CH2, CHROMIUM_CH1)
    server.handle_datagram(first, 0.01)
    assert server.poll_transmit() is None  # half a ClientHello: wait for the rest
    server.handle_datagram(second, 0.02)
    flight = list(iter(server.poll_transmit, None))
    assert server.poll_event() is None  # no DtlsClosed: the handshake goes on
    assert server.counters.malformed == 0
    assert flight and all(len(d) <= 1200 for d in flight)
    sh = _server_hello(flight[0])
    assert sh["version"] == "fefd"  # DTLS 1.2 (RFC 6347 §4.1)
    assert sh["suite"] == "c02b"  # ECDHE-ECDSA-AES128-GCM-SHA256
    exts = sh["exts"]
    assert isinstance(exts, dict)
    assert 43 not in exts and 51 not in exts  # no supported_versions, no key_share: not DTLS 1.3
    assert exts[14] == bytes.fromhex("0002000700")  # use_srtp: SRTP_AEAD_AES_128_GCM (RFC 7714 §14.2)
    # Chromium would now send its second flight; without it the server keeps retransmitting.
    assert server.poll_timeout() is not None


def test_fragmented_client_hello_from_a_plain_openssl_client(certs: tuple[Certificate, Certificate]) -> None:
    """An independent (non-voxwire) DTLS client whose ClientHello spans several 256-byte records."""
    ccert, scert = certs
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_options(SSL.OP_NO_QUERY_MTU)
    ctx.use_certificate(ccert.x509)
    ctx.use_privatekey(ccert.private_key)
    ctx.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
    ctx.set_alpn_protos([b"padding-protocol-%02d" % i for i in range(30)])  # makes the hello ~800 bytes
    raw = SSL.Connection(ctx, None)
    raw.set_ciphertext_mtu(256)
    raw.set_connect_state()
    server = DtlsTransport(scert, DtlsRole.SERVER, [ccert.fingerprint], DtlsConfig(mtu=256))
    server.start(0.0)

    def raw_out() -> bytes:
        out = b""
        while True:
            try:
                out += raw.bio_read(65536)
            except SSL.WantReadError:
                return out

    def raw_step() -> None:
        try:
            raw.do_handshake()
        except SSL.WantReadError:
            pass

    raw_step()
    hello = raw_out()
    assert len(hello) > 600
    fragments = 0
    pos = 0
    while pos < len(hello):  # feed one record per datagram, as a 256-byte path would deliver them
        end = pos + 13 + int.from_bytes(hello[pos + 11 : pos + 13], "big")
        server.handle_datagram(hello[pos:end], 0.0)
        fragments += 1
        pos = end
    assert fragments >= 3
    for _ in range(4):
        for d in iter(server.poll_transmit, None):
            assert len(d) <= 256
            raw.bio_write(d)
            raw_step()
        out = raw_out()
        pos = 0
        while pos < len(out):
            end = pos + 13 + int.from_bytes(out[pos + 11 : pos + 13], "big")
            server.handle_datagram(out[pos:end], 0.0)
            pos = end
    events = list(iter(server.poll_event, None))
    done = [e for e in events if isinstance(e, HandshakeComplete)]
    assert done and done[0].srtp_profile is CM80, events
    material = raw.export_keying_material(b"EXTRACTOR-dtls_srtp", 60)
    client_key = material[:16] + material[32:46]
    server_key = material[16:32] + material[46:]
    assert done[0].remote_key == client_key and done[0].local_key == server_key


def test_config_is_validated() -> None:
    for bad in (
        dict(mtu=255),
        dict(mtu=70000),
        dict(handshake_timeout=0),
        dict(handshake_timeout=float("nan")),
        dict(srtp_profiles=()),
        dict(srtp_profiles=(GCM, GCM)),
    ):
        with pytest.raises(ValueError):
            DtlsConfig(**bad)  # type: ignore[arg-type]
