"""``voxwire loadgen``: run N synthetic calls against a server and report percentiles across calls.

    voxwire loadgen --url http://127.0.0.1:8080 --calls 100 --ramp 20 --duration 30 --json out.json

Calls are added at ``--ramp`` per second; once all are up, the frames sent during ``--duration``
seconds are measured (each call's echo of them: loss, lateness, delay, jitter), then every call is
hung up. Setup times are per call from its POST. The exit status is 1 when a call failed to
connect or never echoed. Works against any server that answers ``POST /v1/realtime/calls`` with an
SDP answer (voxwire directly or through its relay, the aiortc baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

from voxwire.loadgen.core import (
    LoadConfig,
    LoadGen,
    across_calls,
    call_summary,
    load_frames,
)

LABELS = {
    "setup_answer_ms": "POST -> answer (ms)",
    "setup_ice_ms": "POST -> first ICE check response (ms)",
    "setup_keys_ms": "POST -> SRTP keys (DTLS done) (ms)",
    "setup_first_echo_ms": "POST -> first echoed packet (ms)",
    "setup_channel_ms": "POST -> data channel open (ms)",
    "lost": "frames lost per call",
    "late": "frames late (> window's min delay + threshold) per call",
    "delay_p50_ms": "echo delay, median per call (ms)",
    "delay_p99_ms": "echo delay, p99 per call (ms)",
    "jitter_ms": "RFC 3550 jitter at the end, per call (ms)",
    "max_jitter_ms": "RFC 3550 jitter, max per call (ms)",
}


def add_loadgen_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``loadgen`` subcommand (its options also read ``VOXWIRE_<OPTION>`` when the parser
    class supports it, like every voxwire subcommand)."""
    p = subparsers.add_parser(
        "loadgen",
        help="many synthetic WebRTC echo calls in one process: setup, loss, delay, jitter",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add = getattr(p, "add_env_option", None)

    def option(flag: str, *, help: str, default: Any = None, type: Any = str, **kw: Any) -> None:
        if add is not None:
            add(flag, help=help, default=default, type=type, **kw)
        else:
            p.add_argument(flag, help=f"{help} [default: {default}]", default=default, type=type, **kw)

    option("--url", default="http://127.0.0.1:8080", help="the server's base URL (POST {url}/v1/realtime/calls)")
    option("--calls", default=10, type=int, help="concurrent calls")
    option("--duration", default=10.0, type=float, help="seconds measured once every call is up")
    option("--ramp", default=20.0, type=float, help="new calls per second while ramping up")
    option("--token", default=None, help="bearer token (API key or client secret)")
    option("--json", default=None, help="write the full report (per call and across calls) to this file, '-' for stdout")
    p.add_argument("--data-channel", action="store_true", help="offer a data channel and open 'oai-events' on it")
    option("--session", default=None, help="Realtime session configuration (JSON) sent with each offer, "
           "e.g. '{\"turn_detection\": null}'")
    option("--audio", default="auto", help="auto, espeak, synthetic or a 48 kHz mono 16-bit WAV")
    option("--bind", default="127.0.0.1", help="local address of the calls' UDP sockets")
    option("--late-ms", default=20.0, type=float, help="a frame is late when its echo delay exceeds the call's "
           "smallest by more than this")
    option("--connect-timeout", default=10.0, type=float, help="seconds a call may take to connect")
    parser: argparse.ArgumentParser = p
    return parser


def raise_fd_limit(needed: int) -> None:
    """One socket per call: lift the soft open-file limit towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 256
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def config_from(opts: argparse.Namespace) -> LoadConfig:
    session = json.loads(opts.session) if opts.session else None
    if session is not None and not isinstance(session, dict):
        raise SystemExit("voxwire loadgen: --session must be a JSON object")
    return LoadConfig(
        url=opts.url,
        token=opts.token,
        data_channel=opts.data_channel,
        session=session,
        bind=opts.bind,
        connect_timeout=opts.connect_timeout,
        late_threshold=opts.late_ms / 1000,
    )


async def run_loadgen(opts: argparse.Namespace) -> dict[str, Any]:
    """Run the load, print the table (and the JSON if asked); returns the report."""
    if opts.calls < 1 or opts.duration <= 0 or opts.ramp <= 0:
        raise SystemExit("voxwire loadgen: --calls, --duration and --ramp must be positive")
    raise_fd_limit(opts.calls)
    frames, what = load_frames(opts.audio)
    config = config_from(opts)
    gen = LoadGen(config, frames)
    await gen.start()
    try:
        started = time.monotonic()
        await gen.ramp(opts.calls, opts.ramp)
        ramp_seconds = time.monotonic() - started
        opened = gen.mark()
        t_open = time.monotonic()
        await asyncio.sleep(opts.duration)
        closed = {id(c): c.frames_sent for c in gen.calls}
        await asyncio.sleep(config.grace)
        window = gen.window(opened, t_open, closed)
        rows = []
        for call in gen.calls:
            row = call_summary(call, opened.get(id(call), 0), closed.get(id(call)))
            rows.append(row)
        rows += [call_summary(c) for c in gen.failed]
        never_echoed = sum(1 for c in gen.calls if c.timeline.first_echo is None)
    finally:
        await gen.stop()
    report = {
        "url": opts.url,
        "audio": what,
        "frames_in_loop": len(frames),
        "calls": opts.calls,
        "connected": len(gen.calls),
        "failed": len(gen.failed),
        "errors": sorted({c.error for c in gen.failed if c.error}),
        "never_echoed": never_echoed,
        "ramp_seconds": round(ramp_seconds, 3),
        "duration": opts.duration,
        "window": {
            "calls": window.calls,
            "sent": window.sent,
            "lost": window.lost,
            "late": window.late,
            "glitched_calls": window.glitched_calls,
            "max_late_ms": round(window.max_late_ms, 3),
            "generator_late_ms": round(window.sched_late_ms, 3),
        },
        "across_calls": across_calls(rows),
        "per_call": rows,
    }
    print_report(report)
    if opts.json:
        text = json.dumps(report, indent=1)
        if opts.json == "-":
            print(text)
        else:
            with open(opts.json, "w") as f:
                f.write(text + "\n")
    return report


def _fmt(x: float | None) -> str:
    return "-" if x is None else (f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}")


def print_report(report: dict[str, Any]) -> None:
    w = report["window"]
    print(
        f"\n{report['connected']}/{report['calls']} calls connected ({report['failed']} failed"
        f"{': ' + '; '.join(report['errors']) if report['errors'] else ''}), ramp {report['ramp_seconds']:.1f} s, "
        f"audio: {report['audio']}\n"
        f"window {report['duration']:.0f} s: {w['sent']} frames sent by {w['calls']} calls, {w['lost']} lost, "
        f"{w['late']} late, {w['glitched_calls']} calls glitched; worst lateness {w['max_late_ms']:.1f} ms; "
        f"generator's own schedule late by up to {w['generator_late_ms']:.1f} ms\n"
    )
    print("| per call | p50 | p90 | p99 | max |")
    print("|---|---:|---:|---:|---:|")
    for metric, q in report["across_calls"].items():
        print(f"| {LABELS.get(metric, metric)} | {_fmt(q['p50'])} | {_fmt(q['p90'])} | {_fmt(q['p99'])} | "
              f"{_fmt(q['max'])} |")
    sys.stdout.flush()


def exit_status(report: dict[str, Any]) -> int:
    """0 when every call connected and echoed, else 1."""
    ok = report["failed"] == 0 and report["never_echoed"] == 0 and report["connected"] == report["calls"]
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voxwire")
    sub = parser.add_subparsers(dest="command", required=True)
    add_loadgen_parser(sub)
    opts = parser.parse_args(["loadgen", *(sys.argv[1:] if argv is None else argv)])
    try:
        import uvloop

        report = uvloop.run(run_loadgen(opts))
    except KeyboardInterrupt:
        return 130
    return exit_status(report)
