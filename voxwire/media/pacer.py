"""A sans-IO pacer for outbound audio: one frame per 20 ms tick on a monotonic schedule.

Theory of operation
-------------------
``start(now)`` anchors a grid of ticks at ``t0 + k * frame_duration``; tick ``k`` owns the RTP
timestamp ``initial_timestamp + k * samples_per_frame`` (960 at 48 kHz for 20 ms, RFC 7587 §4.1:
the Opus RTP clock is always 48 kHz). Each tick sends at most one queued frame, so what has been
sent is never more than one frame ahead of real time, and a barge-in that calls :meth:`clear`
silences the stream within one frame: nothing is buffered downstream of the queue.

**What is queued.** The queue holds frames in whatever form the caller chooses (the type
parameter ``T``). voxwire queues *PCM* frames and encodes each one at the latest when its tick
fires, at the earliest one frame ahead (:meth:`peek` and :meth:`replace_head`): a flush on
barge-in then throws away at most one encoded frame, and the encoder state never runs more than
one frame past the audio actually sent (to the receiver that one frame looks like a lost packet,
at a point where the stream is cut anyway).

**Silence.** A tick with an empty queue sends nothing but its timestamp is consumed: media time
keeps following the clock, so the receiver's jitter buffer sees the real length of the pause. The
first frame after such a gap (and the very first frame, and the first after :meth:`clear`) carries
the marker bit, as RFC 3551 §4.1 asks for the first packet of a talkspurt. While the queue is
empty the pacer does not ask to be woken (:meth:`poll_timeout` is ``None``); after :meth:`push` it
asks for the next tick, which may already be past: the frame then goes out at once in the
current tick's slot, so the first frame of a response waits for no timer. A frame pushed less than
one frame after its tick was due still continues the talkspurt (contiguous timestamps, no marker);
after a longer gap the grid is re-anchored on the new talkspurt's first frame. ``late_allowance``
stretches "less than one frame" by that much (a live stream, whose grid sits on its earliest
frames: see below).

**Live streams.** A stream played as it arrives (an echo, a pass-through) should leave as soon as
it arrives, but the grid keeps the phase of the talkspurt's first frame. After a stall
re-anchored it on a late frame, every later frame waited for a tick up to 20 ms away, and each
stall added more: the delay only ever grew. :meth:`pull_in` moves the grid to a frame that is
queued early, so the tick is now; the frame's timestamp is unchanged, and it leaves less than
one frame early, as a packet with a little network jitter would arrive. Frames that were queued
together (a late decode of two packets) are pulled in one after the other and leave together
(``OutboundAudio.due``): otherwise the second waits a tick, each later arrival queues behind it,
and the stream keeps that frame of delay for good.

**Stalls.** If the process was late (the tick timer fired long after its time), up to
``max_burst`` frames go out for the most recent due ticks (normally 2: the late one and the one
just due); older due ticks are skipped and counted in ``late_ticks``. Their timestamps are
consumed like silence and the next frame carries the marker, so the receiver can resynchronise
playout instead of receiving a burst that would pile up in its jitter buffer.

Drive it like every voxwire core: ``handle_timeout(now)`` when ``poll_timeout()`` is reached,
sending every returned :class:`PacedFrame` at once; ``now`` is monotonic seconds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["PacedFrame", "Pacer", "PacerCounters", "PacerFull"]

T = TypeVar("T")

#: Tolerance when mapping a time to a tick index, in ticks (20 ns at 20 ms): a timer that fires at
#: exactly the time poll_timeout() returned must land on that tick despite float rounding.
_EPSILON = 1e-6


class PacerFull(Exception):
    """push() on a full queue: the producer is more than ``capacity`` frames ahead."""


# Not frozen: made once per packet, and a frozen dataclass costs 1.4 us to create against 0.4 us
# (object.__setattr__ per field). Treat it as immutable.
@dataclass(slots=True)
class PacedFrame(Generic[T]):
    """A frame whose tick has come: encode it (if PCM) and send it now."""

    frame: T
    #: Extended RTP timestamp of the frame's first sample; the wire value is ``& 0xFFFFFFFF``.
    timestamp: int
    #: RTP marker bit: first frame of a talkspurt (RFC 3551 §4.1).
    marker: bool
    #: The tick's scheduled time (``now`` minus this is the pacing lateness).
    due: float


@dataclass(slots=True)
class PacerCounters:
    sent: int = 0  # frames released
    silent_ticks: int = 0  # ticks with nothing queued (timestamps consumed)
    late_ticks: int = 0  # ticks skipped because the process stalled
    cleared: int = 0  # frames dropped by clear()
    trimmed: int = 0  # frames dropped from the head by drop_oldest() (a live stream catching up)
    pulled_in: int = 0  # times the grid moved to a live frame that was queued early (pull_in)


class Pacer(Generic[T]):
    """Releases queued frames one per tick, never ahead of the clock by more than one frame."""

    # One instance per call (slots: ~50 bytes less each).
    __slots__ = (
        "frame_duration",
        "clock_rate",
        "samples_per_frame",
        "capacity",
        "max_burst",
        "late_allowance",
        "initial_timestamp",
        "counters",
        "_queue",
        "_t0",
        "_tick",
        "_idle",
        "_gap",
    )

    def __init__(
        self,
        frame_duration: float = 0.02,
        clock_rate: int = 48000,
        capacity: int = 3000,
        initial_timestamp: int = 0,
        max_burst: int = 2,
        late_allowance: float = 0.0,
    ) -> None:
        samples = frame_duration * clock_rate
        if frame_duration <= 0 or abs(samples - round(samples)) > 1e-6 or round(samples) < 1:
            raise ValueError(
                f"frame_duration {frame_duration} is not a whole number of {clock_rate} Hz samples"
            )
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        if max_burst < 1:
            raise ValueError(f"max_burst must be >= 1, not {max_burst}")
        if not 0.0 <= late_allowance < frame_duration:
            raise ValueError(f"late_allowance must be in [0, frame_duration), not {late_allowance}")
        self.frame_duration = frame_duration
        self.clock_rate = clock_rate
        self.samples_per_frame = round(samples)
        self.capacity = capacity
        self.max_burst = max_burst
        self.late_allowance = late_allowance
        self.initial_timestamp = initial_timestamp
        self.counters = PacerCounters()
        # A deque costs 760 bytes empty, so a pacer that never had a frame (an idle call) shares
        # this empty tuple; the first push() gives it a deque of its own, kept from then on.
        self._queue: deque[T] | tuple[()] = ()
        self._t0: float | None = None
        self._tick = 0  # index of the next tick to handle
        self._idle = True  # queue ran dry: not waking for ticks until push()
        self._gap = True  # the previous tick sent nothing: next frame gets the marker

    # -- queue -----------------------------------------------------------------------------

    def __len__(self) -> int:
        """Frames queued."""
        return len(self._queue)

    @property
    def queued_duration(self) -> float:
        """Seconds of audio queued."""
        return len(self._queue) * self.frame_duration

    def push(self, frame: T) -> None:
        """Queue one frame for the next free tick. Raises :class:`PacerFull` beyond ``capacity``."""
        if len(self._queue) >= self.capacity:
            raise PacerFull(f"pacer holds {self.capacity} frames already")
        if not isinstance(self._queue, deque):
            self._queue = deque()
        self._queue.append(frame)

    def peek(self) -> T | None:
        """The frame the next tick would send, or None."""
        return self._queue[0] if self._queue else None

    def replace_head(self, frame: T) -> None:
        """Put ``frame`` in the place of the frame the next tick would send (encoded ahead)."""
        if not self._queue:  # the shared empty tuple is empty too
            raise IndexError("replace_head() on an empty pacer")
        self._queue[0] = frame

    def drop_oldest(self) -> T:
        """Drop the frame the next tick would send (a live stream that fell behind skips ahead)."""
        if not self._queue:
            raise IndexError("drop_oldest() on an empty pacer")
        self.counters.trimmed += 1
        return self._queue.popleft()

    def clear(self) -> int:
        """Drop every queued frame (barge-in); returns how many. The next frame gets the marker."""
        dropped = len(self._queue)
        if self._queue:
            self._queue.clear()
        self.counters.cleared += dropped
        self._gap = True
        return dropped

    # -- clock -----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._t0 is not None

    def start(self, now: float) -> None:
        """Anchor the tick grid: tick 0 is due at ``now``."""
        self._t0 = now
        self._tick = 0
        self._idle = True
        self._gap = True

    @property
    def next_timestamp(self) -> int:
        """Extended RTP timestamp of the next tick to be handled."""
        return self.initial_timestamp + self._tick * self.samples_per_frame

    def timestamp_at(self, now: float) -> int:
        """Extended RTP timestamp of the tick slot that contains ``now``."""
        if self._t0 is None:
            raise RuntimeError("Pacer.timestamp_at() before start()")
        return self.initial_timestamp + self._slot(now) * self.samples_per_frame

    def _slot(self, now: float) -> int:
        assert self._t0 is not None
        return math.floor((now - self._t0) / self.frame_duration + _EPSILON)

    def pull_in(self, now: float, max_wait: float) -> bool:
        """If a frame is queued for a tick more than ``max_wait`` after ``now``, move the grid so
        that tick is ``now`` (a live stream's frame arrived early for the grid); True if it did."""
        if self._t0 is None or not self._queue:
            return False
        due = self._t0 + self._tick * self.frame_duration
        if due - now <= max_wait:
            return False  # due soon, or already due (a late frame continues or re-anchors the grid)
        self._t0 -= due - now
        self.counters.pulled_in += 1
        return True

    def poll_timeout(self) -> float | None:
        """When the next tick is due (maybe already past), or ``None`` while idle or not started."""
        if self._t0 is None or (self._idle and not self._queue):
            return None
        return self._t0 + self._tick * self.frame_duration

    def handle_timeout(self, now: float) -> list[PacedFrame[T]]:
        """Release the frames whose ticks are due at ``now`` (normally one, at most ``max_burst``)."""
        if self._t0 is None:
            return []
        slot = self._slot(now)
        due = slot - self._tick + 1
        if due <= 0:
            return []
        c = self.counters
        if self._idle:
            self._wake(now, slot, due)
            due = 1
        elif due > self.max_burst:
            c.late_ticks += due - self.max_burst
            self._tick = slot - self.max_burst + 1
            due = self.max_burst
            self._gap = True
        out: list[PacedFrame[T]] = []
        queue = self._queue
        for _ in range(due):
            if queue:
                out.append(self._paced(queue.popleft()))
            else:
                self._tick += 1
                c.silent_ticks += 1
                self._gap = True
        c.sent += len(out)
        if not queue:
            self._idle = True
        return out

    def release_now(self, frame: T, now: float, max_wait: float) -> PacedFrame[T] | None:
        """What ``push(frame)``, ``pull_in(now, max_wait)`` and ``handle_timeout(now)`` release
        together, without the queue, when ``frame`` finds the pacer idle with nothing queued and
        its tick due once pulled in: a live stream's frame that leaves as it arrives, the common
        case. Otherwise ``None`` and nothing changed: :meth:`push` the frame."""
        t0 = self._t0
        if t0 is None or not self._idle or self._queue:
            return None
        due_at = t0 + self._tick * self.frame_duration
        if due_at - now > max_wait:  # pull_in()
            self._t0 = t0 - (due_at - now)
            self.counters.pulled_in += 1
        elif due_at > now:
            return None  # due within max_wait: it waits for its tick, queued
        slot = self._slot(now)
        self._wake(now, slot, slot - self._tick + 1)
        paced = self._paced(frame)
        self.counters.sent += 1
        self._idle = True
        return paced

    def _wake(self, now: float, slot: int, due: int) -> None:
        """The first tick since the queue ran dry is due (``due`` ticks have passed since the
        last one handled, the latest in ``slot``): the ticks nobody woke for were silence."""
        if due == 2 and self._slot(now - self.late_allowance) < slot:
            slot, due = self._tick, 1  # into the next slot by less than the allowance: no gap
        if due > 1:
            self.counters.silent_ticks += due - 1
            self._gap = True
            # A new talkspurt: re-anchor the grid on this frame, so that its followers may
            # arrive up to one whole frame late (network jitter on an echo, a model's uneven
            # output) without a timestamp jump and a marker in the middle of speech. Media
            # time then lags the clock by under one frame per talkspurt, which only shortens
            # the silence the receiver sees; the SR maps RTP time to wallclock regardless.
            self._t0 = now - slot * self.frame_duration
        self._tick = slot
        self._idle = False

    def _paced(self, frame: T) -> PacedFrame[T]:
        """``frame`` for the next tick, which it consumes."""
        tick, t0 = self._tick, self._t0
        assert t0 is not None, "a frame is paced only once started"
        self._tick = tick + 1
        paced = PacedFrame(frame, self.initial_timestamp + tick * self.samples_per_frame, self._gap, t0 + tick * self.frame_duration)
        self._gap = False
        return paced
