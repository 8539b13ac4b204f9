"""Data channels against headless Chromium: voxwire without and with SNAP vs the aiortc baseline.

Run inside a loopback-only network namespace:

    scripts/netns-run.sh .venv/bin/python bench/datachannel.py [--rounds 10] [--warmup 1]

Two servers in their own processes, ``voxwire serve`` and bench/baseline/aiortc_echo.py (which
echoes every data channel message), and two headless Chromiums, one plain and one with
``--force-fieldtrials=WebRTC-Sctp-Snap/Enabled/`` (its offers carry ``a=sctp-init``; voxwire then
answers with its own INIT and the association is up with DTLS; aiortc ignores it, so it is only
measured with the plain browser). Three configurations are interleaved connection by connection
(voxwire, voxwire+snap, aiortc, voxwire, ...) so machine noise hits them alike; one call at a time.

Per connection the page (``?dc=1``) opens ``oai-events`` and, in the same tick, an "echo" channel
(both before the offer); when "echo" opens it sends a 1000-byte ping. Page hooks (DC_HOOKS in
tests/e2e/test_chromium_datachannels.py) time every channel event with performance.now():

* ``ready``: DTLS transport "connected" -> ``oai-events`` open at the page (the issue's metric).
  Both are main-thread events; Chromium posts them from its network thread, so a handshake that
  finished between the two posts can look shorter than it was: the wire figures below are exact.
* ``first_message``: DTLS connected -> the first message from the server at the page (voxwire:
  ``session.created`` or the ping's echo, whichever came first; aiortc: the ping's echo): the channel
  is usable both ways.
* ``rtt_100`` / ``rtt_64k``: round trips of 100 B and 64 KiB binary messages on "echo", one at a
  time (every sample of every connection pooled; p50 and p99).
* ``throughput``: 256 KiB binary messages on "echo" with at most ``--window`` in flight; MB/s
  (10^6 bytes) of payload echoed back (every byte crosses the association twice).
* ``wire_first_message``: on the wire (a kernel-timestamped capture on lo, as in bench/setup.py),
  the DTLS handshake's last flight -> the first DTLS application-data datagram of >= 400 bytes from
  the server (session.created, ~820 B, or the ping's echo; DCEP and SCTP control packets are
  smaller). ``wire_flights``: how many client -> server flights of DTLS application data (SCTP)
  went out in between: the round trips the channel cost after DTLS (SNAP: 1, the DCEP OPENs; the
  INIT handshake: 3). Split into ``wire_client_first`` (DTLS last flight -> the client's first SCTP
  datagram: Chromium's own delay) and ``wire_turnaround`` (the client's last datagram before it ->
  the server's message: the server's work).
* ``udp_drops``: datagrams the kernel dropped for a full socket receive buffer during the
  connection (/proc/net/snmp RcvbufErrors of the namespace: both ends).

Target (issue 3): with SNAP the channel is usable within one round trip of DTLS completion, checked
on the wire as ``wire_flights`` <= 1. Also printed, for information: ``ready`` against the median
100 B round trip. With SNAP no packet crosses the wire between DTLS connected and channel open, so
on loopback (round trips of ~0.4 ms) that comparison measures Chromium's thread hops, not SCTP.

Prints Markdown tables (median and p90, or p50 and p99 for round trips; ratios to aiortc and SNAP
to no SNAP) and writes everything to bench/out/datachannel.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.setup import Sniffer, chromium_version, decode, pct, udp_ports  # noqa: E402
from tests.e2e.browser import (  # noqa: E402
    CHROMIUM,
    baseline_command,
    chromium_flags,
    free_port,
    open_page,
    run_server,
    speech_wav,
    start_call,
    stop_call,
    voxwire_command,
)
from tests.e2e.test_chromium_datachannels import DC_HOOKS, SNAP_TRIAL  # noqa: E402

PING_BYTES = 1000
BIG_DATAGRAM = 400  # a server datagram this large carries a message (session.created: ~820 B)
BASELINE = "aiortc"
CONFIGS = ("voxwire", "voxwire+snap", BASELINE)  # name -> (server, browser) below

#: On top of DC_HOOKS: an "echo" channel created right after oai-events (same tick, before the
#: offer) that sends a ping when it opens; round-trip and throughput loops on it.
BENCH_HOOKS = r"""
(() => {
  if (dc.bench) return;
  dc.bench = true;
  const tracked = RTCPeerConnection.prototype.createDataChannel;
  RTCPeerConnection.prototype.createDataChannel = function (label, options) {
    const ch = tracked.call(this, label, options);
    if (label === "oai-events" && !dc.channels.echo) {
      const echo = tracked.call(this, "echo");
      echo.addEventListener("open", () => { dc.pingSent = performance.now(); echo.send(dc.make("binary", PING_BYTES)); });
    }
    return ch;
  };

  dc.rtt = async (label, size, count) => {
    const ch = dc.channels[label];
    const msg = dc.make("binary", size);
    const out = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      ch.send(msg);
      const got = await dc.next(label, 10000);
      if (got.data.byteLength !== size) throw new Error(`echo of ${size} B came back as ${got.data.byteLength} B`);
      out.push(got.t - t0);
    }
    return out;
  };

  dc.throughput = async (label, size, count, window) => {
    const ch = dc.channels[label];
    const msg = dc.make("binary", size);
    let sent = 0;
    const t0 = performance.now();
    for (; sent < Math.min(window, count); sent++) ch.send(msg);
    for (let got = 0; got < count; got++) {
      const m = await dc.next(label, 20000);
      if (m.data.byteLength !== size) throw new Error(`echo of ${size} B came back as ${m.data.byteLength} B`);
      if (sent < count) { ch.send(msg); sent++; }
    }
    return { bytes: size * count, ms: performance.now() - t0 };
  };
})();
""".replace("PING_BYTES", str(PING_BYTES))

SETUP_METRICS = [
    "dtls",
    "ready",
    "echo_ready",
    "first_message",
    "wire_first_message",
    "wire_flights",
    "wire_client_first",
    "wire_turnaround",
]
LABELS = {
    "dtls": "POST -> DTLS connected (page), ms",
    "ready": "**DTLS connected -> oai-events open (page)**, ms",
    "echo_ready": "DTLS connected -> echo channel open (page), ms",
    "first_message": "DTLS connected -> first message from the server (page), ms",
    "wire_first_message": "wire: DTLS last flight -> first server message, ms",
    "wire_flights": "wire: **client SCTP flights before the first server message**",
    "wire_client_first": "wire: DTLS last flight -> client's first SCTP datagram, ms",
    "wire_turnaround": "wire: client's last datagram -> server's first message, ms",
    "udp_drops": "UDP receive-buffer drops per connection (both ends)",
    "rtt_100": "100 B round trip, ms",
    "rtt_64k": "64 KiB round trip, ms",
    "throughput": "echo throughput, 256 KiB messages, MB/s",
}


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped for a full socket receive buffer, in this network namespace."""
    rows = [
        line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")
    ]
    return int(dict(zip(rows[0][1:], rows[1][1:], strict=True))["RcvbufErrors"])


