"""A sans-IO DTLS 1.2 endpoint for DTLS-SRTP, over pyOpenSSL memory BIOs.

Theory of operation
-------------------
OpenSSL does the cryptography and the handshake state machine; this module does everything that
touches the network or time. A :class:`DtlsTransport` owns one ``SSL.Connection`` with memory BIOs:
``handle_datagram`` writes one UDP payload into the read BIO and drives the handshake (or reads
application data); whatever OpenSSL wrote is drained, cut into datagrams and queued for
``poll_transmit``; results come out of ``poll_event`` as small frozen dataclasses.

Contexts, suites and peer authentication live in :mod:`voxwire.proto.dtls_context`.

Keys (RFC 5764 §4.2). ``use_srtp`` offers AEAD_AES_128_GCM then AES_CM_128_HMAC_SHA1_80 (as server
OpenSSL picks by our order). On completion, ``export_keying_material("EXTRACTOR-dtls_srtp")`` yields
client_write_key | server_write_key | client_write_salt | server_write_salt, which we regroup into
master key || salt per direction: :class:`HandshakeComplete` carries ``local_key`` (what we
protect with) and ``remote_key`` (what we unprotect with).

Datagrams and MTU. ``SSL_set_mtu`` (with ``OP_NO_QUERY_MTU``, the BIO knows no path MTU) makes
OpenSSL fragment handshake messages so that every record fits ``config.mtu``; the memory BIO then
returns a whole flight as one byte string of records. We parse the 13-byte record headers
(RFC 6347 §4.1) and pack whole records greedily into datagrams of at most ``mtu`` bytes. Inbound, a
datagram must be a sequence of well-formed DTLS 1.0/1.2 records or it is dropped and counted before
OpenSSL sees it.

Retransmission (RFC 6347 §4.2.4) -- the design decision. Only OpenSSL can retransmit correctly: a
re-sent flight needs fresh record sequence numbers (a peer drops a copy of a record it holds, and a
server re-sends its final flight only on seeing the client's Finished *again*; that Finished is
encrypted, so we cannot renumber it). But OpenSSL's timer runs on its own clock (``gettimeofday``)
and the bindings expose neither ``DTLS_set_timer_cb`` nor ``SSL_ctrl``: we can ask for a
retransmission, never force one. So:

* Our deadline mirrors OpenSSL's: after each call, ``deadline = now + DTLSv1_get_timeout()``
  (1 s, doubling to 60 s). In production ``now`` is monotonic and advances with OpenSSL's clock, so
  when our timer fires OpenSSL is due too (it counts < 15 ms left as expired) and
  ``DTLSv1_handle_timeout`` re-sends with fresh numbers -- the path that recovers a lost final flight.
* If OpenSSL declines because its clock disagrees with ``now`` (virtual time in tests, a wall clock
  stepped back), we re-send the cached last flight byte for byte: the peer's replay window drops the
  records it has and accepts the lost ones, which is all this loss needs -- except our final flight,
  for which the next rule exists.
* When a datagram re-delivers a peer flight we already answered (all its handshake message_seq are
  at or below those we had seen when we sent our flight) and OpenSSL stays silent, we re-send our
  last flight at once (RFC 6347 §4.2.4 state machine: "read retransmit -> retransmit"). This heals a
  lost flight in one round trip when the peer's timer is shorter than OpenSSL's fixed 1 s (WebRTC
  stacks start near 50 ms) and recovers a lost final flight on virtual time. One such resend per
  :data:`_ECHO_INTERVAL` at most, so replayed datagrams are not amplified.

Release. A call without data channels needs DTLS only for its keys. Once connected, a client
can :meth:`~DtlsTransport.release` its OpenSSL connection: an idle call's resident memory went
from 59 to 18 KB (bench/capacity.py, pass-through, same run). See the method for what changes.

``config.handshake_timeout`` after ``start`` an unfinished handshake ends in
``DtlsClosed("handshake timeout")``. Remote garbage is counted in :attr:`DtlsTransport.counters`,
never raised; misuse (``send`` before the handshake) raises :class:`DtlsStateError`; a fatal alert
or failed handshake ends in one :class:`DtlsClosed` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from OpenSSL import SSL

from voxwire.proto.certificate import Certificate
from voxwire.proto.dtls_context import DtlsError, DtlsRole, PeerCheck, context_for
from voxwire.proto.srtp import SrtpProfile
from voxwire.wire.dtls_records import CT_ALERT, CT_APPDATA, CT_CCS, CT_HANDSHAKE, Record, parse_records

__all__ = [
    "AlertAfterRelease",
    "ApplicationData",
    "DtlsClosed",
    "DtlsConfig",
    "DtlsCounters",
    "DtlsError",
    "DtlsEvent",
    "DtlsRole",
    "DtlsStateError",
    "DtlsTransport",
    "HandshakeComplete",
]

_READ_SIZE = 65536
_MIN_TIMER = 0.001  # a published deadline always lies ahead of now
_ECHO_INTERVAL = 0.05  # minimum spacing of resends answering peer retransmissions (anti-amplification)
_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"  # RFC 5764 §4.2


@dataclass(frozen=True, slots=True)
class DtlsConfig:
    """Per-transport DTLS settings.

    ``mtu``: largest datagram we send (UDP payload bytes); 1200 keeps IPv6 + TURN overhead under
    1280. ``handshake_timeout``: seconds from ``start`` until an unfinished handshake is abandoned.
    ``srtp_profiles``: ``use_srtp`` offer in preference order (RFC 5764 §4.1.1).
    """

    mtu: int = 1200
    handshake_timeout: float = 10.0
    srtp_profiles: tuple[SrtpProfile, ...] = (
        SrtpProfile.AEAD_AES_128_GCM,
        SrtpProfile.AES_CM_128_HMAC_SHA1_80,
    )

    def __post_init__(self) -> None:
        if not 256 <= self.mtu <= 65507:
            raise ValueError(f"mtu must be 256..65507 bytes (OpenSSL's DTLS minimum is 256), got {self.mtu}")
        if not (math.isfinite(self.handshake_timeout) and self.handshake_timeout > 0):
            raise ValueError(f"handshake_timeout must be positive seconds, got {self.handshake_timeout}")
        if not self.srtp_profiles or len(set(self.srtp_profiles)) != len(self.srtp_profiles):
            raise ValueError(f"srtp_profiles must be non-empty and without repeats, got {self.srtp_profiles}")


@dataclass(frozen=True)
class HandshakeComplete:
    """Keys for libsrtp, each master key || master salt, oriented for our side (RFC 5764 §4.2)."""

    srtp_profile: SrtpProfile
    local_key: bytes
    remote_key: bytes

    def __repr__(self) -> str:  # never print keys
        return f"HandshakeComplete(srtp_profile={self.srtp_profile.name})"


@dataclass(frozen=True)
class ApplicationData:
    """One DTLS application_data record's plaintext (for us, one SCTP packet)."""

    data: bytes


