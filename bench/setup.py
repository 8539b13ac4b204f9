"""Connection setup against headless Chromium: voxwire (both DTLS roles) vs the aiortc echo baseline.

Run inside a loopback-only network namespace:

    scripts/netns-run.sh .venv/bin/python bench/setup.py [--calls 12] [--warmup 1]

Three servers run at once, each in its own process: ``voxwire serve --dtls-role active``,
``voxwire serve --dtls-role passive`` and bench/baseline/aiortc_echo.py. One headless Chromium opens
a fresh tab per connection and the connections are interleaved (A, B, C, A, B, C, ...) so machine
noise hits all servers alike; only one call exists at a time. Per connection, from the page's
timeline (voxwire/web/index.html, ``?raw=1`` microphone), relative to ``offer_sent`` (the POST):

* ``answer``: -> ``answer_received`` (the HTTP response arrived)
* ``ice``: -> ``ice_connected``
* ``dtls``: -> ``dtls_connected`` (the target: at most one third of aiortc's)
* ``unmuted``: -> ``track_unmuted`` (the first echoed RTP packet reached the page)
* ``audio``: -> ``first_audio`` (the first audible echoed sample in the page's recorder)

and the server process's own CPU for the setup, read from /proc right before ``start()`` and right
after the page reports ``dtls_connected``: ``cpu_ticks`` is utime+stime of /proc/PID/stat (clock
ticks, 10 ms granularity: only its mean over many calls means much), ``cpu`` the sum over the
process's threads of /proc/PID/task/*/schedstat (ns). Both include the HTTP POST handling, offer ->
answer, ICE, DTLS and whatever the server did in the few ms until the harness saw
``dtls_connected`` (possibly the first echoed packet); setup_cpu.py isolates the transceiver.

Prints a Markdown table (median and p90 per metric per server, and voxwire/aiortc ratios of the
medians) and writes everything to bench/out/setup.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.e2e.browser import (  # noqa: E402
    baseline_command,
    free_port,
    launch_browser,
    open_page,
    run_server,
    speech_wav,
    start_call,
    stop_call,
    timeline,
    voxwire_command,
)

METRICS = {  # name -> page timeline event (ms after offer_sent)
    "answer": "answer_received",
    "ice": "ice_connected",
    "dtls": "dtls_connected",
    "unmuted": "track_unmuted",
    "audio": "first_audio",
}
LABELS = {
    "answer": "POST -> answer_received (after setLocalDescription too)",
    "ice": "POST -> ICE connected",
    "dtls": "POST -> DTLS connected",
    "unmuted": "POST -> first echoed packet (track unmuted)",
    "audio": "POST -> first echoed audio (first_audio)",
    "http": "POST -> HTTP response (Resource Timing)",
    "floor": "POST -> answer and first local candidate both in (browser floor)",
    "ice_to_dtls": "ICE connected -> DTLS connected",
    "cpu": "server CPU per setup, schedstat (ms)",
    "cpu_ticks": "server CPU per setup, utime+stime ticks (ms)",
}
#: Duration of the offer POST from the browser's Resource Timing entry (fetch start -> response end).
HTTP_TIMING = """() => {
  const e = performance.getEntriesByType("resource").filter((r) => r.name.endsWith("/v1/realtime/calls"));
  return e.length ? e[e.length - 1].responseEnd - e[e.length - 1].startTime : null;
}"""
#: Page modes: POST the offer as created (the page's default) / after the first UDP host candidate.
DEFAULT_QUERIES = ("?raw=1", "?raw=1&offer=candidate")
DERIVED = ["http", "floor", "ice_to_dtls"]
TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")
BASELINE = "aiortc"


@dataclass
class Server:
    name: str
    url: str
    pid: int


def cpu_ticks(pid: int) -> int:
    """utime + stime of the process (all threads, dead ones included), in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; fields[0] is field 3 (state)
    return int(fields[11]) + int(fields[12])  # fields 14 and 15


