"""Media time and wallclock, as distinct types that do not mix.

Theory of operation
-------------------
Three clocks meet in RTP, and mixing them up is the classic bug:

* `now`: monotonic seconds (a float), the only clock the sans-IO cores are driven by.
* Wallclock as an `NtpTime`: the 64-bit NTP timestamp of RFC 3550 §4 (seconds since 1900 in the high
  32 bits, fraction in the low 32), used only in RTCP sender reports and the round-trip computation.
  Its middle 32 bits, the "compact" form in units of 1/65536 s, are the LSR and DLSR fields (§6.4.1).
* Media time: RTP timestamp ticks at the stream's clock rate (`MediaClock`), extended to 64 bits by
  `voxwire.wire.rtp.TsUnwrapper`.

The asyncio shell measures the wallclock once at start and passes `Wallclock(offset)`, where
`unix_seconds = now + offset`; the cores then derive NTP time from `now` alone, so virtual-time tests
control every clock.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01), RFC 868 / RFC 5905.
NTP_UNIX_OFFSET = 2_208_988_800
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True, order=True)
class NtpTime:
    """A 64-bit NTP timestamp, fixed point 32.32 seconds since 1900 (RFC 3550 §4)."""

    value: int

    @classmethod
    def from_unix(cls, unix_seconds: float) -> NtpTime:
        return cls(round((unix_seconds + NTP_UNIX_OFFSET) * (1 << 32)) & _MASK64)

    def to_unix(self) -> float:
        return self.value / (1 << 32) - NTP_UNIX_OFFSET

    @property
    def compact(self) -> int:
        """The middle 32 bits, 16.16 seconds: the LSR form of RFC 3550 §6.4.1."""
        return self.value >> 16 & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Wallclock:
    """Maps monotonic `now` to wallclock: unix seconds = now + offset (offset measured once)."""

    offset: float

    def ntp(self, now: float) -> NtpTime:
        return NtpTime.from_unix(now + self.offset)

    def monotonic(self, ntp: NtpTime) -> float:
        """The monotonic `now` at which the wallclock read `ntp`."""
        return ntp.to_unix() - self.offset


def compact_to_seconds(compact: int) -> float:
    """A 16.16 interval (DLSR, or a round trip in compact units) in seconds."""
    return compact / 65536


def seconds_to_compact(seconds: float) -> int:
    """An interval in seconds as 16.16 fixed point, clamped to 0..2**32-1."""
    return min(max(round(seconds * 65536), 0), 0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class MediaClock:
    """RTP timestamp units of one stream: `clock_rate` ticks per second (RFC 3550 §5.1)."""

    clock_rate: int

    def ticks(self, seconds: float) -> int:
        """A duration or a monotonic instant in ticks, rounded to the nearest tick."""
        return round(seconds * self.clock_rate)

    def seconds(self, ticks: int) -> float:
        return ticks / self.clock_rate
