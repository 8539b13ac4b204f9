"""The outbound pacer on virtual time: 50 frames/s, RTP timestamps, markers, flush, stalls."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.media.pacer import PacedFrame, Pacer, PacerFull


def run(
    pacer: Pacer[int], until: float, feed: dict[int, int] | None = None
) -> list[tuple[float, PacedFrame[int]]]:
    """Step virtual time from deadline to deadline; ``feed`` pushes frames at given tick numbers."""
    out: list[tuple[float, PacedFrame[int]]] = []
    now = 0.0
    while True:
        deadline = pacer.poll_timeout()
        if deadline is None or deadline >= until:
            return out
        now = max(now, deadline)
        out.extend((now, f) for f in pacer.handle_timeout(now))


def test_fifty_frames_per_second_for_ten_virtual_seconds() -> None:
    pacer: Pacer[int] = Pacer(initial_timestamp=1234)
    for i in range(600):
        pacer.push(i)
    pacer.start(0.0)
    sent = run(pacer, until=10.0)
    assert len(sent) == 500
    assert [f.frame for _, f in sent] == list(range(500))
    assert all(abs(t - 0.02 * i) < 1e-9 and t == f.due for i, (t, f) in enumerate(sent))
    stamps = [f.timestamp for _, f in sent]
    assert stamps[0] == 1234 and all(b - a == 960 for a, b in zip(stamps, stamps[1:], strict=False))
    assert [f.marker for _, f in sent] == [True] + [False] * 499
    assert pacer.counters.sent == 500 and pacer.counters.late_ticks == 0


def test_silence_advances_timestamps_and_marks_the_next_talkspurt() -> None:
    pacer: Pacer[int] = Pacer()
    pacer.start(0.0)
    for i in range(3):
        pacer.push(i)
    first = [f for t in (0.0, 0.02, 0.04) for f in pacer.handle_timeout(t)]
    assert [(f.timestamp, f.marker) for f in first] == [(0, True), (960, False), (1920, False)]
    assert pacer.poll_timeout() is None  # idle: no wakeups during silence
    pacer.push(3)
    assert pacer.poll_timeout() == pytest.approx(0.06)  # already past at 0.105: send at once
    (late,) = pacer.handle_timeout(0.105)
    assert late.timestamp == 5 * 960 and late.marker  # slot of 0.105 is tick 5
    pacer.push(4)
    (nxt,) = pacer.handle_timeout(pacer.poll_timeout() or 0.0)
    assert nxt.timestamp == 6 * 960 and not nxt.marker
    assert pacer.counters.silent_ticks == 2


def test_push_before_the_next_tick_continues_without_marker() -> None:
    pacer: Pacer[str] = Pacer()
    pacer.start(1.0)
    pacer.push("a")
    assert [f.frame for f in pacer.handle_timeout(1.0)] == ["a"]
    pacer.push("b")  # the queue ran dry, but before the next tick was due
    assert pacer.poll_timeout() == pytest.approx(1.02)
    (b,) = pacer.handle_timeout(1.02)
    assert (b.timestamp, b.marker) == (960, False)


def test_clear_drops_everything_queued_and_marks_the_restart() -> None:
    pacer: Pacer[int] = Pacer()
    pacer.start(0.0)
    for i in range(50):
        pacer.push(i)
    assert len(pacer.handle_timeout(0.0)) == 1
    assert pacer.clear() == 49 and len(pacer) == 0
    assert pacer.handle_timeout(0.02) == []
    pacer.push(99)
    (f,) = pacer.handle_timeout(0.04)
    assert f.frame == 99 and f.marker and f.timestamp == 2 * 960
    assert pacer.counters.cleared == 49


def test_a_stall_does_not_burst() -> None:
    pacer: Pacer[int] = Pacer()
    for i in range(100):
        pacer.push(i)
    pacer.start(0.0)
    assert len(pacer.handle_timeout(0.0)) == 1
    out = pacer.handle_timeout(0.2)  # ten ticks were due: only the last two go
    assert [f.frame for f in out] == [1, 2]
    assert [f.timestamp for f in out] == [9 * 960, 10 * 960]
    assert out[0].marker and not out[1].marker
    assert pacer.counters.late_ticks == 8
    assert pacer.poll_timeout() == pytest.approx(0.22)
    assert pacer.handle_timeout(0.21) == []  # never ahead of the clock


def test_slightly_late_timer_catches_up_one_frame() -> None:
    pacer: Pacer[int] = Pacer()
    for i in range(5):
        pacer.push(i)
    pacer.start(0.0)
    pacer.handle_timeout(0.0)
    out = pacer.handle_timeout(0.041)
    assert [f.frame for f in out] == [1, 2] and not any(f.marker for f in out)
    assert pacer.counters.late_ticks == 0


def test_capacity_and_validation() -> None:
    pacer: Pacer[int] = Pacer(capacity=2)
    pacer.push(1)
    pacer.push(2)
    with pytest.raises(PacerFull):
        pacer.push(3)
    assert pacer.poll_timeout() is None and pacer.handle_timeout(5.0) == []  # not started
    with pytest.raises(ValueError):
        Pacer(frame_duration=0.0201)


def test_a_jittery_real_time_producer_keeps_one_talkspurt() -> None:
    """An echo: frames arrive at 50/s with up to +-9 ms of network jitter, starting at an arbitrary
    phase of the grid. Timestamps stay contiguous and only the first frame carries the marker."""
    import random

    rng = random.Random(4)
    pacer: Pacer[int] = Pacer(initial_timestamp=1000)
    pacer.start(0.0)
    arrivals = sorted(0.5137 + 0.02 * i + rng.uniform(-0.009, 0.009) for i in range(200))
    sent: list[PacedFrame[int]] = []
    now = 0.0
    for i, at in enumerate(arrivals):
        # Serve every tick due before this arrival, then the arrival itself.
        while (t := pacer.poll_timeout()) is not None and t <= at:
            now = t
            sent += pacer.handle_timeout(now)
        now = at
        pacer.push(i)
        if (t := pacer.poll_timeout()) is not None and t <= now:
            sent += pacer.handle_timeout(now)
    while (t := pacer.poll_timeout()) is not None:
        sent += pacer.handle_timeout(t)
    assert [f.frame for f in sent] == list(range(200))
    assert [f.marker for f in sent] == [True] + [False] * 199
    assert all(b.timestamp - a.timestamp == 960 for a, b in zip(sent, sent[1:], strict=False))


def test_pull_in_moves_the_grid_to_an_early_frame_and_keeps_timestamps() -> None:
    p: Pacer[str] = Pacer(initial_timestamp=1000)
    p.start(0.0)
    p.push("a")
    assert [f.timestamp for f in p.handle_timeout(0.0)] == [1000]
    assert not p.pull_in(0.001, 0.005)  # nothing queued
    p.push("b")
    assert not p.pull_in(0.016, 0.005)  # its tick is 4 ms away: within the wait allowed
    assert p.pull_in(0.010, 0.005)  # 10 ms away: the grid moves to now
    assert p.poll_timeout() == pytest.approx(0.010)
    [b] = p.handle_timeout(0.010)
    assert (b.frame, b.timestamp, b.marker) == ("b", 1960, False)  # same talkspurt, next timestamp
    p.push("c")
    assert p.poll_timeout() == pytest.approx(0.030)  # the grid kept its new phase
    assert p.counters.pulled_in == 1


def test_pull_in_leaves_a_late_frame_to_the_grid() -> None:
    p: Pacer[str] = Pacer()
    assert not p.pull_in(0.0, 0.005)  # not started
    p.start(0.0)
    p.push("a")  # its tick is past: handle_timeout sends it now (and re-anchors after a gap)
    assert not p.pull_in(0.5, 0.005)
    assert p.poll_timeout() == 0.0


def test_pull_in_also_serves_a_frame_queued_after_the_queue_ran_dry() -> None:
    p: Pacer[str] = Pacer()
    p.start(0.0)
    p.push("a")
    p.handle_timeout(0.0)  # sent; the queue ran dry
    p.push("b")  # 5 ms later, 15 ms before its tick
    assert p.pull_in(0.005, 0.005) and p.poll_timeout() == pytest.approx(0.005)
    assert [f.frame for f in p.handle_timeout(0.005)] == ["b"]


def test_a_late_allowance_lets_a_frame_just_into_the_next_slot_continue_its_talkspurt() -> None:
    for allowance, continues in ((0.0, False), (0.005, True)):
        p: Pacer[str] = Pacer(late_allowance=allowance)
        p.start(0.0)
        p.push("a")
        p.handle_timeout(0.0)  # sent; the queue ran dry
        p.push("b")  # its tick was at 20 ms; it comes 23 ms late, 3 ms into the slot after its own
        [b] = p.handle_timeout(0.043)
        assert (b.timestamp == 960, b.marker) == (continues, not continues)
        assert p.counters.silent_ticks == (0 if continues else 1)
    p = Pacer(late_allowance=0.005)
    p.start(0.0)
    p.push("a")
    p.handle_timeout(0.0)
    p.push("c")  # 26 ms late: beyond the allowance, a new talkspurt as before
    [c] = p.handle_timeout(0.046)
    assert c.marker and c.timestamp == 1920
    with pytest.raises(ValueError, match="late_allowance"):
        Pacer(late_allowance=0.02)


def _state(pacer: Pacer[int]) -> tuple[object, ...]:
    c = pacer.counters
    return (pacer._t0, pacer._tick, pacer._idle, pacer._gap, len(pacer), pacer.poll_timeout(),
            c.sent, c.silent_ticks, c.late_ticks, c.pulled_in, c.cleared)


# Each step: (seconds since the previous one, what happens then).
_STEPS = st.lists(
    st.tuples(st.floats(0.0, 0.07), st.sampled_from(["frame", "frame", "frame", "timer", "clear"])),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps=_STEPS, max_wait=st.sampled_from([0.0, 0.005]), allowance=st.sampled_from([0.0, 0.005]))
def test_release_now_is_push_pull_in_and_timeout_in_one(steps, max_wait, allowance) -> None:
    """A live stream's frame on the fast path leaves exactly as it would through the queue:
    same frames (timestamp, marker, tick time) and the same pacer afterwards, whatever came
    before (silences, stalls, early and late frames, a barge-in clear, frames still queued)."""
    queued, fast = (Pacer[int](initial_timestamp=1000, late_allowance=allowance) for _ in range(2))
    now = 0.0
    queued.start(now)
    fast.start(now)
    for k, (gap, what) in enumerate(steps):
        now += gap
        if what == "clear":
            outs = [[], []]
            queued.clear()
            fast.clear()
        elif what == "timer":
            outs = [p.handle_timeout(now) if (d := p.poll_timeout()) is not None and d <= now else []
                    for p in (queued, fast)]
        else:
            outs = []
            for pacer, shortcut in ((queued, False), (fast, True)):
                paced = pacer.release_now(k, now, max_wait) if shortcut else None
                if paced is not None:
                    outs.append([paced])
                    continue
                pacer.push(k)
                pacer.pull_in(now, max_wait)
                # After a pull-in the tick time may sit a rounding error above now (the queue
                # path would wait for a timer that fires at once); the fast path sends it.
                deadline = pacer.poll_timeout()
                outs.append(pacer.handle_timeout(now) if deadline is not None and deadline <= now + 1e-9 else [])
        assert outs[0] == outs[1], f"step {k} ({what} at {now:.4f})"
        assert _state(queued) == _state(fast), f"step {k} ({what} at {now:.4f})"


def test_release_now_declines_when_frames_wait_or_before_start() -> None:
    pacer = Pacer[int]()
    assert pacer.release_now(0, 0.0, 0.0) is None  # not started
    pacer.start(0.0)
    pacer.push(1)
    assert pacer.release_now(2, 0.0, 0.0) is None  # one waits: it goes first
    assert len(pacer) == 1
    assert [f.frame for f in pacer.handle_timeout(0.0)] == [1]
    paced = pacer.release_now(2, 0.021, 0.0)
    assert paced is not None and (paced.frame, paced.timestamp, paced.marker) == (2, 960, False)
