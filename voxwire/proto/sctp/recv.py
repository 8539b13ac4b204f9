"""The receive side: TSN tracking, SACKs, reassembly and ordered delivery, with bounded memory.

Theory of operation
-------------------
TSNs are unwrapped against the cumulative TSN (the highest TSN below which everything arrived,
RFC 9260 §6.2). Arrivals above it are remembered in a set, from which SACK gap blocks are built
(§3.3.4); a repeated TSN is reported once as a duplicate (§6.2). SACK timing follows §6.2: at the
latest after ``sack_delay`` or every second packet carrying DATA, and at once when there are gaps
or duplicates, when a DATA chunk asks for it (the I bit, RFC 7053), or after a FORWARD TSN.

Reassembly works on DATA chunks, whose fragments carry consecutive TSNs (§6.9). A fragment is
stored by TSN; a message is complete when a run of consecutive, matching fragments goes from a B
to an E flag. The run is only walked when a fragment can complete something (it is an E, or the
next TSN is already here), so a message arriving in order costs one walk. Complete unordered
messages are delivered at once; ordered ones wait per stream for their SSN (§6.5, §6.6).

Memory bound. Everything held (fragments and complete ordered messages waiting for an earlier SSN)
counts against ``receive_window``, the a_rwnd we advertise. A DATA chunk that would exceed it is
dropped unacknowledged (§6.2 allows dropping when there is no buffer) -- except the chunk at
cumulative TSN + 1, which is always accepted so the association can always progress. Held bytes
beyond twice the window can only come from a misbehaving peer and fail the association. When the
window is full we also look for what can never complete and drop it, counted: a message already
larger than ``max_message_size`` (RFC 8831 §6.6: the sender must not exceed the peer's
max-message-size) and orphan fragments whose beginning was dropped or skipped.

FORWARD TSN (RFC 3758 §3.6) moves the cumulative TSN forward, drops fragments at or below it,
delivers complete ordered messages the skip releases, and moves each listed stream past the
skipped SSN. An incoming stream reset (RFC 6525 §5.2.2) restarts a stream's SSNs at 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from voxwire.proto.sctp.common import SSN_MOD, TSN_MOD, MessageReceived, SctpConfig, unwrap
from voxwire.wire.sctp import DataChunk, ForwardTsnChunk, SackChunk

__all__ = ["Receiver"]

#: How far ahead of the cumulative TSN a DATA chunk may be (far more than any window allows).
_MAX_AHEAD = 1 << 16
_MAX_GAP_BLOCKS = 128
_MAX_DUPLICATES = 32


@dataclass(slots=True)
class _Frag:
    stream_id: int
    ssn: int
    ppid: int
    data: bytes
    unordered: bool
    beginning: bool
    end: bool


def _continues(prev: _Frag, nxt: _Frag) -> bool:
    """``nxt`` may be the fragment right after ``prev`` in one message."""
    return (
        not prev.end
        and not nxt.beginning
        and prev.stream_id == nxt.stream_id
        and prev.unordered == nxt.unordered
        and (prev.unordered or prev.ssn == nxt.ssn)
    )


class Receiver:
    """Inbound DATA of one association."""

    def __init__(self, config: SctpConfig, peer_initial_tsn: int, max_message_size: int) -> None:
        self._window = config.receive_window
        self._sack_delay = config.sack_delay
        self._max_message = max_message_size
        self.cum_tsn = peer_initial_tsn - 1
        self._above: set[int] = set()
        self._frags: dict[int, _Frag] = {}
        self._ready: dict[int, dict[int, MessageReceived | None]] = {}
        self._next_ssn: dict[int, int] = {}
        self._held = 0
        self._dups: list[int] = []
        self._data_packets = 0
        self.sack_now = False
        self.sack_deadline: float | None = None
        self.delivered: list[MessageReceived] = []
        self.overflow = False
        self.counters = {
            "duplicates": 0,
            "window_drops": 0,
            "oversized_messages": 0,
            "orphans": 0,
            "too_far": 0,
        }

    @property
    def a_rwnd(self) -> int:
        return max(0, self._window - self._held)

    @property
    def held(self) -> int:
        return self._held

    # ----------------------------------------------------------------------------------------------
    # DATA

    def on_data(self, chunk: DataChunk) -> None:
        tsn = unwrap(chunk.tsn, self.cum_tsn, TSN_MOD)
        if tsn <= self.cum_tsn or tsn in self._above:
            self.counters["duplicates"] += 1
            if len(self._dups) < _MAX_DUPLICATES:
                self._dups.append(chunk.tsn)
            self.sack_now = True
            return
        if tsn > self.cum_tsn + _MAX_AHEAD:
            self.counters["too_far"] += 1
            return
        size = len(chunk.data)
        if tsn != self.cum_tsn + 1 and self._held + size > self._window:
            self._collect_garbage()
            if self._held + size > self._window:
                self.counters["window_drops"] += 1
                self.sack_now = True
                return
        if chunk.immediate:
            self.sack_now = True
        frag = _Frag(
            chunk.stream_id, chunk.ssn, chunk.ppid, chunk.data, chunk.unordered, chunk.beginning, chunk.end
        )
        orphan = not frag.beginning and tsn - 1 <= self.cum_tsn and (tsn - 1) not in self._frags
        self._mark_received(tsn)
        if orphan:  # its predecessor was consumed or skipped: this can never complete
            self.counters["orphans"] += 1
            return
        self._frags[tsn] = frag
        self._held += size
        if frag.end or (tsn + 1) in self._frags:
            self._try_complete(tsn)
        if self._held > 2 * self._window:
            self.overflow = True

    def _mark_received(self, tsn: int) -> None:
        self._above.add(tsn)
        self._advance()

    def _advance(self) -> None:
        while self.cum_tsn + 1 in self._above:
            self.cum_tsn += 1
            self._above.discard(self.cum_tsn)
        if self._above:
            self.sack_now = True  # §6.2: report gaps at once

    def _try_complete(self, tsn: int) -> None:
        frags = self._frags
        start = tsn
        while not frags[start].beginning:
            prev = frags.get(start - 1)
            if prev is None or not _continues(prev, frags[start]):
                return
            start -= 1
        end = tsn
        while not frags[end].end:
            nxt = frags.get(end + 1)
            if nxt is None or not _continues(frags[end], nxt):
                return
            end += 1
        parts = [frags.pop(t) for t in range(start, end + 1)]
        data = b"".join(p.data for p in parts)
        self._held -= len(data)
        first = parts[0]
        message: MessageReceived | None = MessageReceived(first.stream_id, first.ppid, data)
        if len(data) > self._max_message:
            self.counters["oversized_messages"] += 1
            message = None
        if first.unordered:
            if message is not None:
                self.delivered.append(message)
        else:
            self._queue_ordered(first.stream_id, first.ssn, message)

    def _queue_ordered(self, stream_id: int, ssn: int, message: MessageReceived | None) -> None:
        expected = self._next_ssn.get(stream_id, 0)
        ahead = (ssn - expected) % SSN_MOD
        if ahead >= SSN_MOD // 2:
            return  # behind: already delivered or skipped
        ready = self._ready.setdefault(stream_id, {})
        ready[ssn] = message
        if message is not None:
            self._held += len(message.data)
        self._deliver_ready(stream_id)

    def _deliver_ready(self, stream_id: int) -> None:
        ready = self._ready.get(stream_id)
        if not ready:
            return
        expected = self._next_ssn.get(stream_id, 0)
        while expected in ready:
            message = ready.pop(expected)
            if message is not None:
                self._held -= len(message.data)
                self.delivered.append(message)
            expected = (expected + 1) % SSN_MOD
        self._next_ssn[stream_id] = expected

    def _collect_garbage(self) -> None:
        """Drop what can never complete: oversized partial messages and orphan runs (cold path)."""
        runs: list[list[int]] = []
        for tsn in sorted(self._frags):
            if runs and runs[-1][-1] == tsn - 1 and _continues(self._frags[tsn - 1], self._frags[tsn]):
                runs[-1].append(tsn)
            else:
                runs.append([tsn])
        for run in runs:
            first = self._frags[run[0]]
            size = sum(len(self._frags[t].data) for t in run)
            orphan = not first.beginning and run[0] - 1 <= self.cum_tsn and (run[0] - 1) not in self._frags
            oversized = first.beginning and size > self._max_message
            if not (orphan or oversized):
                continue
            self.counters["orphans" if orphan else "oversized_messages"] += 1
            for t in run:
                self._held -= len(self._frags.pop(t).data)
            if oversized and not first.unordered:
                self._queue_ordered(first.stream_id, first.ssn, None)  # the SSN is consumed

    # ----------------------------------------------------------------------------------------------
    # FORWARD TSN (RFC 3758 §3.6) and stream reset (RFC 6525 §5.2.2)

    def on_forward_tsn(self, chunk: ForwardTsnChunk) -> None:
        self.sack_now = True
        new = unwrap(chunk.new_cumulative_tsn, self.cum_tsn, TSN_MOD)
        if new > self.cum_tsn + _MAX_AHEAD:
            return
        # Everything at or below ``new`` that is still in pieces belongs to abandoned messages,
        # even when we already hold every TSN up to it (the sender skipped a message's unsent end).
        for tsn in [t for t in self._frags if t <= new]:
            self._held -= len(self._frags.pop(tsn).data)
        if new > self.cum_tsn:
            self._above = {t for t in self._above if t > new}
            self.cum_tsn = new
            self._advance()
        for stream_id, ssn in chunk.streams:
            ready = self._ready.get(stream_id, {})
            expected = self._next_ssn.get(stream_id, 0)
            last = (ssn - expected) % SSN_MOD
            if last >= SSN_MOD // 2:
                continue  # already past it
            for k in range(last + 1):
                s = (expected + k) % SSN_MOD
                message = ready.pop(s, None)
                if message is not None:
                    self._held -= len(message.data)
                    self.delivered.append(message)  # complete messages the skip releases
            self._next_ssn[stream_id] = (ssn + 1) % SSN_MOD
            self._deliver_ready(stream_id)
        self._collect_garbage()

    def reset_streams(self, stream_ids: Iterable[int] | None) -> None:
        """Restart the SSNs of ``stream_ids`` (None: every stream) at 0."""
        if stream_ids is None:
            stream_ids = list(set(self._next_ssn) | set(self._ready))
        for sid in stream_ids:
            self._next_ssn[sid] = 0
            for message in self._ready.pop(sid, {}).values():
                if message is not None:
                    self._held -= len(message.data)

    # ----------------------------------------------------------------------------------------------
    # SACK (RFC 9260 §6.2)

    def packet_done(self, had_data: bool, now: float) -> None:
        """After a whole packet: decide when the next SACK is due."""
        if not had_data:
            return
        self._data_packets += 1
        if self._data_packets >= 2:
            self.sack_now = True
        elif self.sack_deadline is None:
            self.sack_deadline = now + self._sack_delay

    @property
    def sack_pending(self) -> bool:
        return self.sack_now or self.sack_deadline is not None

    def make_sack(self) -> SackChunk:
        """The SACK that describes what we hold now (call :meth:`sack_sent` once it is sent)."""
        gaps: list[tuple[int, int]] = []
        for tsn in sorted(self._above):
            offset = tsn - self.cum_tsn
            if gaps and gaps[-1][1] == offset - 1:
                gaps[-1] = (gaps[-1][0], offset)
            elif len(gaps) < _MAX_GAP_BLOCKS and offset <= 0xFFFF:
                gaps.append((offset, offset))
            else:
                break
        return SackChunk(self.cum_tsn % TSN_MOD, self.a_rwnd, tuple(gaps), tuple(self._dups))

    def sack_sent(self) -> None:
        self._dups.clear()
        self._data_packets = 0
        self.sack_now = False
        self.sack_deadline = None
