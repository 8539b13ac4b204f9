"""ICE-lite controlled agent on virtual time: checks, nomination, consent, refusals, fuzzing."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import struct
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.proto.ice import ConsentExpired, IceConfig, IceEvent, IceLiteAgent, PairSelected
from voxwire.wire.errors import ParseError
from voxwire.wire.stun import BINDING, StunClass, StunMessage, parse, serialize
from voxwire.wire.types import Address

LOCAL_UFRAG = "srvA"
LOCAL_PWD = "s3rverPassw0rdIsLongEnough"
REMOTE_UFRAG = "cliB"
USERNAME = f"{LOCAL_UFRAG}:{REMOTE_UFRAG}".encode()
A: Address = ("192.0.2.10", 50000)
B: Address = ("198.51.100.7", 41000)
V6: Address = ("2001:db8::7", 5000)

_tids = (i.to_bytes(12, "big") for i in itertools.count(1))


def check(
    *,
    username: bytes = USERNAME,
    pwd: str | None = LOCAL_PWD,
    use_candidate: bool = False,
    controlling: bool = True,
    controlled: bool = False,
    fingerprint: bool = True,
    cls: StunClass = StunClass.REQUEST,
    method: int = BINDING,
    extra: tuple[tuple[int, bytes], ...] = (),
    with_username: bool = True,
) -> tuple[bytes, StunMessage]:
    """A connectivity check as a full controlling agent sends it (RFC 8445 §7.2.2)."""
    msg = StunMessage(
        method,
        cls,
        next(_tids),
        username=username if with_username else None,
        priority=0x6E0001FF,
        use_candidate=use_candidate,
        ice_controlling=0x1234 if controlling else None,
        ice_controlled=0x5678 if controlled else None,
        extra_attributes=extra,
    )
    data = serialize(msg, integrity_key=pwd.encode() if pwd else None, fingerprint=fingerprint)
    return data, parse(data)


def agent(remote_ufrag: str | None = REMOTE_UFRAG, **config: float) -> IceLiteAgent:
    return IceLiteAgent(LOCAL_UFRAG, LOCAL_PWD, remote_ufrag, IceConfig(**config))


def feed(ice: IceLiteAgent, addr: Address, now: float, **kwargs: Any) -> StunMessage:
    data, msg = check(**kwargs)
    ice.handle_stun(data, msg, addr, now)
    return msg


def drain(ice: IceLiteAgent) -> tuple[list[tuple[bytes, Address]], list[IceEvent]]:
    transmits: list[tuple[bytes, Address]] = []
    events: list[IceEvent] = []
    while (t := ice.poll_transmit()) is not None:
        transmits.append(t)
    while (e := ice.poll_event()) is not None:
        events.append(e)
    return transmits, events


def independently_verified(data: bytes, pwd: str) -> StunMessage:
    """Check MESSAGE-INTEGRITY and FINGERPRINT with stdlib hmac/zlib, not with the codec under test."""
    msg = parse(data)
    assert msg.has_fingerprint
    fp_at = len(data) - 8
    assert struct.unpack("!I", data[-4:])[0] == zlib.crc32(data[:fp_at]) ^ 0x5354554E
    mi_at = fp_at - 24
    assert data[mi_at : mi_at + 4] == b"\x00\x08\x00\x14"
    header = data[:2] + struct.pack("!H", mi_at - 20 + 24) + data[4:mi_at]
    assert hmac.new(pwd.encode(), header, hashlib.sha1).digest() == data[mi_at + 4 : mi_at + 24]
    return msg


# --------------------------------------------------------------------------------------------------
# Answers and nomination


def test_first_valid_check_is_answered_and_selects() -> None:
    ice = agent()
    request = feed(ice, A, 1.0)
    transmits, events = drain(ice)
    assert events == [PairSelected(A)]
    assert ice.selected == A and ice.is_valid_remote(A) and not ice.is_valid_remote(B)
    [(data, dest)] = transmits
    assert dest == A
    response = independently_verified(data, LOCAL_PWD)
    assert (response.method, response.cls) == (BINDING, StunClass.SUCCESS)
    assert response.transaction_id == request.transaction_id
    assert response.xor_mapped_address == A
    assert ice.counters == {"valid_check": 1}


def test_ipv6_source_is_reflected() -> None:
    ice = agent()
    feed(ice, V6, 0.0)
    [(data, dest)], _ = drain(ice)
    assert dest == V6 and independently_verified(data, LOCAL_PWD).xor_mapped_address == V6


def test_aiortc_sequence_plain_then_use_candidate() -> None:
    ice = agent()
    feed(ice, A, 0.0)
    feed(ice, A, 0.05, use_candidate=True)
    transmits, events = drain(ice)
    assert len(transmits) == 2 and events == [PairSelected(A)]


def test_use_candidate_from_another_address_switches() -> None:
    ice = agent()
    feed(ice, A, 0.0, use_candidate=True)
    feed(ice, B, 1.0, use_candidate=True)
    transmits, events = drain(ice)
    assert [dest for _, dest in transmits] == [A, B]
    assert events == [PairSelected(A), PairSelected(B)]
    assert ice.selected == B


def test_plain_check_from_another_address_does_not_switch() -> None:
    ice = agent()
    feed(ice, A, 0.0)
    feed(ice, B, 1.0)
    transmits, events = drain(ice)
    assert [dest for _, dest in transmits] == [A, B]  # still answered: B is a validated pair
    assert events == [PairSelected(A)]
    assert ice.selected == A and ice.is_valid_remote(B)


# --------------------------------------------------------------------------------------------------
# Consent freshness (RFC 7675)


def test_no_deadline_before_the_first_check() -> None:
    ice = agent()
    assert ice.poll_timeout() is None
    ice.handle_timeout(1e9)
    assert drain(ice) == ([], []) and not ice.closed


def test_consent_expires_exactly_30s_after_the_last_valid_check() -> None:
    ice = agent()
    feed(ice, A, 100.0)
    drain(ice)
    assert ice.poll_timeout() == 130.0
    ice.handle_timeout(129.999)
    assert drain(ice) == ([], []) and not ice.closed
    ice.handle_timeout(130.0)
    assert drain(ice) == ([], [ConsentExpired()])
    assert ice.closed and ice.poll_timeout() is None and not ice.is_valid_remote(A)
    ice.handle_timeout(200.0)  # emitted once
    feed(ice, A, 130.5)  # and everything is dropped afterwards
    assert drain(ice) == ([], [])
    assert ice.counters["closed"] == 1


def test_consent_is_refreshed_by_later_checks() -> None:
    ice = agent()
    feed(ice, A, 0.0)
    feed(ice, A, 20.0)
    feed(ice, A, 45.0)
    drain(ice)
    assert ice.poll_timeout() == 75.0
    ice.handle_timeout(74.0)
    assert not ice.closed


def test_checks_on_other_pairs_do_not_refresh_the_selected_one() -> None:
    ice = agent()
    feed(ice, A, 0.0)
    feed(ice, B, 20.0)
    assert ice.poll_timeout() == 30.0


def test_switch_moves_the_consent_clock() -> None:
    ice = agent()
    feed(ice, A, 0.0)
    feed(ice, B, 25.0, use_candidate=True)
    assert ice.poll_timeout() == 55.0


def test_late_timer_cannot_be_beaten_by_a_check() -> None:
    ice = agent()
    feed(ice, A, 0.0)
    drain(ice)
    feed(ice, A, 31.0)  # consent was gone before this check arrived
    assert drain(ice) == ([], [ConsentExpired()])
    assert ice.closed


def test_consent_timeout_is_configurable_and_validated() -> None:
    ice = agent(consent_timeout=5.0)
    feed(ice, A, 1.0)
    assert ice.poll_timeout() == 6.0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            IceConfig(consent_timeout=bad)


# --------------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"pwd": "wrongPasswordButLongEnough1"}, "bad_integrity"),
        ({"username": b"srvA:other"}, "bad_username"),
        ({"username": b"xxxx:cliB"}, "bad_username"),
        ({"pwd": None}, "missing_integrity"),
        ({"with_username": False}, "missing_username"),
        ({"fingerprint": False}, "missing_fingerprint"),
        ({"cls": StunClass.INDICATION}, "not_request"),
        ({"cls": StunClass.SUCCESS}, "not_request"),
        ({"method": 0x003}, "bad_method"),
    ],
)
def test_invalid_checks_are_dropped_and_counted(kwargs: dict[str, object], reason: str) -> None:
    ice = agent()
    feed(ice, A, 0.0, **kwargs)
    assert drain(ice) == ([], [])
    assert ice.counters == {reason: 1}
    assert ice.selected is None and not ice.is_valid_remote(A)


def test_without_remote_ufrag_only_the_local_half_is_checked() -> None:
    ice = agent(remote_ufrag=None)
    feed(ice, A, 0.0, username=b"srvA:anything")
    feed(ice, A, 0.0, username=b"srvA:")
    feed(ice, A, 0.0, username=b"srvB:cliB")
    assert ice.counters == {"valid_check": 1, "bad_username": 2}
    ice.set_remote_ufrag("cliB")
    feed(ice, A, 1.0, username=b"srvA:anything")
    feed(ice, A, 1.0)
    assert ice.counters == {"valid_check": 2, "bad_username": 3}


def test_role_conflict_gets_a_signed_487_and_changes_nothing() -> None:
    ice = agent()
    request = feed(ice, A, 0.0, controlling=False, controlled=True, use_candidate=True)
    [(data, dest)], events = drain(ice)
    assert events == [] and ice.selected is None and ice.poll_timeout() is None
    response = independently_verified(data, LOCAL_PWD)
    assert dest == A and response.cls is StunClass.ERROR
    assert response.transaction_id == request.transaction_id
    assert response.error_code == (487, "Role Conflict")
    assert ice.counters == {"role_conflict": 1}
    # The client switches to controlling (RFC 8445 §7.2.5.1) and checks again: accepted.
    feed(ice, A, 0.1)
    assert drain(ice)[1] == [PairSelected(A)]


def test_unknown_required_attribute_gets_a_signed_420() -> None:
    ice = agent()
    feed(ice, A, 0.0, extra=((0x7777, b"?"),))
    [(data, _)], events = drain(ice)
    response = independently_verified(data, LOCAL_PWD)
    assert response.error_code == (420, "Unknown Attribute")
    assert response.unknown_attributes == (0x7777,)
    assert events == [] and ice.counters == {"unknown_attribute": 1}


def test_unknown_optional_attribute_is_fine() -> None:
    ice = agent()
    feed(ice, A, 0.0, extra=((0xC057, b"\x00\x01\x00\x0a"),))  # Chromium's GOOG-NETWORK-INFO
    assert drain(ice)[1] == [PairSelected(A)]


@pytest.mark.parametrize(
    ("ufrag", "pwd", "remote"),
    [
        ("abc", LOCAL_PWD, None),  # ufrag shorter than 4
        ("ab:c", LOCAL_PWD, None),  # ':' is not an ice-char
        (LOCAL_UFRAG, "short", None),  # password shorter than 22
        (LOCAL_UFRAG, LOCAL_PWD, "a b c"),
    ],
)
def test_credentials_are_validated(ufrag: str, pwd: str, remote: str | None) -> None:
    with pytest.raises(ValueError):
        IceLiteAgent(ufrag, pwd, remote)


# --------------------------------------------------------------------------------------------------
# Fuzzing: nothing that parses as STUN makes handle_stun raise

_STUN_FIELDS = st.fixed_dictionaries(
    {
        "username": st.sampled_from([USERNAME, b"srvA:x", b"", b"srvA:cliB\x00"]) | st.binary(max_size=16),
        "pwd": st.sampled_from([LOCAL_PWD, "wrongPasswordButLongEnough1", None]),
        "use_candidate": st.booleans(),
        "controlling": st.booleans(),
        "controlled": st.booleans(),
        "fingerprint": st.booleans(),
        "cls": st.sampled_from(StunClass),
        "method": st.sampled_from([BINDING, 0x003]),
        "extra": st.lists(
            st.tuples(st.integers(0x8030, 0xFFFF) | st.integers(0x0030, 0x7FFF), st.binary(max_size=8)),
            max_size=2,
        ).map(tuple),
        "with_username": st.booleans(),
    }
)
_ADDRS = st.sampled_from([A, B, V6])


@given(
    steps=st.lists(st.tuples(_STUN_FIELDS, _ADDRS, st.floats(0, 5)), max_size=8),
    remote=st.sampled_from([REMOTE_UFRAG, None]),
)
@settings(max_examples=200, deadline=None)
def test_generated_checks_never_raise(
    steps: list[tuple[dict[str, object], Address, float]], remote: str | None
) -> None:
    ice = agent(remote_ufrag=remote)
    now = 0.0
    for fields, addr, dt in steps:
        now += dt * 10
        feed(ice, addr, now, **fields)
        ice.handle_timeout(now)
        transmits, events = drain(ice)
        for data, dest in transmits:
            assert dest == addr
            independently_verified(data, LOCAL_PWD)
        assert ice.selected is None or ice.closed or ice.is_valid_remote(ice.selected)


@given(data=st.binary(min_size=20, max_size=120))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_that_parse_never_raise(data: bytes) -> None:
    # Force a STUN-looking header so a useful share of the inputs parse.
    body = data[20 : 20 + (len(data) - 20) // 4 * 4]
    framed = data[:2] + struct.pack("!HI", len(body), 0x2112A442) + data[8:20] + body
    framed = bytes([framed[0] & 0x3F]) + framed[1:]
    try:
        msg = parse(framed)
    except ParseError:
        return
    ice = agent()
    ice.handle_stun(framed, msg, A, 0.0)
    drain(ice)