def wire_setup(packets: list[tuple[float, bytes]], media_ports: set[int]) -> dict[str, float | None]:
    """See the module docstring: DTLS last flight -> first big server datagram, and the client's
    application-data flights in between; also DTLS last flight -> the client's first SCTP datagram
    and the server's turnaround (the client's last datagram before it -> the big datagram)."""
    dtls_done = None
    ccs_from: int | None = None
    flights = 0
    last_from_client = False
    client_first = client_last = None
    for ts, frame in packets:
        d = decode(frame)
        if d is None or d[0] != "udp":
            continue
        _, sport, dport, payload = d
        from_server = sport in media_ports
        if not payload or not (from_server or dport in media_ports) or not 20 <= payload[0] <= 63:
            continue  # not DTLS (STUN, RTP, RTCP)
        if dtls_done is None:  # the handshake's last flight: the second ChangeCipherSpec, other side
            pos, has_ccs = 0, False
            while pos + 13 <= len(payload):
                has_ccs |= payload[pos] == 20
                pos += 13 + int.from_bytes(payload[pos + 11 : pos + 13], "big")
            if has_ccs:
                if ccs_from is None:
                    ccs_from = sport
                elif sport != ccs_from:
                    dtls_done = ts
            continue
        if payload[0] != 23:  # application data only (SCTP)
            continue
        if from_server:
            if len(payload) >= BIG_DATAGRAM:
                return {
                    "wire_first_message": (ts - dtls_done) * 1e3,
                    "wire_flights": float(flights),
                    "wire_client_first": None if client_first is None else (client_first - dtls_done) * 1e3,
                    "wire_turnaround": None if client_last is None else (ts - client_last) * 1e3,
                }
            last_from_client = False
        else:
            if not last_from_client:
                flights += 1
            last_from_client = True
            client_first = ts if client_first is None else client_first
            client_last = ts
    return {}


@contextlib.contextmanager
def browsers(fake_audio: Path, *field_trials: list[str]):
    """One headless Chromium per field-trial list (playwright allows one sync driver per process,
    so tests/e2e/browser.launch_browser cannot be entered twice)."""
    from playwright.sync_api import sync_playwright

    with contextlib.ExitStack() as stack:
        p = stack.enter_context(sync_playwright())
        contexts = []
        for trials in field_trials:
            profile = stack.enter_context(tempfile.TemporaryDirectory(prefix="voxwire-chromium-"))
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=chromium_flags(fake_audio, trials)
            )
            stack.callback(context.close)
            contexts.append(context)
        yield contexts