@dataclass(frozen=True)
class DtlsClosed:
    """The transport is finished; nothing more will be sent or delivered."""

    reason: str


@dataclass(frozen=True, slots=True)
class AlertAfterRelease:
    """An alert record arrived after :meth:`DtlsTransport.release`: usually the peer's
    close_notify, but nothing can read or authenticate it any more, so it is only a hint."""


DtlsEvent = HandshakeComplete | ApplicationData | DtlsClosed | AlertAfterRelease


class DtlsStateError(DtlsError):
    """An operation that the transport's state does not allow; names the role and the state."""


@dataclass(slots=True)
class DtlsCounters:
    """What happened to datagrams, for stats and tests."""

    datagrams_in: int = 0
    datagrams_out: int = 0
    #: not a sequence of well-formed DTLS 1.0/1.2 records: dropped before OpenSSL
    malformed: int = 0
    #: well-formed application-data datagrams that yielded no plaintext (bad MAC, replay, old epoch)
    undecryptable: int = 0
    #: datagrams that arrived after the transport closed
    after_close: int = 0
    #: datagrams that arrived after :meth:`DtlsTransport.release` (nothing can read them)
    after_release: int = 0
    #: flights OpenSSL re-sent with fresh record numbers (its timer, or the peer's repeated Finished)
    retransmits: int = 0
    #: flights re-sent byte for byte from our cache (see the module docstring)
    verbatim_resends: int = 0


class _State(Enum):
    NEW, HANDSHAKING, CONNECTED, CLOSED = "new", "handshaking", "connected", "closed"


