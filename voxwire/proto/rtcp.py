"""RTP stream statistics and RTCP report timing, sans-IO (RFC 3550 §6 and Appendix A).

Theory of operation
-------------------
Three small interceptors, each fed by the session with parsed packets and `now` (monotonic seconds):

* `ReceiverStats`, one per incoming SSRC. `on_rtp` runs the sequence-number validation of RFC 3550
  §A.1 (extended highest sequence, cycles, resync after a large jump, optional probation) and the
  interarrival jitter of §A.8 in timestamp units, with the arrival time converted to the stream's RTP
  clock. `on_sender_report` remembers the peer's last SR. `report_block(now)` produces the reception
  report of §6.4.1: cumulative loss and per-interval fraction lost as in §A.3 (the fraction clamps at 0
  when duplicates outnumber losses), jitter, LSR and DLSR in units of 1/65536 s. Each call closes a
  reporting interval.
* `SenderStats`, one per outgoing SSRC. It counts packets and payload octets, builds the SR (the
  caller supplies the wallclock as `NtpTime` and the RTP timestamp of the same instant), and from a
  report block that echoes one of its recent SRs computes the round trip A - LSR - DLSR (§6.4.1).
* `RtcpScheduler` says when the next compound report is due: the §6.2/§6.3.1 interval, randomized by
  a factor drawn uniformly from 0.5..1.5 with an injected `random.Random`, half an interval before the
  first report. It exposes `poll_timeout()` and `handle_timeout(now)`; it owns no task or timer.

Nothing here reads a clock; the wallclock arrives as `NtpTime` (see `voxwire.proto.clock`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from voxwire.proto.clock import MediaClock, NtpTime, compact_to_seconds, seconds_to_compact
from voxwire.wire.rtcp import ReportBlock, SenderReport
from voxwire.wire.types import Ssrc

RTP_SEQ_MOD = 1 << 16
#: RFC 3550 §A.1 suggested constants: a forward jump of up to MAX_DROPOUT counts as loss, a backward
#: step of up to MAX_MISORDER as reordering; anything else is a suspected restart.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
_LOST_MAX = 0x7FFFFF
_LOST_MIN = -0x800000


class ReceiverStats:
    """Reception statistics for one remote SSRC (RFC 3550 §A.1, §A.3, §A.8).

    `probation` is the number of in-sequence packets required before a new source counts (§A.1 uses
    MIN_SEQUENTIAL = 2). WebRTC media is authenticated by SRTP before it gets here, so the default 0
    accepts the first packet.
    """

    # One instance of each per call (slots: ~50 bytes less each).
    __slots__ = (
        "ssrc",
        "_clock",
        "_min_sequential",
        "_started",
        "_probation",
        "_base_seq",
        "_max_seq",
        "_bad_seq",
        "_cycles",
        "_received",
        "_received_prior",
        "_expected_prior",
        "_transit",
        "_jitter",
        "_lsr",
        "_lsr_at",
        "last_sender_report",
    )

    def __init__(self, ssrc: Ssrc, clock_rate: int, *, probation: int = 0) -> None:
        if clock_rate <= 0 or probation < 0:
            raise ValueError(f"ReceiverStats: clock_rate {clock_rate} / probation {probation} invalid")
        self.ssrc = ssrc
        self._clock = MediaClock(clock_rate)
        self._min_sequential = probation
        self._started = False
        self._probation = 0
        self._base_seq = 0
        self._max_seq = 0
        self._bad_seq = RTP_SEQ_MOD + 1  # so seq == bad_seq is false
        self._cycles = 0
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0
        self._transit: int | None = None
        self._jitter = 0.0
        self._lsr = 0
        self._lsr_at: float | None = None
        self.last_sender_report: SenderReport | None = None

    # -- §A.1 ----------------------------------------------------------------------------------------

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = RTP_SEQ_MOD + 1
        self._cycles = 0
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def _update_seq(self, seq: int) -> bool:
        udelta = (seq - self._max_seq) % RTP_SEQ_MOD
        if self._probation:
            # A new source is valid only after `probation` packets in sequence.
            if seq == (self._max_seq + 1) % RTP_SEQ_MOD:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self._received += 1
                    return True
            else:
                self._probation = self._min_sequential - 1
                self._max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            # In order, with a permissible gap.
            if seq < self._max_seq:
                self._cycles += RTP_SEQ_MOD  # wrapped
            self._max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # A very large jump: accept it only if the next packet follows it (the sender restarted).
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) % RTP_SEQ_MOD
                return False
            self._init_seq(seq)
            self._transit = None  # a restarted sender has a new timestamp base
        # else: a duplicate or a reordered packet; it still counts as received (§A.3).
        self._received += 1
        return True

    def on_rtp(self, seq: int, rtp_ts: int, arrival_now: float) -> bool:
        """Account one packet; False when §A.1 does not count it (probation, suspected restart)."""
        if seq == (self._max_seq + 1) & 0xFFFF and self._started and not self._probation:
            # The next packet in sequence, once the source is valid: §A.1's in-order branch, inlined
            # (it runs per packet). A wrap to 0 starts a new cycle.
            if not seq:
                self._cycles += RTP_SEQ_MOD
            self._max_seq = seq
            self._received += 1
            self._update_jitter(rtp_ts, arrival_now)
            return True
        return self._on_rtp(seq, rtp_ts, arrival_now)

    def _on_rtp(self, seq: int, rtp_ts: int, arrival_now: float) -> bool:
        """:meth:`on_rtp` for any packet (the in-sequence fast path aside)."""
        if not self._started:
            self._started = True
            self._init_seq(seq)
            if self._min_sequential:
                self._max_seq = (seq - 1) % RTP_SEQ_MOD
                self._probation = self._min_sequential
                counted = self._update_seq(seq)
            else:
                self._received = 1
                counted = True
        else:
            counted = self._update_seq(seq)
        if counted:
            self._update_jitter(rtp_ts, arrival_now)
        return counted

    # -- §A.8 ----------------------------------------------------------------------------------------

    def _update_jitter(self, rtp_ts: int, arrival_now: float) -> None:
        transit = self._clock.ticks(arrival_now) - rtp_ts
        if self._transit is not None:
            # Difference of transits modulo 2**32, so RTP timestamp wrap does not matter.
            d = ((transit - self._transit + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            self._jitter += (abs(d) - self._jitter) / 16
        self._transit = transit

    # -- §A.3 and §6.4.1 -----------------------------------------------------------------------------

    def on_sender_report(self, sr: SenderReport, now: float) -> None:
        """Remember the peer's SR for the LSR/DLSR of our next report block."""
        if sr.ssrc != self.ssrc:
            return
        self.last_sender_report = sr
        self._lsr = NtpTime(sr.ntp_timestamp).compact
        self._lsr_at = now

    @property
    def extended_highest_sequence(self) -> int:
        return self._cycles + self._max_seq

    @property
    def received(self) -> int:
        return self._received

    @property
    def expected(self) -> int:
        return self.extended_highest_sequence - self._base_seq + 1 if self._received else 0

    @property
    def cumulative_lost(self) -> int:
        """Expected minus received, clamped to the signed 24-bit field (§A.3)."""
        return min(max(self.expected - self._received, _LOST_MIN), _LOST_MAX)

    @property
    def jitter(self) -> float:
        """Interarrival jitter in RTP timestamp units (§6.4.1, §A.8)."""
        return self._jitter

    @property
    def jitter_seconds(self) -> float:
        return self._jitter / self._clock.clock_rate

    def report_block(self, now: float) -> ReportBlock:
        """The reception report for this source; closes the current fraction-lost interval (§A.3)."""
        fraction = 0
        if self._received:
            expected = self.expected
            expected_interval = expected - self._expected_prior
            received_interval = self._received - self._received_prior
            self._expected_prior = expected
            self._received_prior = self._received
            lost_interval = expected_interval - received_interval
            if expected_interval > 0 and lost_interval > 0:
                fraction = (lost_interval << 8) // expected_interval
        dlsr = 0 if self._lsr_at is None else seconds_to_compact(now - self._lsr_at)
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=self.cumulative_lost,
            highest_sequence=self.extended_highest_sequence & 0xFFFFFFFF if self._received else 0,
            jitter=int(self._jitter) & 0xFFFFFFFF,
            lsr=self._lsr,
            dlsr=dlsr,
        )


