"""What the load generator measured, as numbers: one window's stats across calls
(:class:`WindowStats`), one call's summary (:func:`call_summary`), and percentiles across calls
(:func:`across_calls`). Times in the summaries are milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voxwire.loadgen.client import LoadClient


@dataclass
class WindowStats:
    """What happened to the frames sent in one window, across the calls alive for all of it."""

    start: float
    end: float
    calls: int
    sent: int = 0
    lost: int = 0
    late: int = 0
    glitched_calls: int = 0
    delays_ms: list[float] = field(default_factory=list)  # per call: median delay
    p99_delay_ms: list[float] = field(default_factory=list)  # per call
    max_late_ms: float = 0.0  # worst (delay - call's min delay) over the window
    sched_late_ms: float = 0.0  # worst lateness of the generator's own schedule

    @property
    def glitch_free(self) -> bool:
        return self.lost == 0 and self.late == 0


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def call_summary(call: LoadClient, first: int = 0, last: int | None = None) -> dict[str, Any]:
    """One call's numbers (times in ms)."""
    t = call.timeline

    def ms(x: float | None) -> float | None:
        return None if x is None else round(1000 * (x - t.post), 3)

    sent, lost, late, delays = call.window(first, call.frames_sent if last is None else last)
    delays.sort()
    return {
        "error": call.error,
        "setup_answer_ms": ms(t.answer),
        "setup_ice_ms": ms(t.ice),
        "setup_keys_ms": ms(t.keys),
        "setup_first_echo_ms": ms(t.first_echo),
        "setup_channel_ms": ms(t.channel_open),
        "sent": call.frames_sent,
        "received": call.echoes,
        "measured": sent,
        "lost": lost,
        "late": late,
        "delay_p50_ms": round(1000 * delays[len(delays) // 2], 3) if delays else None,
        "delay_p99_ms": round(1000 * delays[min(len(delays) - 1, int(0.99 * len(delays)))], 3) if delays else None,
        "delay_min_ms": round(1000 * call.min_delay, 3) if delays else None,
        "jitter_ms": round(1000 * call.jitter, 3),
        "max_jitter_ms": round(1000 * call.max_jitter, 3),
        "unmatched": call.unmatched,
        "duplicates": call.duplicates,
        "srtp_failures": call.srtp_failures,
        "resyncs": call.resyncs,
        "channel_messages": call.messages,
    }


SUMMARY_METRICS = (
    "setup_answer_ms",
    "setup_ice_ms",
    "setup_keys_ms",
    "setup_first_echo_ms",
    "setup_channel_ms",
    "lost",
    "late",
    "delay_p50_ms",
    "delay_p99_ms",
    "jitter_ms",
    "max_jitter_ms",
)


def across_calls(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """p50 / p90 / p99 / max across calls of each per-call metric."""
    out: dict[str, dict[str, float | None]] = {}
    for metric in SUMMARY_METRICS:
        values = [r[metric] for r in rows if r.get(metric) is not None]
        if not values:
            continue
        out[metric] = {
            "p50": percentile(values, 50),
            "p90": percentile(values, 90),
            "p99": percentile(values, 99),
            "max": max(values),
        }
    return out