def wait_until(page: Any, condition: str, timeout: float) -> None:
    page.wait_for_function(
        f"() => ({condition}) || window.voxwire.error !== null", timeout=timeout * 1000, polling=1
    )
    error = page.evaluate("window.voxwire.error")
    if error is not None:
        raise RuntimeError(f"page error: {error}")


def one_connection(
    browser: Any, server: Any, media_pid: int, args: argparse.Namespace, sniffer
) -> dict[str, Any]:
    page = open_page(browser, server.url, "?dc=1")
    try:
        page.evaluate(DC_HOOKS)
        page.evaluate(BENCH_HOOKS)
        page.wait_for_timeout(150)  # let the tab settle
        if sniffer is not None:
            sniffer.take()
        drops = udp_rcvbuf_errors()
        start_call(page)
        wait_until(page, "dc.inbox.echo && dc.inbox.echo.length > 0", args.timeout)
        media_ports = udp_ports(media_pid)
        t = page.evaluate(
            """() => ({dtls: dc.dtls, late: dc.dtlsLate, opened: dc.opened, timeline: window.voxwire.timeline,
                       first: {oai: dc.inbox['oai-events'].length ? dc.inbox['oai-events'][0].t : null,
                               echo: dc.inbox.echo[0].t}})"""
        )
        page.evaluate("dc.inbox.echo.shift()")  # the ping's echo
        firsts = [x for x in (t["first"]["oai"], t["first"]["echo"]) if x is not None]
        row: dict[str, Any] = {
            "ready": t["opened"]["oai-events"] - t["dtls"],
            "echo_ready": t["opened"]["echo"] - t["dtls"],
            "first_message": min(firsts) - t["dtls"],
            "dtls_seen_late": t["late"],
            "dtls": t["timeline"].get("dtls_connected", math.nan) - t["timeline"]["offer_sent"],
            "timeline": t["timeline"],
        }
        if sniffer is not None:
            row.update(wire_setup(sniffer.take(), media_ports))
        row["rtt_100"] = page.evaluate(f"dc.rtt('echo', 100, {args.small})")
        row["rtt_64k"] = page.evaluate(f"dc.rtt('echo', 65536, {args.large})")
        tp = page.evaluate(f"dc.throughput('echo', 262144, {args.stream}, {args.window})")
        row["throughput"] = tp["bytes"] / 1e6 / (tp["ms"] / 1e3)
        row["udp_drops"] = udp_rcvbuf_errors() - drops
        stop_call(page)
        page.wait_for_timeout(100)  # let the DELETE go out
    finally:
        page.close()
    return row


