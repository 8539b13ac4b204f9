"""The inbound reorder buffer: order restored without delay, gaps become Fec or Lost frames."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.media.reorder import _UNSET, Fec, Frame, Lost, Packet, ReorderBuffer


def p(seq: int) -> bytes:
    return seq.to_bytes(4, "big")


def fresh_gap(buf: ReorderBuffer) -> tuple[int, float] | None:
    """The open gap computed from scratch, ignoring the buffer's memo."""
    buf._gap_cache = _UNSET
    return buf._gap()


def drain(buf: ReorderBuffer) -> list[Frame]:
    out: list[Frame] = []
    while (frame := buf.pop()) is not None:
        out.append(frame)
    return out


def test_in_order_is_delivered_immediately() -> None:
    buf = ReorderBuffer()
    for i in range(5):
        buf.push(100 + i, p(i), now=i * 0.02)
        assert drain(buf) == [Packet(100 + i, p(i))]
        assert buf.poll_timeout() is None
    assert buf.counters.delivered == 5


def test_swapped_pair_waits_only_for_the_missing_packet() -> None:
    buf = ReorderBuffer()
    buf.push(1, p(1), 0.0)
    assert drain(buf) == [Packet(1, p(1))]
    buf.push(3, p(3), 0.02)
    assert drain(buf) == []
    assert buf.poll_timeout() == 0.02 + 0.04
    buf.push(2, p(2), 0.025)
    assert drain(buf) == [Packet(2, p(2)), Packet(3, p(3))]
    assert buf.poll_timeout() is None
    assert buf.counters.reordered == 1 and buf.counters.lost == 0


def test_single_loss_becomes_fec_from_the_next_packet() -> None:
    buf = ReorderBuffer(max_delay=0.04)
    buf.push(10, p(10), 0.0)
    buf.push(12, p(12), 0.04)
    buf.push(13, p(13), 0.06)
    assert drain(buf) == [Packet(10, p(10))]
    deadline = buf.poll_timeout()
    assert deadline is not None and abs(deadline - 0.08) < 1e-9
    buf.handle_timeout(0.079)
    assert drain(buf) == []
    buf.handle_timeout(0.08)
    assert drain(buf) == [Fec(11, p(12)), Packet(12, p(12)), Packet(13, p(13))]
    buf.push(11, p(11), 0.09)  # after its gap was given up
    assert drain(buf) == [] and buf.counters.late == 1


def test_a_later_packet_push_past_the_deadline_also_gives_up() -> None:
    buf = ReorderBuffer(max_delay=0.04)
    buf.push(0, p(0), 0.0)
    buf.push(2, p(2), 0.02)
    buf.push(3, p(3), 0.07)
    assert drain(buf) == [Packet(0, p(0)), Fec(1, p(2)), Packet(2, p(2)), Packet(3, p(3))]


def test_loss_of_two_gives_lost_then_fec() -> None:
    buf = ReorderBuffer()
    buf.push(0, p(0), 0.0)
    buf.push(3, p(3), 0.06)
    buf.handle_timeout(0.1)
    assert drain(buf) == [Packet(0, p(0)), Lost(1), Fec(2, p(3)), Packet(3, p(3))]


def test_loss_at_the_end_is_lost_after_max_delay() -> None:
    buf = ReorderBuffer(max_delay=0.04)
    buf.push(0, p(0), 0.0)
    buf.push(2, p(2), 0.04)
    assert drain(buf) == [Packet(0, p(0))]
    buf.handle_timeout(0.08)
    frames = drain(buf)
    assert frames == [Fec(1, p(2)), Packet(2, p(2))]
    buf.push(5, p(5), 0.1)  # 3 and 4 missing, and 5 is the last packet
    buf.handle_timeout(0.14)
    assert drain(buf) == [Lost(3), Fec(4, p(5)), Packet(5, p(5))]


def test_duplicates_are_dropped_and_counted() -> None:
    buf = ReorderBuffer()
    buf.push(7, p(7), 0.0)
    buf.push(9, p(9), 0.01)
    buf.push(9, p(9), 0.01)
    buf.push(7, p(7), 0.02)
    assert drain(buf) == [Packet(7, p(7))]
    buf.push(7, p(7), 0.02)
    assert buf.counters.duplicate == 3


def test_sequence_wrap_at_65535_is_unwrapped() -> None:
    buf = ReorderBuffer()
    buf.push(65534, p(0), 0.0)
    buf.push(0, p(2), 0.01)  # arrives before 65535
    buf.push(65535, p(1), 0.02)
    buf.push(1, p(3), 0.03)
    frames = drain(buf)
    assert [f.seq for f in frames] == [65534, 65535, 65536, 65537]
    assert [f.seq & 0xFFFF for f in frames] == [65534, 65535, 0, 1]


def test_extended_numbers_pass_through_unchanged() -> None:
    buf = ReorderBuffer()
    for s in (3 << 16 | 65535, 4 << 16 | 0):
        buf.push(s, p(s), 0.0)
    assert [f.seq for f in drain(buf)] == [3 << 16 | 65535, 4 << 16]