class SenderStats:
    """Sender-side counters, SR construction and round-trip time for one local SSRC (RFC 3550 §6.4.1).

    Only report blocks whose LSR matches one of the last `history` SRs built here yield a round trip;
    anything else (no SR seen yet, LSR = 0, a stale or forged echo) is ignored.
    """

    __slots__ = (
        "ssrc",
        "_clock",
        "packets_sent",
        "octets_sent",
        "_sent_lsr",
        "_history",
        "rtt",
        "last_report",
    )

    def __init__(self, ssrc: Ssrc, clock_rate: int, *, history: int = 8) -> None:
        if clock_rate <= 0 or history < 1:
            raise ValueError(f"SenderStats: clock_rate {clock_rate} / history {history} invalid")
        self.ssrc = ssrc
        self._clock = MediaClock(clock_rate)
        self.packets_sent = 0
        self.octets_sent = 0
        self._sent_lsr: list[int] = []  # the last `history` (a list: smaller than a deque per call)
        self._history = history
        #: Latest round trip in seconds, None until a report block echoes one of our SRs.
        self.rtt: float | None = None
        #: The peer's latest report block about this SSRC.
        self.last_report: ReportBlock | None = None

    def on_rtp_sent(self, payload_size: int) -> None:
        """Count one sent packet; the SR counts payload octets only, no header or padding (§6.4.1)."""
        self.packets_sent += 1
        self.octets_sent += payload_size

    def sender_report(
        self,
        now: float,
        wallclock_ntp: NtpTime,
        rtp_ts_now: int,
        reports: tuple[ReportBlock, ...] = (),
    ) -> SenderReport:
        """An SR stamped `wallclock_ntp`; `rtp_ts_now` is the RTP timestamp of that same instant."""
        self._sent_lsr.append(wallclock_ntp.compact)
        if len(self._sent_lsr) > self._history:
            del self._sent_lsr[0]
        return SenderReport(
            ssrc=self.ssrc,
            ntp_timestamp=wallclock_ntp.value,
            rtp_timestamp=rtp_ts_now & 0xFFFFFFFF,
            packet_count=self.packets_sent & 0xFFFFFFFF,  # counters wrap (§6.4.1)
            octet_count=self.octets_sent & 0xFFFFFFFF,
            reports=reports,
        )

    def on_report_block(self, block: ReportBlock, now: float, wallclock_ntp: NtpTime) -> float | None:
        """Take the peer's report about us; return the new round trip in seconds, if it gives one.

        RTT = A - LSR - DLSR in 1/65536 s, A being the arrival wallclock (§6.4.1). A slightly negative
        result (the peer rounds DLSR) counts as 0.
        """
        if block.ssrc != self.ssrc:
            return None
        self.last_report = block
        if block.lsr == 0 or block.lsr not in self._sent_lsr:
            return None
        rtt = (wallclock_ntp.compact - block.lsr - block.dlsr) & 0xFFFFFFFF
        if rtt >= 0x80000000:  # negative
            rtt = 0
        self.rtt = compact_to_seconds(rtt)
        return self.rtt

    @property
    def remote_jitter_seconds(self) -> float | None:
        """The peer's reported interarrival jitter for our stream, in seconds."""
        if self.last_report is None:
            return None
        return self._clock.seconds(self.last_report.jitter)


