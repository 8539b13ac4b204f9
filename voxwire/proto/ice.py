"""ICE-lite, controlled role (RFC 8445 §2.5, §7.3), with consent freshness (RFC 7675). Sans-IO.

Theory of operation
-------------------
A lite agent gathers nothing and sends no checks: it answers the connectivity checks of the full
agent (the browser), which is always controlling against it (RFC 8445 §6.1.1). One agent serves one
session; the caller has already parsed each STUN datagram (to demultiplex by USERNAME) and hands the
bytes, the parsed message, the source address and ``now`` to :meth:`IceLiteAgent.handle_stun`.

A check is valid when it is a Binding request with FINGERPRINT, whose USERNAME is
``local_ufrag:remote_ufrag`` and whose MESSAGE-INTEGRITY verifies under the local password
(RFC 8445 §7.3, short-term credentials per RFC 8489 §9.1). Valid checks get a Binding success
response with XOR-MAPPED-ADDRESS (the check's source, RFC 8445 §7.3.1.2), MESSAGE-INTEGRITY and
FINGERPRINT (RFC 8489 §6.3.1.1, §9.1.2), queued for :meth:`poll_transmit`.

Invalid checks are dropped silently and counted in ``counters`` by reason. RFC 8489 §9.1.3 lets a
server answer 400/401, but over UDP that answer is useless: it cannot carry a MESSAGE-INTEGRITY the
client accepts, and a client MUST discard such responses (RFC 8489 §9.1.4). A silent drop costs
nothing, reflects nothing towards spoofed sources, and the client simply retransmits.

Authenticated requests that cannot be accepted get signed error responses: 420 when they carry
comprehension-required attributes we do not understand (RFC 8489 §6.3.1), and 487 Role Conflict when
the peer claims the controlled role too (ICE-CONTROLLED). RFC 8445 §7.3.1.1 tells a controlled agent
to answer 487 when its tie-breaker is >= the peer's, and to switch to controlling otherwise; a lite
agent can never be controlling (§6.1.1), so it behaves as if its tie-breaker were the maximum and
always answers 487. The full agent then switches role (§7.2.5.1) and checks again.

Nomination: lite agents select a pair when it is nominated (§8.2). We go further and select the
source of the FIRST valid check at once, so DTLS can start a round trip earlier; a later valid check
with USE-CANDIDATE from another address moves the selection there (the client moved to another
validated pair). A plain check from another address only refreshes that address.

Consent (RFC 7675 §5.1): 30 s after the last valid check on the selected address, consent is lost,
:class:`ConsentExpired` is emitted once, and the agent closes and drops everything. Before any valid
check the agent has no deadline: the session layer owns the connect timeout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from voxwire.wire.icechars import is_ice_string
from voxwire.wire.stun import (
    BINDING,
    IntegrityKey,
    StunClass,
    StunMessage,
    binding_success,
    serialize,
    verify_integrity,
)
from voxwire.wire.types import Address

__all__ = ["ConsentExpired", "IceConfig", "IceEvent", "IceLiteAgent", "PairSelected"]

#: RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/"; ufrag 4..256 chars, pwd 22..256 chars.


def _check_ice_string(value: str, name: str, min_len: int) -> None:
    if not is_ice_string(value, min_len):
        raise ValueError(f"ICE {name} must be {min_len}..256 ice-chars [A-Za-z0-9+/] (RFC 8839 §5.4)")


@dataclass(frozen=True, slots=True)
class IceConfig:
    """ICE-lite settings."""

    #: RFC 7675 §5.1: seconds without a valid check on the selected pair before consent is lost.
    consent_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.consent_timeout) and self.consent_timeout > 0):
            raise ValueError(
                f"IceConfig.consent_timeout must be a positive number, got {self.consent_timeout!r}"
            )


@dataclass(frozen=True, slots=True)
class PairSelected:
    """Media now flows to and from ``addr`` (first valid check, or a nomination elsewhere)."""

    addr: Address


@dataclass(frozen=True, slots=True)
class ConsentExpired:
    """No valid check on the selected pair for ``consent_timeout`` seconds; the agent is closed."""


IceEvent = PairSelected | ConsentExpired


class IceLiteAgent:
    """The controlled, lite side of one ICE session. Drive it with ``handle_stun``/``handle_timeout``."""

    # One instance per call (slots: ~50 bytes less each).
    __slots__ = (
        "_config",
        "_key",
        "_local_prefix",
        "_expected_username",
        "counters",
        "_transmits",
        "_events",
        "_last_check",
        "_selected",
        "_closed",
    )

    def __init__(
        self,
        local_ufrag: str,
        local_pwd: str,
        remote_ufrag: str | None,
        config: IceConfig = IceConfig(),
    ) -> None:
        _check_ice_string(local_ufrag, "ufrag", 4)
        _check_ice_string(local_pwd, "password", 22)
        self._config = config
        self._key = IntegrityKey(local_pwd.encode("ascii"))
        # RFC 8445 §7.2.2: the client sends USERNAME "<our ufrag>:<its ufrag>".
        self._local_prefix = f"{local_ufrag}:".encode("ascii")
        self._expected_username: bytes | None = None
        if remote_ufrag is not None:
            self.set_remote_ufrag(remote_ufrag)
        #: Dropped or refused datagrams by reason, plus ``valid_check``.
        self.counters: dict[str, int] = {}
        self._transmits: list[tuple[bytes, Address]] = []
        self._events: list[IceEvent] = []
        self._last_check: dict[Address, float] = {}
        self._selected: Address | None = None
        self._closed = False

    # ----------------------------------------------------------------------------------------------
    # Queries

    @property
    def selected(self) -> Address | None:
        """The remote address media goes to, once a valid check has arrived."""
        return self._selected

    @property
    def closed(self) -> bool:
        """True after consent expired; the agent then drops everything."""
        return self._closed

    def is_valid_remote(self, addr: Address) -> bool:
        """True when ``addr`` has sent a valid check (it is the remote end of a validated pair)."""
        return addr in self._last_check

    def set_remote_ufrag(self, remote_ufrag: str) -> None:
        """Learn the client's ufrag (from the SDP); from now on the full USERNAME is checked."""
        _check_ice_string(remote_ufrag, "ufrag", 4)
        self._expected_username = self._local_prefix + remote_ufrag.encode("ascii")

    # ----------------------------------------------------------------------------------------------
    # Input

    def handle_stun(self, data: bytes, msg: StunMessage, addr: Address, now: float) -> None:
        """Process one STUN datagram ``data`` (already parsed into ``msg``) from ``addr``. Never raises
        for remote input: anything unacceptable is dropped and counted."""
        if self._closed:
            self._count("closed")
            return
        selected = self._selected
        if selected is not None and now >= self._last_check[selected] + self._config.consent_timeout:
            self._expire()  # the timer fired late: consent was already gone when this arrived
            self._count("closed")
            return
        if msg.method != BINDING:
            self._count("bad_method")
            return
        if msg.cls is not StunClass.REQUEST:
            self._count("not_request")  # indications and responses: we never send requests
            return
        username = msg.username
        if username is None:
            self._count("missing_username")
            return
        if msg.integrity_offset is None:
            self._count("missing_integrity")
            return
        if not msg.has_fingerprint:
            self._count("missing_fingerprint")  # RFC 8445 §7.2.2: checks MUST carry FINGERPRINT
            return
        expected = self._expected_username
        if expected is not None:
            if username != expected:
                self._count("bad_username")
                return
        elif len(username) <= len(self._local_prefix) or not username.startswith(self._local_prefix):
            self._count("bad_username")
            return
        if not verify_integrity(data, msg, self._key):
            self._count("bad_integrity")
            return
        # Authenticated from here on: refusals are signed error responses.
        if msg.unknown_required:
            self._count("unknown_attribute")
            self._respond_error(msg, addr, 420, "Unknown Attribute", msg.unknown_required)
            return
        if msg.ice_controlled is not None:
            self._count("role_conflict")
            self._respond_error(msg, addr, 487, "Role Conflict", ())
            return
        self._count("valid_check")
        self._last_check[addr] = now
        self._transmits.append((binding_success(msg.transaction_id, addr, self._key), addr))
        if selected is None or (msg.use_candidate and addr != selected):
            self._selected = addr
            self._events.append(PairSelected(addr))

    def handle_timeout(self, now: float) -> None:
        """Advance time: emit :class:`ConsentExpired` once consent on the selected pair is gone."""
        deadline = self.poll_timeout()
        if deadline is not None and now >= deadline:
            self._expire()

    # ----------------------------------------------------------------------------------------------
    # Output

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        """The next datagram to send, with its destination."""
        return self._transmits.pop(0) if self._transmits else None

    def poll_event(self) -> IceEvent | None:
        """The next event for the session layer."""
        return self._events.pop(0) if self._events else None

    def poll_timeout(self) -> float | None:
        """When consent on the selected pair expires; ``None`` before selection or once closed."""
        if self._closed or self._selected is None:
            return None
        return self._last_check[self._selected] + self._config.consent_timeout

    # ----------------------------------------------------------------------------------------------
    # Internals

    def _count(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1

    def _respond_error(
        self, request: StunMessage, addr: Address, code: int, reason: str, unknown: tuple[int, ...]
    ) -> None:
        response = StunMessage(
            method=BINDING,
            cls=StunClass.ERROR,
            transaction_id=request.transaction_id,
            error_code=(code, reason),
            unknown_attributes=unknown,
        )
        self._transmits.append((serialize(response, integrity_key=self._key), addr))

    def _expire(self) -> None:
        self._closed = True
        self._last_check.clear()
        self._transmits.clear()
        self._events.append(ConsentExpired())
