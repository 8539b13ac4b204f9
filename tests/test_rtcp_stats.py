"""RTP statistics and RTCP timing on virtual time (RFC 3550 §6.4, Appendix A)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.proto.clock import NtpTime, Wallclock, compact_to_seconds, seconds_to_compact
from voxwire.proto.rtcp import ReceiverStats, RtcpConfig, RtcpScheduler, SenderStats
from voxwire.wire.rtcp import ReceiverReport, SenderReport, parse_rtcp, serialize_rtcp
from voxwire.wire.types import Ssrc

RATE = 48000
FRAME = 960  # 20 ms of Opus at 48 kHz
SSRC = Ssrc(0x1234)


def feed(stats: ReceiverStats, seqs: list[int], ts0: int = 0, t0: float = 0.0) -> None:
    """Packets sent every 20 ms and arriving with constant delay; `seqs` may skip or repeat."""
    first = seqs[0]
    for seq in seqs:
        k = seq - first
        stats.on_rtp(seq & 0xFFFF, (ts0 + k * FRAME) & 0xFFFFFFFF, t0 + 0.1 + k * 0.02)


# -- clock --------------------------------------------------------------------------------------------


def test_ntp_time_from_unix_and_compact() -> None:
    t = NtpTime.from_unix(0.5)  # 1970-01-01 00:00:00.5 is 2208988800.5 s after the NTP epoch
    assert t.value == (2_208_988_800 << 32) | (1 << 31)
    assert t.compact == ((2_208_988_800 & 0xFFFF) << 16) | 0x8000
    assert t.to_unix() == 0.5
    wall = Wallclock(offset=1_700_000_000.0)
    assert wall.ntp(2.25) == NtpTime.from_unix(1_700_000_002.25)
    assert wall.monotonic(wall.ntp(2.25)) == 2.25
    assert seconds_to_compact(0.5) == 0x8000 and compact_to_seconds(0x8000) == 0.5
    assert seconds_to_compact(-1.0) == 0


# -- receiver: sequence numbers and loss (§A.1, §A.3) -----------------------------------------------


def test_no_loss() -> None:
    stats = ReceiverStats(SSRC, RATE)
    feed(stats, list(range(100, 150)))
    block = stats.report_block(now=2.0)
    assert (block.fraction_lost, block.cumulative_lost, block.highest_sequence) == (0, 0, 149)
    assert block.lsr == 0 and block.dlsr == 0


def test_loss_fraction_with_gaps_per_interval() -> None:
    stats = ReceiverStats(SSRC, RATE)
    feed(stats, [0, 1, 2, 5, 6, 7, 8, 9])  # 3 and 4 lost: 2 of 10 expected
    block = stats.report_block(now=1.0)
    assert block.cumulative_lost == 2
    assert block.fraction_lost == (2 << 8) // 10  # 51, i.e. 20 %
    feed(stats, list(range(10, 20)))  # a clean interval: the fraction resets, the total stays
    block = stats.report_block(now=2.0)
    assert (block.fraction_lost, block.cumulative_lost, block.highest_sequence) == (0, 2, 19)


def test_duplicates_make_loss_negative_and_fraction_clamps_at_zero() -> None:
    stats = ReceiverStats(SSRC, RATE)
    feed(stats, [0, 1, 2, 2, 3, 3, 3, 4])  # 5 expected, 8 received
    block = stats.report_block(now=1.0)
    assert block.cumulative_lost == -3
    assert block.fraction_lost == 0
    (rr,) = parse_rtcp(serialize_rtcp([ReceiverReport(Ssrc(9), (block,))]))
    assert isinstance(rr, ReceiverReport) and rr.reports[0] == block


def test_late_packet_in_next_interval_does_not_count_as_loss_twice() -> None:
    stats = ReceiverStats(SSRC, RATE)
    feed(stats, [0, 1, 3, 4])
    assert stats.report_block(now=1.0).fraction_lost == (1 << 8) // 5
    stats.on_rtp(2, 2 * FRAME, 0.2)  # the missing packet, late
    block = stats.report_block(now=2.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, 0)


def test_sequence_wrap_at_65535() -> None:
    stats = ReceiverStats(SSRC, RATE)
    feed(stats, list(range(65530, 65536 + 6)))  # 65530..65535, 0..5
    block = stats.report_block(now=1.0)
    assert block.highest_sequence == (1 << 16) + 5  # one cycle in the high 16 bits
    assert (block.cumulative_lost, block.fraction_lost) == (0, 0)
    assert stats.received == 12


def test_large_jump_needs_two_packets_to_resync() -> None:
    stats = ReceiverStats(SSRC, RATE)
    feed(stats, list(range(10)))
    assert stats.on_rtp(20000, 0, 1.0) is False  # a stray packet is not believed
    assert stats.on_rtp(50, 50 * FRAME, 1.0) is True
    assert stats.on_rtp(30000, 0, 1.1) is False
    assert stats.on_rtp(30001, 960, 1.12) is True  # the next in sequence: the sender restarted
    assert (stats.extended_highest_sequence, stats.received, stats.cumulative_lost) == (30001, 1, 0)


def test_probation() -> None:
    stats = ReceiverStats(SSRC, RATE, probation=2)
    assert stats.on_rtp(7, 0, 0.0) is False
    assert stats.on_rtp(8, FRAME, 0.02) is True
    assert stats.on_rtp(9, 2 * FRAME, 0.04) is True
    assert (stats.received, stats.expected) == (2, 2)


# -- receiver: jitter (§A.8) ------------------------------------------------------------------------


def test_constant_transit_gives_zero_jitter() -> None:
    stats = ReceiverStats(SSRC, RATE)
    # Timestamps wrap 2**32 halfway through; transit stays constant.
    feed(stats, list(range(200)), ts0=(1 << 32) - 100 * FRAME, t0=12345.678)
    assert stats.jitter == 0.0
    assert stats.report_block(now=20000.0).jitter == 0


def test_alternating_transit_jitter() -> None:
    # Transit alternates between 0 and 10 ms (480 ticks), so |D| = 480 for every packet after the
    # first, and J_n = J_{n-1} + (480 - J_{n-1}) / 16, i.e. J_n = 480 * (1 - (15/16)**n).
    stats = ReceiverStats(SSRC, RATE)
    n_packets = 50
    for k in range(n_packets):
        stats.on_rtp(k, k * FRAME, k * 0.02 + (0.01 if k % 2 else 0.0))
    expected = 480 * (1 - (15 / 16) ** (n_packets - 1))
    assert stats.jitter == pytest.approx(expected, rel=1e-12)
    assert stats.report_block(now=2.0).jitter == int(expected)
    assert stats.jitter_seconds == pytest.approx(expected / RATE)


# -- sender and the round trip (§6.4.1) --------------------------------------------------------------


def test_sender_report_counts() -> None:
    sender = SenderStats(SSRC, RATE)
    for _ in range(50):
        sender.on_rtp_sent(80)
    wall = Wallclock(1_700_000_000.0)
    sr = sender.sender_report(1.0, wall.ntp(1.0), rtp_ts_now=123 + (1 << 32))
    assert (sr.packet_count, sr.octet_count, sr.rtp_timestamp) == (50, 4000, 123)
    assert NtpTime(sr.ntp_timestamp).to_unix() == 1_700_000_001.0


@pytest.mark.parametrize(("out_delay", "back_delay", "hold"), [(0.03125, 0.046875, 0.5), (0.25, 0.0, 3.0)])
def test_rtt_from_virtual_sr_rr_exchange(out_delay: float, back_delay: float, hold: float) -> None:
    # Two peers with unrelated monotonic origins and wallclocks; only the sender's wallclock matters.
    sender_wall = Wallclock(1_700_000_000.0)
    receiver_origin = 5000.0  # the receiver's `now` runs ahead of the sender's by this much
    sender = SenderStats(SSRC, RATE)
    receiver = ReceiverStats(SSRC, RATE)
    receiver.on_rtp(1, 0, receiver_origin + 9.9)

    t_sr = 10.0
    sr_wire = serialize_rtcp([sender.sender_report(t_sr, sender_wall.ntp(t_sr), 480000)])
    (sr,) = parse_rtcp(sr_wire)
    assert isinstance(sr, SenderReport)
    receiver.on_sender_report(sr, now=receiver_origin + t_sr + out_delay)

    rr_wire = serialize_rtcp(
        [ReceiverReport(Ssrc(99), (receiver.report_block(now=receiver_origin + t_sr + out_delay + hold),))]
    )
    (rr,) = parse_rtcp(rr_wire)
    assert isinstance(rr, ReceiverReport)
    assert rr.reports[0].dlsr == seconds_to_compact(hold)

    t_rr = t_sr + out_delay + hold + back_delay
    rtt = sender.on_report_block(rr.reports[0], t_rr, sender_wall.ntp(t_rr))
    assert rtt == out_delay + back_delay
    assert sender.rtt == out_delay + back_delay


def test_rtt_with_non_dyadic_delay_is_within_compact_resolution() -> None:
    wall = Wallclock(1_712_345_678.123)
    sender = SenderStats(SSRC, RATE)
    receiver = ReceiverStats(SSRC, RATE)
    receiver.on_rtp(1, 0, 0.0)
    sr = sender.sender_report(3.3, wall.ntp(3.3), 0)
    receiver.on_sender_report(sr, now=3.337)
    block = receiver.report_block(now=4.1)
    rtt = sender.on_report_block(block, 4.117, wall.ntp(4.117))
    assert rtt == pytest.approx(0.054, abs=2 / 65536)


def test_rtt_ignores_blocks_without_a_matching_sr() -> None:
    wall = Wallclock(1_700_000_000.0)
    sender = SenderStats(SSRC, RATE)
    receiver = ReceiverStats(SSRC, RATE)
    receiver.on_rtp(1, 0, 0.0)
    assert sender.on_report_block(receiver.report_block(1.0), 1.0, wall.ntp(1.0)) is None  # LSR 0
    sender.sender_report(1.0, wall.ntp(1.0), 0)
    stale = SenderReport(SSRC, NtpTime.from_unix(5.0).value, 0, 0, 0)
    receiver.on_sender_report(stale, now=1.1)
    assert sender.on_report_block(receiver.report_block(1.2), 1.2, wall.ntp(1.2)) is None
    assert sender.rtt is None and sender.last_report is not None


def test_receiver_ignores_other_ssrcs_sr() -> None:
    receiver = ReceiverStats(SSRC, RATE)
    receiver.on_sender_report(SenderReport(Ssrc(1), 1 << 40, 0, 0, 0), now=0.0)
    assert receiver.report_block(1.0).lsr == 0


# -- scheduler (§6.2, §6.3) ---------------------------------------------------------------------------


def test_scheduler_first_report_at_half_interval_then_randomized() -> None:
    sched = RtcpScheduler(RtcpConfig(), random.Random(7), now=100.0)
    first = sched.poll_timeout()
    assert 100.25 <= first <= 100.75
    assert sched.handle_timeout(first - 1e-6) is False
    assert sched.poll_timeout() == first
    gaps = []
    now = first
    for _ in range(2000):
        assert sched.handle_timeout(now) is True
        gaps.append(sched.poll_timeout() - now)
        now = sched.poll_timeout()
    assert all(0.5 <= g <= 1.5 for g in gaps)
    assert sum(gaps) / len(gaps) == pytest.approx(1.0, abs=0.03)


def test_scheduler_is_reproducible_with_the_same_seed() -> None:
    a = RtcpScheduler(RtcpConfig(interval=5.0), random.Random(1), now=0.0)
    b = RtcpScheduler(RtcpConfig(interval=5.0), random.Random(1), now=0.0)
    assert a.poll_timeout() == b.poll_timeout()
    assert 1.25 <= a.poll_timeout() <= 3.75


def test_scheduler_bandwidth_scaled_interval() -> None:
    # §6.3.1: two members of 100-octet average compounds over 20 octets/s of RTCP bandwidth give
    # 10 s, above the 1 s minimum; a larger average stretches it further.
    sched = RtcpScheduler(RtcpConfig(interval=1.0, rtcp_bandwidth=20.0), random.Random(3), now=0.0)
    assert sched.handle_timeout(sched.poll_timeout())
    now = sched.poll_timeout() - 1e-9  # not due yet
    assert not sched.handle_timeout(now)
    for _ in range(100):
        sched.on_compound(400)
    assert sched.avg_rtcp_size == pytest.approx(400, rel=0.01)
    now = sched.poll_timeout()
    assert sched.handle_timeout(now)
    assert 20.0 <= sched.poll_timeout() - now <= 60.0


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="interval"):
        RtcpConfig(interval=0)
    with pytest.raises(ValueError, match="rtcp_bandwidth"):
        RtcpConfig(rtcp_bandwidth=-1.0)
    with pytest.raises(ValueError, match="members"):
        RtcpConfig(members=1)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.integers(0xFF80, 0xFFFF), st.integers(0, 0xFFFF)), st.integers(0, 2),
       st.lists(st.tuples(st.sampled_from([1, 1, 1, 1, 0, 2, -1, 3000, 40000]), st.floats(0.015, 0.025)), max_size=120))
def test_in_sequence_fast_path_agrees_with_the_general_path(first: int, probation: int, steps) -> None:
    """Mostly consecutive numbers (the fast path's case) across the 16-bit wrap, with duplicates,
    gaps, reordering and jumps: the same verdicts, counts, cycles and jitter as RFC 3550 §A.1's
    general path taken for every packet."""
    fast = ReceiverStats(SSRC, RATE, probation=probation)
    slow = ReceiverStats(SSRC, RATE, probation=probation)
    seq, ts, now = first, 0, 0.0
    for step, dt in steps:
        seq, ts, now = (seq + step) & 0xFFFF, ts + 960 * step, now + dt
        assert fast.on_rtp(seq, ts, now) == slow._on_rtp(seq, ts, now)
        assert (fast.extended_highest_sequence, fast.received, fast.expected, fast.jitter_seconds) == (
            slow.extended_highest_sequence, slow.received, slow.expected, slow.jitter_seconds)