def cpu_ns(pid: int) -> int:
    """CPU time of the process's live threads in ns (first field of each task's schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def wait_event(page, event: str, timeout: float) -> None:
    """Wait for `event` in the page timeline, polling every ms (not per animation frame) so the
    harness reacts within a few ms; fail with the page's error if the call failed."""
    page.wait_for_function(
        "([e]) => e in window.voxwire.timeline || window.voxwire.error !== null",
        arg=[event],
        timeout=timeout * 1000,
        polling=1,
    )
    error = page.evaluate("window.voxwire.error")
    if error is not None:
        raise RuntimeError(f"page error before {event}: {error}")


def one_connection(browser, server: Server, query: str, timeout: float) -> dict[str, Any]:
    page = open_page(browser, server.url, query)
    try:
        page.wait_for_timeout(200)  # let the tab settle (page load work is not part of setup)
        ticks0, ns0, t0 = cpu_ticks(server.pid), cpu_ns(server.pid), time.monotonic()
        start_call(page)  # resolves once the answer is applied; DTLS usually completes later
        wait_event(page, "dtls_connected", timeout)
        ticks1, ns1, t1 = cpu_ticks(server.pid), cpu_ns(server.pid), time.monotonic()
        wait_event(page, "first_audio", timeout)
        events = timeline(page)
        http = page.evaluate(HTTP_TIMING)
        stop_call(page)
        page.wait_for_timeout(100)  # let the DELETE go out before the tab closes
    finally:
        page.close()
    base = events["offer_sent"]
    row: dict[str, Any] = {
        name: (events[ev] - base if ev in events else None) for name, ev in METRICS.items()
    }
    row["http"] = http
    if "ice" in row and "dtls" in row and row["ice"] is not None and row["dtls"] is not None:
        row["ice_to_dtls"] = row["dtls"] - row["ice"]
    if "answer_received" in events and "first_candidate" in events:
        row["floor"] = max(events["answer_received"], events["first_candidate"]) - base
    row["cpu"] = (ns1 - ns0) / 1e6
    row["cpu_ticks"] = (ticks1 - ticks0) * TICK_MS
    row["cpu_window_ms"] = (t1 - t0) * 1e3
    row["timeline"] = events
    return row


def pct(values: list[float], q: float) -> float:
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rs in rows.items():
        ok = [r for r in rs if "error" not in r]
        out[name] = {"connections": len(ok), "failed": len(rs) - len(ok)}
        for metric in [*METRICS, *DERIVED, "cpu", "cpu_ticks", "cpu_window_ms"]:
            values = [r[metric] for r in ok if r.get(metric) is not None]
            out[name][metric] = (
                {"median": statistics.median(values), "p90": pct(values, 90), "mean": statistics.fmean(values),
                 "n": len(values)}
                if values
                else None
            )
    for name in rows:
        if name == BASELINE or BASELINE not in out:
            continue
        out[name]["ratio_to_" + BASELINE] = {
            m: (out[name][m]["median"] / out[BASELINE][m]["median"])
            if out[name].get(m) and out[BASELINE].get(m) and out[BASELINE][m]["median"] > 0
            else None
            for m in [*METRICS, *DERIVED, "cpu", "cpu_ticks"]
        }
    return out


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def print_table(summary: dict[str, Any], names: list[str]) -> None:
    others = [n for n in names if n != BASELINE]
    head = ["metric (ms)"]
    for n in names:
        head += [f"{n} median", f"{n} p90"]
    head += [f"{n} / {BASELINE}" for n in others]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for metric in ["http", *METRICS, "floor", "ice_to_dtls", "cpu", "cpu_ticks"]:
        cells = [LABELS[metric]]
        digits = 2 if metric.startswith("cpu") else 1
        for n in names:
            s = summary[n][metric]
            cells += [fmt(s and s["median"], digits), fmt(s and s["p90"], digits)]
        for n in others:
            r = summary[n].get("ratio_to_" + BASELINE, {}).get(metric)
            cells.append(fmt(r, 2))
        print("| " + " | ".join(cells) + " |")
    means = ", ".join(f"{n} {fmt(summary[n]['cpu_ticks'] and summary[n]['cpu_ticks']['mean'], 2)}" for n in names)
    print(f"\nmean of the tick-based CPU (10 ms ticks, so the mean is the meaningful figure): {means}")
    for n in others:
        ratio = summary[n].get("ratio_to_" + BASELINE, {}).get("dtls")
        if ratio is not None:
            verdict = "PASS" if ratio <= 1 / 3 else "FAIL"
            print(f"target POST -> DTLS connected <= 1/3 of {BASELINE}: {n} {ratio:.2f} -> {verdict}")
    failed = {n: summary[n]["failed"] for n in names if summary[n]["failed"]}
    if failed:
        print(f"failed connections: {failed}")