class DtlsTransport:
    """One DTLS 1.2 association in a fixed role; see the module docstring for the design."""

    # One instance per call (slots: ~50 bytes less each).
    __slots__ = (
        "config",
        "role",
        "counters",
        "_check",
        "_conn",
        "_state",
        "_transmits",
        "_events",
        "_handshake_deadline",
        "_rtx_deadline",
        "_last_flight",
        "_sent_seq_high",
        "_sent_ccs",
        "_peer_seq_high",
        "_answered_seq",
        "_last_resend",
        "_max_send",
    )

    def __init__(
        self,
        cert: Certificate,
        role: DtlsRole,
        remote_fingerprints: Sequence[tuple[str, str]],
        config: DtlsConfig | None = None,
    ) -> None:
        self.config = config = config or DtlsConfig()
        self.role = role
        self.counters = DtlsCounters()
        self._check = PeerCheck.of(remote_fingerprints)
        conn = SSL.Connection(context_for(cert, role, config.srtp_profiles), None)
        conn.set_ciphertext_mtu(config.mtu)
        conn.set_app_data(self._check)
        if role is DtlsRole.CLIENT:
            conn.set_connect_state()
        else:
            conn.set_accept_state()
        self._conn: SSL.Connection | None = conn
        self._state = _State.NEW
        self._transmits: list[bytes] = []
        self._events: list[DtlsEvent] = []
        self._handshake_deadline: float | None = None
        self._rtx_deadline: float | None = None
        self._last_flight: list[bytes] = []  # datagrams of the last flight we sent, for verbatim resends
        self._sent_seq_high = -1  # highest handshake message_seq we have sent
        self._sent_ccs = False
        self._peer_seq_high = -1  # highest handshake message_seq seen from the peer
        self._answered_seq = -1  # _peer_seq_high when we last sent a new flight
        self._last_resend = -math.inf
        self._max_send: int | None = None

    # -- driver shape ------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin the handshake: the client sends its ClientHello; the server starts its deadline."""
        if self._state is not _State.NEW:
            raise DtlsStateError(f"{self.role.value}: start() in state {self._state.value}")
        self._state = _State.HANDSHAKING
        self._handshake_deadline = now + self.config.handshake_timeout
        if self.role is DtlsRole.CLIENT:
            self._advance_handshake()
            self._flush(now, peer_retransmit=False)

    def handle_datagram(self, data: bytes, now: float) -> None:
        """Feed one UDP payload classified as DTLS (RFC 7983: first byte 20..63). Never raises for
        remote input."""
        if self._state is _State.NEW:
            raise DtlsStateError(f"{self.role.value}: handle_datagram() before start()")
        counters = self.counters
        counters.datagrams_in += 1
        if self._state is _State.CLOSED:
            counters.after_close += 1
            return
        if self._conn is None:
            counters.after_release += 1
            records = parse_records(data)
            if records is not None and any(r.content_type == CT_ALERT for r in records):
                self._events.append(AlertAfterRelease())
            return
        records = parse_records(data)
        if records is None:
            counters.malformed += 1
            return
        seqs = [s for r in records for s in r.hs_seqs]
        retransmit = bool(seqs) and self._answered_seq >= 0 and max(seqs) <= self._answered_seq
        if seqs:
            self._peer_seq_high = max(self._peer_seq_high, max(seqs))
        self._ssl.bio_write(data)
        if self._state is _State.HANDSHAKING:
            self._advance_handshake()
        if self._state is _State.CONNECTED:
            got = self._read_application_data()
            if not got and any(r.content_type == CT_APPDATA for r in records):
                counters.undecryptable += 1
        self._flush(now, peer_retransmit=retransmit)

    def handle_timeout(self, now: float) -> None:
        """Act on the deadline from :meth:`poll_timeout`: handshake timeout or retransmission."""
        if self._state is not _State.HANDSHAKING:
            return
        if self._handshake_deadline is not None and now >= self._handshake_deadline:
            self._close("handshake timeout")
            return
        if self._rtx_deadline is None or now < self._rtx_deadline:
            return
        try:
            fired = self._ssl.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(exc)
            self._flush(now, peer_retransmit=False)
            return
        if fired:
            self._flush(now, peer_retransmit=False)
        else:
            # OpenSSL's clock says it is not due (virtual time, or a stepped wall clock): resend
            # the cached flight verbatim; the peer keeps only the records it lacks.
            self._resend(now)
            self._arm(now)

    def poll_timeout(self) -> float | None:
        """The earliest time :meth:`handle_timeout` has work, or None."""
        if self._state is not _State.HANDSHAKING:
            return None
        if self._rtx_deadline is None:
            return self._handshake_deadline
        assert self._handshake_deadline is not None, "HANDSHAKING always has a deadline"
        return min(self._rtx_deadline, self._handshake_deadline)

    def poll_transmit(self) -> bytes | None:
        """The next datagram to send (at most ``config.mtu`` bytes), or None."""
        return self._transmits.pop(0) if self._transmits else None

    def poll_event(self) -> DtlsEvent | None:
        """The next event, or None."""
        return self._events.pop(0) if self._events else None

    # -- application -------------------------------------------------------------------------------

    @property
    def max_send_size(self) -> int:
        """Largest ``send`` payload whose record still fits ``config.mtu`` (known once connected)."""
        if self._max_send is None:
            raise DtlsStateError(f"{self.role.value}: max_send_size in state {self._state.value}")
        return self._max_send

    @property
    def is_connected(self) -> bool:
        return self._state is _State.CONNECTED

    def send(self, data: bytes) -> None:
        """Send one application_data record (e.g. one SCTP packet)."""
        if self._state is not _State.CONNECTED or self._conn is None:
            state = "released" if self._state is _State.CONNECTED else self._state.value
            raise DtlsStateError(f"{self.role.value}: send() in state {state}")
        assert self._max_send is not None, "CONNECTED always knows its data MTU"
        if not 0 < len(data) <= self._max_send:
            raise ValueError(
                f"send() takes 1..{self._max_send} bytes with mtu {self.config.mtu}, got {len(data)}"
            )
        try:
            self._ssl.send(data)
        except SSL.Error as exc:
            self._fail(exc)
        self._flush(None, peer_retransmit=False)

    def close(self, now: float) -> None:
        """Send close_notify (RFC 5246 §7.2.1) when connected and not released, then report
        ``DtlsClosed``."""
        if self._state is _State.CLOSED:
            return
        if self._state is _State.CONNECTED and self._conn is not None:
            self._shutdown()
            self._flush(now, peer_retransmit=False)
        self._close("closed locally")

    def release(self) -> bool:
        """Free the OpenSSL connection of a connected client, keeping the keys it already gave out
        (:class:`HandshakeComplete`); True if it is released. Only for an association that will
        carry no application data (no data channels): it then holds ~40 KB of OpenSSL state, half
        a call's memory, for nothing. Nothing is lost to the protocol: as the client we sent the
        last flight but one and have the server's Finished, so no flight of ours can need resending.
        What changes: records from the peer are counted (``after_release``) and dropped, an alert
        record only raises :class:`AlertAfterRelease` (it cannot be authenticated: the session
        treats it as a hint, see :attr:`~voxwire.proto.session.SessionConfig.alert_grace`), and
        :meth:`close` sends no close_notify. A server, or a client still handshaking, keeps its connection (False)."""
        if self._conn is not None and (self.role is not DtlsRole.CLIENT or self._state is not _State.CONNECTED):
            return False
        self._conn = None
        self._last_flight = []
        return True

    @property
    def released(self) -> bool:
        return self._conn is None

    # -- internals ---------------------------------------------------------------------------------

    @property
    def _ssl(self) -> SSL.Connection:
        assert self._conn is not None, "only a connected client releases its connection"
        return self._conn

    def _advance_handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as exc:
            self._fail(exc)
            return
        self._on_handshake_done()

    def _on_handshake_done(self) -> None:
        if not self._check.matched or self._check.mismatched:  # the callback decides; belt and braces
            self._shutdown()
            self._close("fingerprint mismatch")
            return
        name = self._ssl.get_selected_srtp_profile().decode("ascii", "replace")
        try:
            profile = SrtpProfile.from_openssl_name(name)
        except ValueError:
            self._shutdown()
            self._close(f"no SRTP profile negotiated (use_srtp, RFC 5764 §4.1.1): {name!r}")
            return
        k, s = profile.key_len, profile.salt_len
        m = self._ssl.export_keying_material(_EXPORTER_LABEL, 2 * (k + s))
        # RFC 5764 §4.2: client_write_SRTP_master_key | server_write_SRTP_master_key |
        #                client_write_SRTP_master_salt | server_write_SRTP_master_salt
        client = m[:k] + m[2 * k : 2 * k + s]
        server = m[k : 2 * k] + m[2 * k + s :]
        local, remote = (client, server) if self.role is DtlsRole.CLIENT else (server, client)
        self._state = _State.CONNECTED
        self._rtx_deadline = None
        self._max_send = self._ssl.get_cleartext_mtu()
        self._events.append(HandshakeComplete(profile, local, remote))

    def _read_application_data(self) -> bool:
        got = False
        while self._state is _State.CONNECTED:
            try:
                data = self._ssl.recv(_READ_SIZE)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:  # close_notify: answer it (RFC 5246 §7.2.1) and finish
                self._shutdown()
                self._close("closed by peer")
                break
            except SSL.Error as exc:
                self._fail(exc)
                break
            if data:
                got = True
                self._events.append(ApplicationData(data))
        return got

    def _shutdown(self) -> None:
        """Queue close_notify; a failure means the association is gone anyway, nothing to report."""
        try:
            self._ssl.shutdown()
        except SSL.Error:
            pass

    def _fail(self, exc: SSL.Error) -> None:
        """A fatal handshake or record error; OpenSSL has queued its alert, if any, for _flush."""
        if self._check.mismatched:
            self._close("fingerprint mismatch")
        else:
            self._close(
                f"{'handshake failed' if self._state is _State.HANDSHAKING else 'fatal error'}: "
                f"{_describe(exc)}"
            )

    def _close(self, reason: str) -> None:
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self._rtx_deadline = self._handshake_deadline = None
        self._events.append(DtlsClosed(reason))

    def _drain(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            try:
                chunks.append(self._ssl.bio_read(_READ_SIZE))
            except SSL.WantReadError:
                return b"".join(chunks)

    def _flush(self, now: float | None, *, peer_retransmit: bool) -> None:
        """Move OpenSSL's output to the transmit queue, datagram by datagram, and classify it."""
        out = self._drain()
        if out:
            records = parse_records(out)
            assert records is not None, "OpenSSL wrote something that is not DTLS records"
            datagrams = self._pack(out, records)
            self._transmits.extend(datagrams)
            self.counters.datagrams_out += len(datagrams)
            is_flight = any(r.content_type in (CT_HANDSHAKE, CT_CCS) for r in records)
            if is_flight:
                seqs = [s for r in records for s in r.hs_seqs]
                new = (seqs and max(seqs) > self._sent_seq_high) or (
                    not self._sent_ccs and any(r.content_type == CT_CCS for r in records)
                )
                if new:
                    self._sent_seq_high = max([self._sent_seq_high, *seqs])
                    self._sent_ccs = self._sent_ccs or any(r.content_type == CT_CCS for r in records)
                    self._answered_seq = self._peer_seq_high
                else:
                    self.counters.retransmits += 1
                self._last_flight = datagrams
        elif peer_retransmit and now is not None:
            self._resend(now)
        if now is not None and self._state is _State.HANDSHAKING:
            self._arm(now)

    def _resend(self, now: float) -> None:
        if not self._last_flight or now - self._last_resend < _ECHO_INTERVAL:
            return
        self._last_resend = now
        self._transmits.extend(self._last_flight)
        self.counters.datagrams_out += len(self._last_flight)
        self.counters.verbatim_resends += 1

    def _arm(self, now: float) -> None:
        """Mirror OpenSSL's retransmission timer on the caller's clock."""
        remaining = self._ssl.DTLSv1_get_timeout()
        self._rtx_deadline = None if remaining is None else now + max(remaining, _MIN_TIMER)

    def _pack(self, out: bytes, records: list[Record]) -> list[bytes]:
        """Whole records into datagrams of at most ``mtu`` bytes, in order."""
        mtu = self.config.mtu
        datagrams: list[bytes] = []
        start = end = 0
        for r in records:
            assert r.end - r.start <= mtu, f"OpenSSL wrote a {r.end - r.start} byte record over mtu {mtu}"
            if r.end - start > mtu:
                datagrams.append(out[start:end])
                start = r.start
            end = r.end
        datagrams.append(out[start:end])
        return datagrams

    def __repr__(self) -> str:
        return f"DtlsTransport({self.role.value}, {self._state.value})"


def _describe(exc: SSL.Error) -> str:
    """OpenSSL's reason strings from an ``SSL.Error`` (args: a list of (lib, func, reason))."""
    errors = exc.args[0] if exc.args and isinstance(exc.args[0], list) else list(exc.args)
    reasons = [str(e[-1]) if isinstance(e, tuple) and e else str(e) for e in errors]
    return "; ".join(r for r in reasons if r) or type(exc).__name__
