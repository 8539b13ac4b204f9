"""A sans-IO reorder buffer for inbound audio RTP, with no prefetch delay.

Theory of operation
-------------------
The browser already runs a jitter buffer for what *it* plays; on our side audio goes to a voice
model, which wants every frame as soon as possible and in order. So this is not a jitter buffer:
it never delays a packet that can be delivered. It only restores order and turns gaps into
explicit frames the decoder can act on:

* The packet with the expected sequence number is delivered at once (:class:`Packet`), followed by
  every held packet that is now contiguous.
* When a later packet arrives first, a gap is open. Later packets are held until the missing one
  arrives (then everything flows in order) or until ``max_delay`` has passed since the oldest
  held packet arrived (``poll_timeout`` / ``handle_timeout``, time injected as ``now``). Then the
  buffer gives up on the gap: each missing number becomes :class:`Fec` when the packet after it is
  held (its Opus in-band FEC can rebuild the lost frame, RFC 6716 §2.1.7), else :class:`Lost`
  (packet-loss concealment). A missing packet that arrives while its gap is being skipped but
  before its turn still goes out as a normal :class:`Packet`.
* Holding ``capacity`` packets gives up on the gap at once: with that many successors the missing
  packet is lost for any purpose of ours. Memory never exceeds ``capacity`` held payloads, plus one
  probe (below) and a fixed number of integers.
* Sequence numbers are unwrapped to an extended counter (RFC 3550 §A.1 idea): each 16-bit number is
  placed nearest to the expected one. The first packet fixes the origin, so callers may pass wire
  values or their own extended counter; every :class:`Frame` carries the extended number
  (``seq & 0xFFFF`` is the wire value).
* A packet more than ``max_jump`` away from the expected number (forwards or backwards) is held
  aside as a probe instead of producing a burst of :class:`Lost` frames. If the next packet
  continues from it, the sender restarted or jumped: the buffer resets to the probe (nothing lost).
  Otherwise the probe was a stray and is dropped. Gaps up to ``max_jump`` are reported frame by
  frame so the audio timeline stays true; :class:`Lost` frames are produced lazily by :meth:`pop`,
  never queued.
* Remote misbehaviour never raises: duplicates, packets that come after their gap was given up
  (``late``), strays and overflows are dropped and counted in :attr:`ReorderBuffer.counters`.

Drive it like every voxwire core: ``push(seq, payload, now)``, then ``pop()`` until it returns
``None``; arm a timer for ``poll_timeout()`` and call ``handle_timeout(now)`` (then ``pop()``
again) when it fires.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Fec", "Frame", "Lost", "Packet", "ReorderBuffer", "ReorderCounters"]


# Not frozen: made once per packet, and a frozen dataclass costs 1.4 us to create against 0.4 us
# (object.__setattr__ per field). Treat it as immutable.
@dataclass(slots=True)
class Packet:
    """The packet with this (extended) sequence number, in order."""

    seq: int
    payload: bytes


@dataclass(slots=True)
class Fec:
    """``seq`` is lost, but ``next_payload`` (packet ``seq + 1``) arrived and may carry its FEC.

    Decode it with ``decoder.decode_fec(next_payload)``; packet ``seq + 1`` itself follows as a
    normal :class:`Packet`.
    """

    seq: int
    next_payload: bytes


@dataclass(slots=True)
class Lost:
    """``seq`` is lost and nothing can rebuild it: conceal it (PLC)."""

    seq: int


Frame = Packet | Fec | Lost


@dataclass(slots=True)
class ReorderCounters:
    """What the buffer did, for stats and tests. Every field only grows."""

    pushed: int = 0
    delivered: int = 0  # Packet frames out
    reordered: int = 0  # packets that arrived after a higher number
    fec: int = 0  # Fec frames out
    lost: int = 0  # Lost frames out
    duplicate: int = 0  # dropped: already held or delivered
    late: int = 0  # dropped: its gap had already been given up
    stray: int = 0  # dropped: a jump beyond max_jump that nothing followed
    resets: int = 0  # the stream restarted at a jump
    overflow: int = 0  # dropped: held packets evicted because pop() was not drained


_SKIP_MEMORY = 64  # how many recent numbers we remember as "given up" (late vs duplicate)
_MASK = (1 << _SKIP_MEMORY) - 1
_UNSET = (-1, -1.0)


class ReorderBuffer:
    """Restores RTP order for one inbound audio stream without delaying in-order packets."""

    # One instance per call (slots: ~50 bytes less each).
    __slots__ = (
        "max_delay",
        "capacity",
        "max_jump",
        "counters",
        "_expected",
        "_held",
        "_give_up_below",
        "_skipped",
        "_highest",
        "_probe",
        "_gap_cache",
    )

    def __init__(self, max_delay: float = 0.04, capacity: int = 16, max_jump: int = 100) -> None:
        if max_delay < 0:
            raise ValueError(f"max_delay must be >= 0, not {max_delay}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        if max_jump < capacity:
            raise ValueError(f"max_jump ({max_jump}) must be >= capacity ({capacity})")
        self.max_delay = max_delay
        self.capacity = capacity
        self.max_jump = max_jump
        self.counters = ReorderCounters()
        self._expected: int | None = None  # next extended number pop() accounts for
        self._held: dict[int, tuple[bytes, float]] = {}  # ext seq -> (payload, arrival); all >= expected
        self._give_up_below = 0  # missing numbers below this are decided: Fec or Lost
        self._skipped = 0  # bit i set: number expected-1-i was given up (tells late from duplicate)
        self._highest = 0  # highest extended number accepted
        self._probe: tuple[int, bytes, float] | None = None
        self._gap_cache: tuple[int, float] | None = _UNSET

    # -- introspection ---------------------------------------------------------------------

    @property
    def expected(self) -> int | None:
        """The next extended sequence number :meth:`pop` will account for."""
        return self._expected

    def __len__(self) -> int:
        """Payloads held (not yet popped), including a probe."""
        return len(self._held) + (self._probe is not None)

    # -- driving ---------------------------------------------------------------------------

    def push(self, seq: int, payload: bytes, now: float) -> None:
        """Accept one packet's sequence number (16-bit or extended) and payload at time ``now``."""
        c = self.counters
        c.pushed += 1
        exp = self._expected
        if (
            exp is not None
            and not self._held
            and (seq - exp) & 0xFFFF == 0
            and self._probe is None
            and self._give_up_below <= exp
        ):
            # The common case, in order: the very packet pop() waits for, nothing else held. No
            # gap can be open (so no timeout to run), and pop() hands it over next. With nothing
            # held, every number accepted so far is below the expected one: not reordered.
            self._highest = exp
            self._held[exp] = (payload, now)
            self._gap_cache = None
            return
        self._push(seq, payload, now)

    def _push(self, seq: int, payload: bytes, now: float) -> None:
        """:meth:`push` for any packet (the in-order fast path aside)."""
        c = self.counters
        if self._expected is None:
            self._reset(seq)
            self._hold(seq, payload, now)
            return
        # Unwrap: the extended number nearest to the expected one with the same low 16 bits.
        ext = self._expected + ((seq - self._expected + 0x8000) & 0xFFFF) - 0x8000
        probe = self._probe
        if probe is not None:
            self._probe = None
            if 0 < abs(ext - probe[0]) <= self.capacity:
                # Two packets agree on the new place: the sender restarted or jumped.
                c.resets += 1
                self._reset(min(ext, probe[0]))
                self._hold(probe[0], probe[1], probe[2])
                self._hold(ext, payload, now)
                self.handle_timeout(now)
                return
            c.stray += 1
        distance = ext - self._expected
        if distance > self.max_jump or distance < -self.max_jump:
            self._probe = (ext, payload, now)
            return
        if distance < 0:
            age = -distance - 1
            if age < _SKIP_MEMORY and (self._skipped >> age) & 1:
                c.late += 1
            else:
                c.duplicate += 1
            return
        if ext in self._held:
            c.duplicate += 1
            return
        if ext < self._highest:
            c.reordered += 1
        else:
            self._highest = ext
        if len(self._held) >= self.capacity:
            # pop() is not being drained: evict the oldest number to stay bounded. It is then
            # decided like a lost packet and comes out as Fec or Lost.
            oldest = min(self._held)
            del self._held[oldest]
            self._give_up_below = max(self._give_up_below, oldest + 1)
            c.overflow += 1
        self._hold(ext, payload, now)
        if len(self._held) >= self.capacity:
            self._give_up_first_gap()  # that many successors: the missing packet is not coming
        self.handle_timeout(now)

    def _hold(self, ext: int, payload: bytes, now: float) -> None:
        self._held[ext] = (payload, now)
        self._gap_cache = _UNSET

    def _reset(self, ext: int) -> None:
        self._held.clear()
        self._expected = self._highest = self._give_up_below = ext
        self._skipped = 0
        self._gap_cache = _UNSET

    def _gap(self) -> tuple[int, float] | None:
        """(first missing number we still wait for, arrival of the oldest packet held beyond it)."""
        cached = self._gap_cache
        if cached is not _UNSET:
            return cached
        gap: tuple[int, float] | None = None
        held = self._held
        if held and self._expected is not None:
            missing = max(self._expected, self._give_up_below)
            while missing in held:
                missing += 1
            beyond = [arrival for seq, (_, arrival) in held.items() if seq > missing]
            if beyond:
                gap = (missing, min(beyond))
        self._gap_cache = gap
        return gap

    def _give_up_first_gap(self) -> None:
        gap = self._gap()
        if gap is not None:
            self._give_up_below = min(seq for seq in self._held if seq > gap[0])
            self._gap_cache = _UNSET

    def poll_timeout(self) -> float | None:
        """When :meth:`handle_timeout` must run to give up on the open gap, if one is open.

        May lie in the past (a later gap whose packets have waited already): run it at once.
        """
        gap = self._gap()
        return None if gap is None else gap[1] + self.max_delay

    def handle_timeout(self, now: float) -> None:
        """Give up on every gap whose ``max_delay`` has passed; :meth:`pop` then yields them."""
        while (gap := self._gap()) is not None and now >= gap[1] + self.max_delay:
            self._give_up_first_gap()

    def pop(self) -> Frame | None:
        """The next frame in sequence order, or ``None`` if the next one is not decided yet."""
        exp = self._expected
        if exp is None:
            return None
        held = self._held.pop(exp, None)
        if held is not None:
            self._expected = exp + 1
            self._skipped = (self._skipped << 1) & _MASK
            self._gap_cache = _UNSET if self._held else None  # nothing held: no gap
            self.counters.delivered += 1
            return Packet(exp, held[0])
        if exp >= self._give_up_below:
            return None
        self._expected = exp + 1
        self._skipped = ((self._skipped << 1) | 1) & _MASK
        self._gap_cache = _UNSET
        following = self._held.get(exp + 1)
        if following is not None:
            self.counters.fec += 1
            return Fec(exp, following[0])
        self.counters.lost += 1
        return Lost(exp)