def summarize(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rs in rows.items():
        ok = [r for r in rs if "error" not in r]
        s: dict[str, Any] = {"connections": len(ok), "failed": len(rs) - len(ok)}
        for metric in [*SETUP_METRICS, "throughput", "udp_drops"]:
            values = [r[metric] for r in ok if r.get(metric) is not None and not math.isnan(r[metric])]
            s[metric] = (
                {"median": statistics.median(values), "p90": pct(values, 90), "n": len(values)}
                if values
                else None
            )
        for metric in ("rtt_100", "rtt_64k"):
            values = [x for r in ok for x in r.get(metric, [])]
            s[metric] = (
                {"median": statistics.median(values), "p99": pct(values, 99), "n": len(values)}
                if values
                else None
            )
        out[name] = s
    return out


def ratio(summary: dict[str, Any], a: str, b: str, metric: str, stat: str = "median") -> float | None:
    x, y = summary.get(a, {}).get(metric), summary.get(b, {}).get(metric)
    if not x or not y or not y[stat]:
        return None
    return x[stat] / y[stat]


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def print_tables(summary: dict[str, Any]) -> dict[str, Any]:
    names = list(CONFIGS)
    head = ["metric"] + [f"{n} median" for n in names] + [f"{n} p90" for n in names]
    head += ["voxwire / aiortc", "voxwire+snap / aiortc", "snap / no snap"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for metric in [*SETUP_METRICS, "throughput", "udp_drops"]:
        cells = [LABELS[metric]]
        cells += [fmt(summary[n][metric] and summary[n][metric]["median"]) for n in names]
        cells += [fmt(summary[n][metric] and summary[n][metric]["p90"]) for n in names]
        cells += [
            fmt(ratio(summary, "voxwire", BASELINE, metric)),
            fmt(ratio(summary, "voxwire+snap", BASELINE, metric)),
            fmt(ratio(summary, "voxwire+snap", "voxwire", metric)),
        ]
        print("| " + " | ".join(cells) + " |")
    print()
    head = ["round trip (ms)"] + [f"{n} {q}" for n in names for q in ("p50", "p99")]
    head += ["voxwire / aiortc p50", "voxwire / aiortc p99"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for metric in ("rtt_100", "rtt_64k"):
        cells = [LABELS[metric] + f" (n={summary['voxwire'][metric] and summary['voxwire'][metric]['n']})"]
        for n in names:
            s = summary[n][metric]
            cells += [fmt(s and s["median"]), fmt(s and s["p99"])]
        cells += [
            fmt(ratio(summary, "voxwire", BASELINE, metric)),
            fmt(ratio(summary, "voxwire", BASELINE, metric, "p99")),
        ]
        print("| " + " | ".join(cells) + " |")

    def median(name: str, metric: str) -> float | None:
        return summary[name][metric] and summary[name][metric]["median"]

    flights, ready, rtt = (
        median("voxwire+snap", "wire_flights"),
        median("voxwire+snap", "ready"),
        median("voxwire+snap", "rtt_100"),
    )
    verdict = {
        "wire_flights": flights,
        "wire_flights_without_snap": median("voxwire", "wire_flights"),
        "ready_ms": ready,
        "rtt_100_p50_ms": rtt,
        "pass": flights is not None and flights <= 1,
        "page_within_rtt": ready is not None and rtt is not None and ready <= rtt,
    }
    print("\ntarget: with SNAP the channel is usable within one round trip of DTLS completion")
    print(
        f"  wire: the server's first message came after {fmt(flights, 0)} client SCTP flight(s) "
        f"(without SNAP {fmt(verdict['wire_flights_without_snap'], 0)}) -> "
        f"{'PASS' if verdict['pass'] else 'FAIL'}"
    )
    print(
        f"  page (informational: with SNAP nothing crosses the wire between the two events, so this is "
        f"Chromium's thread hops): DTLS connected -> oai-events open {fmt(ready)} ms vs a 100 B round trip "
        f"of {fmt(rtt)} ms -> {'within' if verdict['page_within_rtt'] else 'over'}"
    )
    failed = {n: summary[n]["failed"] for n in names if summary[n]["failed"]}
    if failed:
        print(f"failed connections: {failed}")
    return verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="measured connections per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first")
    parser.add_argument("--small", type=int, default=100, help="100 B round trips per connection")
    parser.add_argument("--large", type=int, default=30, help="64 KiB round trips per connection")
    parser.add_argument("--stream", type=int, default=24, help="256 KiB messages per throughput run")
    parser.add_argument("--window", type=int, default=4, help="256 KiB messages in flight")
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between connections")
    parser.add_argument("--no-wire", action="store_true", help="no packet capture on lo")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "datachannel.json")
    args = parser.parse_args()

    wav = speech_wav()
    vox_http, base_http = free_port(), free_port()
    rows: dict[str, list[dict[str, Any]]] = {n: [] for n in CONFIGS}
    with contextlib.ExitStack() as stack:
        vox = stack.enter_context(
            run_server(
                voxwire_command(vox_http, free_port(socket.SOCK_DGRAM), "--log-level", "warning"),
                port=vox_http,
            )
        )
        base = stack.enter_context(run_server(baseline_command(base_http), port=base_http))
        plain, snap = stack.enter_context(browsers(wav, [], [SNAP_TRIAL]))
        configs = {"voxwire": (vox, plain), "voxwire+snap": (vox, snap), BASELINE: (base, plain)}
        sniffer = None
        if not args.no_wire:
            try:
                sniffer = Sniffer()
                stack.callback(sniffer.close)
            except PermissionError:
                print("warning: no packet capture (needs CAP_NET_RAW): wire_* skipped", file=sys.stderr)
        for i in range(args.warmup + args.rounds):
            for name in CONFIGS:
                server, browser = configs[name]
                try:
                    row = one_connection(browser, server, server.proc.pid, args, sniffer)
                except Exception as exc:  # a failed connection is counted, not fatal
                    row = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
                    print(f"  {name} #{i}: {row['error']}", file=sys.stderr)
                if i >= args.warmup:
                    row["round"] = i - args.warmup
                    rows[name].append(row)
                time.sleep(args.pause)
            if i >= args.warmup:
                progress = ", ".join(
                    f"{n} ready {fmt(rows[n][-1].get('ready'))} ms / {fmt(rows[n][-1].get('throughput'), 1)} MB/s"
                    for n in CONFIGS
                )
                print(f"round {i - args.warmup + 1}/{args.rounds}: {progress}", file=sys.stderr, flush=True)

    version = chromium_version()
    summary = summarize(rows)
    print(
        f"\nData channels, headless Chromium ({version}), {args.rounds} connections per configuration, "
        f"interleaved; SNAP = --force-fieldtrials={SNAP_TRIAL}\n"
    )
    verdict = print_tables(summary)
    out = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "chromium": version,
        "summary": summary,
        "target": verdict,
        "connections": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