def test_huge_jump_resets_instead_of_emitting_lost_frames() -> None:
    buf = ReorderBuffer()
    buf.push(10, p(10), 0.0)
    buf.push(5000, p(5000), 0.02)  # a lone stray: probe only
    assert drain(buf) == [Packet(10, p(10))]
    buf.push(5001, p(5001), 0.04)  # confirmed: the sender jumped
    assert drain(buf) == [Packet(5000, p(5000)), Packet(5001, p(5001))]
    assert buf.counters.resets == 1 and buf.counters.lost == 0
    buf.push(40000, p(1), 0.06)  # a stray that nothing follows
    buf.push(5002, p(5002), 0.08)
    assert drain(buf) == [Packet(5002, p(5002))]
    assert buf.counters.stray == 1 and buf.counters.resets == 1


def test_moderate_gap_is_reported_frame_by_frame() -> None:
    buf = ReorderBuffer()
    buf.push(0, p(0), 0.0)
    buf.push(50, p(50), 1.0)
    buf.handle_timeout(1.04)
    frames = drain(buf)
    assert len(frames) == 51 and frames[-1] == Packet(50, p(50))
    assert buf.counters.lost == 48 and buf.counters.fec == 1


def test_capacity_bounds_held_packets_and_gives_up() -> None:
    buf = ReorderBuffer(capacity=4)
    buf.push(0, p(0), 0.0)
    drain(buf)
    for s in range(2, 6):  # 1 is missing; the 4th held packet fills the buffer
        buf.push(s, p(s), 0.001 * s)
    assert len(buf) == 4
    assert [f.seq for f in drain(buf)] == [1, 2, 3, 4, 5]
    # A caller that never pops still stays within capacity.
    for s in range(6, 40):
        buf.push(s, p(s), 0.01)
        assert len(buf) <= 4
    assert buf.counters.overflow > 0


ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 0xFFFF), st.floats(0, 0.2)),
        st.tuples(st.just("near"), st.integers(-20, 40), st.floats(0, 0.05)),
        st.tuples(st.just("timeout"), st.just(0), st.floats(0, 0.1)),
        st.tuples(st.just("pop"), st.just(0), st.just(0.0)),
    ),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(1, 20))
def test_random_sequences_never_raise_and_stay_bounded(
    script: list[tuple[str, int, float]], cap: int
) -> None:
    buf = ReorderBuffer(max_delay=0.04, capacity=cap)
    now, last_seq, resets = 0.0, None, 0
    for op, arg, dt in script:
        now += dt
        if op == "push":
            buf.push(arg, b"x", now)
        elif op == "near":
            base = buf.expected if buf.expected is not None else 0
            buf.push((base + arg) & 0xFFFF, b"y", now)
        elif op == "timeout":
            deadline = buf.poll_timeout()
            if deadline is not None:
                assert deadline <= now + 0.2 + 1e-9
            buf.handle_timeout(now)
        while (frame := buf.pop()) is not None:
            if buf.counters.resets != resets:
                resets, last_seq = buf.counters.resets, None
            assert last_seq is None or frame.seq == last_seq + 1
            last_seq = frame.seq
        assert len(buf) <= cap + 1
        memo = buf._gap()  # what poll_timeout() answers from the memo...
        assert memo == fresh_gap(buf), "the gap memo went stale"  # ...is what a fresh look finds


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.floats(0, 0.03), st.booleans()), max_size=150))
def test_in_order_fast_path_agrees_with_the_general_path(steps: list[tuple[int, float, bool]]) -> None:
    """Mostly in-order arrivals (the fast path's case) with small jumps back and forth: every
    frame, counter and deadline matches a buffer that takes each packet the general way."""
    fast, slow = ReorderBuffer(max_delay=0.04, capacity=4), ReorderBuffer(max_delay=0.04, capacity=4)
    seq, now = 65530, 0.0  # across the 16-bit wrap
    for jump, dt, pop in steps:
        seq, now = (seq + 1 + jump) & 0xFFFF, now + dt
        fast.push(seq, p(seq), now)
        slow.counters.pushed += 1
        slow._push(seq, p(seq), now)  # the general path, for every packet
        for buf in (fast, slow):
            buf.handle_timeout(now)
        assert fast.poll_timeout() == slow.poll_timeout()
        if pop:
            assert drain(fast) == drain(slow)
        assert fast.counters == slow.counters
        assert (fast.expected, fast._highest, len(fast)) == (slow.expected, slow._highest, len(slow))
        assert fast._gap() == fresh_gap(fast)


def test_missing_packet_arriving_after_give_up_but_before_its_turn_is_delivered() -> None:
    buf = ReorderBuffer()
    buf.push(0, p(0), 0.0)
    buf.push(2, p(2), 0.0)
    buf.push(3, p(3), 0.0)
    buf.handle_timeout(1.0)  # the gap at 1 is given up, nothing popped yet
    buf.push(1, p(1), 1.0)
    assert drain(buf) == [Packet(i, p(i)) for i in range(4)]
    assert buf.counters.late == 0 and buf.counters.lost == 0
