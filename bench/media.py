"""Per-call cost of the media path: Opus encode/decode/FEC/PLC, resampling, reorder, pacing.

Run: ``.venv/bin/python bench/media.py [--calls N]``. Prints a Markdown table of microseconds per
call (median and p90 over N individually timed calls) for 20 ms frames of a voice-like signal,
to back the figures in DESIGN.md and README.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from voxwire.media.opus import RESTRICTED_LOWDELAY, OpusDecoder, OpusEncoder, libopus_version
from voxwire.media.pacer import Pacer
from voxwire.media.reorder import ReorderBuffer
from voxwire.media.resample import Resampler

RATE = 48000
FRAME = 960


def voice_like(seconds: float, rate: int = RATE) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 2.3 * t)) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (x / np.abs(x).max() * 12000).astype(np.int16)


_overhead_ns = 0  # cost of timing an empty call, subtracted from every sample


def measure(
    calls: int, setup: Callable[[int], None] | None, call: Callable[[int], object]
) -> tuple[float, float]:
    """Median and p90 in µs of ``call(i)``; ``setup(i)`` runs untimed before each call."""
    samples = []
    clock = time.perf_counter_ns
    for i in range(calls // 10):  # warm-up
        if setup:
            setup(i)
        call(i)
    for i in range(calls):
        if setup:
            setup(i)
        t0 = clock()
        call(i)
        samples.append(clock() - t0)
    samples.sort()
    samples = [max(0, s - _overhead_ns) for s in samples]
    return (
        statistics.median(samples) / 1000,
        statistics.fmean(samples) / 1000,
        samples[int(len(samples) * 0.9)] / 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per row (default 2000)")
    n = parser.parse_args().calls

    global _overhead_ns
    _overhead_ns = round(measure(n * 5, None, lambda i: None)[0] * 1000)
    pcm = voice_like(2.0)
    frames = [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]
    k = len(frames)
    rows: list[tuple[str, tuple[float, float, float]]] = []

    for complexity in (0, 1, 5, 9):
        enc = OpusEncoder(complexity=complexity)
        rows.append(
            (
                f"opus encode 20 ms, complexity {complexity}",
                measure(n, None, lambda i, e=enc: e.encode(frames[i % k])),
            )
        )
    for complexity in (1, 5):  # voxwire serve --opus-mode lowdelay: CELT only, no FEC
        enc = OpusEncoder(application=RESTRICTED_LOWDELAY, inband_fec=False, complexity=complexity)
        rows.append(
            (
                f"opus encode 20 ms, CELT only (lowdelay), complexity {complexity}",
                measure(n, None, lambda i, e=enc: e.encode(frames[i % k])),
            )
        )
    enc = OpusEncoder()
    packets = [enc.encode(f) for f in frames]
    dec = OpusDecoder()
    rows.append(("opus decode 20 ms", measure(n, None, lambda i: dec.decode(packets[i % k]))))
    dec24 = OpusDecoder(sample_rate=24000)
    rows.append(
        ("opus decode 20 ms straight to 24 kHz", measure(n, None, lambda i: dec24.decode(packets[i % k])))
    )
    # FEC and PLC after a normally decoded frame: a single loss, the realistic case.
    rows.append(
        (
            "opus decode_fec 20 ms",
            measure(n, lambda i: dec.decode(packets[i % k]), lambda i: dec.decode_fec(packets[(i + 1) % k])),
        )
    )
    rows.append(
        (
            "opus conceal (PLC) 20 ms",
            measure(n, lambda i: dec.decode(packets[i % k]), lambda i: dec.conceal()),
        )
    )

    for src, dst in ((48000, 24000), (24000, 48000), (48000, 16000), (22050, 48000)):
        for quality in ("MQ", "HQ"):
            r = Resampler(src, dst, quality=quality)
            chunk = voice_like(0.02, src)
            rows.append(
                (
                    f"resample {src // 1000}k -> {dst // 1000}k 20 ms, {quality}",
                    measure(n, None, lambda i, r=r, c=chunk: r.process(c)),
                )
            )

    buf = ReorderBuffer()
    payload = packets[0]

    def reorder_step(i: int) -> None:
        buf.push(i & 0xFFFF, payload, i * 0.02)
        while buf.pop() is not None:
            pass
        buf.poll_timeout()

    rows.append(("reorder push + pop + poll_timeout, in order", measure(n, None, reorder_step)))

    pacer: Pacer[bytes] = Pacer(capacity=n * 2)
    pacer.start(0.0)

    def pace(i: int) -> None:
        pacer.handle_timeout(i * 0.02)
        pacer.poll_timeout()

    rows.append(
        ("pacer push + handle_timeout + poll_timeout", measure(n, lambda i: pacer.push(payload), pace))
    )

    print(
        f"{libopus_version()}, {n} calls per row, µs of thread CPU time per call "
        f"(timer overhead of {_overhead_ns / 1000:.1f} µs subtracted)\n"
    )
    width = max(len(name) for name, _ in rows)
    print(f"| {'operation':<{width}} | median |   mean |    p90 |")
    print(f"|{'-' * (width + 2)}|-------:|-------:|-------:|")
    for name, (median, mean, p90) in rows:
        print(f"| {name:<{width}} | {median:6.1f} | {mean:6.1f} | {p90:6.1f} |")


if __name__ == "__main__":
    main()