def idle_cpu(servers: list[Server], seconds: float) -> dict[str, float]:
    """Each idle server's CPU in ms per second (background work that the per-setup figures include)."""
    before = {s.name: cpu_ns(s.pid) for s in servers}
    time.sleep(seconds)
    return {s.name: (cpu_ns(s.pid) - before[s.name]) / 1e6 / seconds for s in servers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=12, help="measured connections per server and page mode (default 12)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (default 1)")
    parser.add_argument(
        "--query", action="append", default=None,
        help="page query, repeatable; each is a page mode measured interleaved with the others "
        f"(default: {' and '.join(DEFAULT_QUERIES)})",
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for each event")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between connections")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "setup.json")
    args = parser.parse_args()
    queries = args.query or list(DEFAULT_QUERIES)

    others = [name for name, _ in socket_if_names() if name != "lo"]
    if others:
        print(f"warning: this network namespace also has {', '.join(others)}; run through "
              "scripts/netns-run.sh for a loopback-only one", file=sys.stderr)

    wav = speech_wav()
    specs: list[tuple[str, list[str], int]] = []
    for role in ("active", "passive"):
        http = free_port()
        specs.append((f"voxwire-{role}", voxwire_command(http, free_port(socket.SOCK_DGRAM), "--dtls-role", role,
                                                          "--log-level", "warning"), http))
    http = free_port()
    specs.append((BASELINE, baseline_command(http), http))
    names = [s for s, _, _ in specs]

    rows: dict[str, dict[str, list[dict[str, Any]]]] = {q: {n: [] for n in names} for q in queries}
    with contextlib.ExitStack() as stack:
        servers = []
        for name, cmd, port in specs:
            proc = stack.enter_context(run_server(cmd, port=port))
            servers.append(Server(name, proc.url, proc.proc.pid))
        browser = stack.enter_context(launch_browser(wav))
        for i in range(args.warmup + args.calls):
            for query in queries:
                for server in servers:
                    try:
                        row = one_connection(browser, server, query, args.timeout)
                    except Exception as exc:  # a failed connection is counted, not fatal
                        row = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
                        print(f"  {server.name} {query} #{i}: {row['error']}", file=sys.stderr)
                    if i >= args.warmup:
                        row["round"] = i - args.warmup
                        rows[query][server.name].append(row)
                    time.sleep(args.pause)
            tag = "warm-up" if i < args.warmup else f"{i - args.warmup + 1}/{args.calls}"
            progress = "; ".join(
                f"{q} " + ", ".join(f"{n} {fmt(rows[q][n][-1].get('dtls'))}" for n in names)
                for q in queries if i >= args.warmup
            )
            print(f"round {tag}: POST -> DTLS ms: {progress}", file=sys.stderr, flush=True)
        idle = idle_cpu(servers, 2.0)

    version = chromium_version()
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "chromium": version,
                           "idle_cpu_ms_per_s": idle, "modes": {}}
    for query in queries:
        summary = summarize(rows[query])
        print(f"\nConnection setup, headless Chromium ({version}), {args.calls} connections per server, "
              f"interleaved, page /{query}; times relative to the offer POST\n")
        print_table(summary, names)
        out["modes"][query] = {"summary": summary, "connections": rows[query]}
    print("\nidle server CPU (ms per s, measured after the run): "
          + ", ".join(f"{n} {v:.2f}" for n, v in idle.items()))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {args.json}")


def socket_if_names() -> list[tuple[str, int]]:
    return [(name, index) for index, name in socket.if_nameindex()]


def chromium_version() -> str:
    import subprocess

    with contextlib.suppress(Exception):
        return subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    return "chromium"


if __name__ == "__main__":
    main()