@dataclass(frozen=True, slots=True)
class RtcpConfig:
    """RTCP timing for one session.

    `interval` is the minimum report interval Tmin of RFC 3550 §6.2, which suggests 5 s; WebRTC
    stacks use 1..5 s (libwebrtc: 5 s for audio). A session's default is
    :attr:`~voxwire.proto.session.SessionConfig.rtcp_interval`. `rtcp_bandwidth`, in octets per
    second, turns on the bandwidth-scaled interval of §6.3.1 (average compound size times members over
    bandwidth) whenever that exceeds `interval`; None keeps the interval fixed.
    """

    interval: float = 1.0
    rtcp_bandwidth: float | None = None
    members: int = 2

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ValueError(f"RtcpConfig.interval must be positive, got {self.interval}")
        if self.rtcp_bandwidth is not None and not self.rtcp_bandwidth > 0:
            raise ValueError(f"RtcpConfig.rtcp_bandwidth must be positive, got {self.rtcp_bandwidth}")
        if self.members < 2:
            raise ValueError(f"RtcpConfig.members must be at least 2, got {self.members}")


class RtcpScheduler:
    """When to send the next compound RTCP report (RFC 3550 §6.2, §6.3).

    Every member is treated as a sender (two-party voice: both sides talk), so the sender/receiver
    bandwidth split of §6.3.1 does not apply. Reconsideration (§6.3.3) and its e - 3/2 compensation
    factor are not used: with two members the group size never changes.
    """

    __slots__ = ("_config", "_rng", "avg_rtcp_size", "_next")

    #: RFC 3550 §6.3.2: the initial average compound size is a guess at the first packet's size.
    INITIAL_AVG_SIZE = 100.0

    def __init__(self, config: RtcpConfig, rng: random.Random, now: float) -> None:
        self._config = config
        self._rng = rng
        self.avg_rtcp_size = self.INITIAL_AVG_SIZE
        self._next = now + self._randomized(initial=True)

    def _deterministic_interval(self, initial: bool) -> float:
        t_min = self._config.interval / 2 if initial else self._config.interval  # §6.2, §A.7
        if self._config.rtcp_bandwidth is None:
            return t_min
        return max(t_min, self.avg_rtcp_size * self._config.members / self._config.rtcp_bandwidth)

    def _randomized(self, initial: bool) -> float:
        # §6.3.1: multiply by a random factor uniformly distributed in [0.5, 1.5] to avoid synchrony.
        return self._deterministic_interval(initial) * self._rng.uniform(0.5, 1.5)

    def poll_timeout(self) -> float:
        """The monotonic time at which the next report is due."""
        return self._next

    def handle_timeout(self, now: float) -> bool:
        """True when a report is due at `now`; the next one is then scheduled from `now`."""
        if now < self._next:
            return False
        self._next = now + self._randomized(initial=False)
        return True

    def on_compound(self, size: int) -> None:
        """Fold a sent or received compound's size (with UDP/IP headers, §6.2) into the average (§6.3.3)."""
        self.avg_rtcp_size += (size - self.avg_rtcp_size) / 16
