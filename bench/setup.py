"""Connection setup against headless Chromium: voxwire (both DTLS roles) vs the aiortc echo baseline.

Run inside a loopback-only network namespace:

    scripts/netns-run.sh .venv/bin/python bench/setup.py [--calls 12] [--warmup 1]

Three servers run at once, each in its own process: ``voxwire serve --dtls-role active``,
``voxwire serve --dtls-role passive`` and bench/baseline/aiortc_echo.py. One headless Chromium opens
a fresh tab per connection and the connections are interleaved (A, B, C, A, B, C, ...) so machine
noise hits all servers alike; only one call exists at a time. Two page modes, interleaved too:
``?raw=1`` (the page's default: POST the offer as created, gather in parallel) and
``?raw=1&offer=candidate`` (POST once the first UDP host candidate exists). ``raw=1`` turns off the
microphone's echo cancellation so the echo is not suppressed.

Per connection, from the page's timeline (voxwire/web/index.html), relative to ``offer_sent``:

* ``answer``: -> ``answer_received`` (the page marks it after the response AND its own
  setLocalDescription, so in the default mode it can include Chromium work)
* ``ice``: -> ``ice_connected``; ``dtls``: -> ``dtls_connected`` (target: at most 1/3 of aiortc's)
* ``unmuted``: -> ``track_unmuted`` (the first echoed RTP packet reached the page)
* ``audio``: -> ``first_audio`` (the first audible echoed sample in the page's recorder)
* ``http`` / ``http_ttfb``: the POST's Resource Timing entry (fetch start -> response end; request
  sent -> first response byte)
* ``floor``: when both the answer and Chromium's first local UDP candidate were in: ICE cannot
  start earlier, whatever the server does; ``ice_to_dtls``: the DTLS handshake as the page sees it
* ``direct_post``: one offer POST (recorded Chromium offer) straight from Python after each
  connection, no browser: the server's HTTP + offer -> answer latency

and the server process's own CPU for the setup, read from /proc right before ``start()`` and right
after the page reports ``dtls_connected``: ``cpu_ticks`` is utime+stime of /proc/PID/stat (clock
ticks, 10 ms granularity: only its mean over many calls means much), ``cpu`` the sum over the
process's threads of /proc/PID/task/*/schedstat (ns). Both include the HTTP POST handling, offer ->
answer, ICE, DTLS and whatever the server did in the few ms until the harness saw
``dtls_connected`` (possibly the first echoed packets); setup_cpu.py isolates the transceiver.
``cpu_wait`` is the time the server's threads were runnable but waiting for a CPU in that window
(schedstat's second field): on 2 shared cores the server's occasional 5-20 ms late answers
coincide with it.

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
import struct
import sys
import threading
import time
import urllib.request
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
    "http_ttfb": "request sent -> first response byte (Resource Timing)",
    "direct_post": "offer POST round trip without the browser (urllib, recorded offer)",
    "floor": "POST -> answer and first local candidate both in (browser floor)",
    "ice_to_dtls": "ICE connected -> DTLS connected",
    "wire_http_turnaround": "wire: request body in -> 201 out (server HTTP turnaround)",
    "wire_answer": "wire: POST -> 201 sent",
    "wire_check": "wire: POST -> Chromium's first STUN check",
    "wire_check_response": "wire: POST -> server's first check response",
    "wire_dtls": "wire: **POST -> DTLS handshake's last flight**",
    "wire_echo": "wire: POST -> first RTP from the server",
    "wire_echo_turnaround": "wire: browser's first RTP -> server's first RTP",
    "cpu": "server CPU per setup, schedstat (ms)",
    "cpu_ticks": "server CPU per setup, utime+stime ticks (ms)",
    "cpu_wait": "server runnable but waiting for a CPU during setup (schedstat)",
}
#: The offer POST's Resource Timing entry: fetch start -> response end, request sent -> first byte.
HTTP_TIMING = """() => {
  const all = performance.getEntriesByType("resource").filter((r) => r.name.endsWith("/v1/realtime/calls"));
  const e = all[all.length - 1];
  return e ? { total: e.responseEnd - e.startTime, ttfb: e.responseStart - e.requestStart } : null;
}"""
RECORDED_OFFER = REPO / "tests" / "data" / "sdp" / "chromium_audio_only.sdp"
#: Page modes: POST the offer as created (the page's default) / after the first UDP host candidate.
DEFAULT_QUERIES = ("?raw=1", "?raw=1&offer=candidate")
WIRE = [
    "wire_http_turnaround",
    "wire_answer",
    "wire_check",
    "wire_check_response",
    "wire_dtls",
    "wire_echo",
    "wire_echo_turnaround",
]
DERIVED = ["http", "http_ttfb", "direct_post", "floor", "ice_to_dtls", *WIRE]
TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")
BASELINE = "aiortc"


@dataclass
class Server:
    name: str
    url: str
    pid: int
    http_port: int


# ---- the wire: a packet capture on lo ---------------------------------------------------------------

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # lo shows every packet twice (out and in); keep one copy
SO_TIMESTAMPNS = 35


class Sniffer:
    """Kernel-timestamped copies of the loopback packets (needs CAP_NET_RAW, root in the netns).

    The page's timeline comes from main-thread events, which trail the wire by several ms when
    Chromium is busy; the wire shows when the server's part is actually done."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind(("lo", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.2)
        self.packets: list[tuple[float, bytes]] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, name="sniffer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                data, anc, _, addr = self.sock.recvmsg(2048, 64)
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[2] != PACKET_OUTGOING:
                continue
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, ns = struct.unpack("qq", raw[:16])
                    self.packets.append((sec + ns / 1e9, data))

    def take(self) -> list[tuple[float, bytes]]:
        out, self.packets = self.packets, []
        return out

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


def decode(frame: bytes) -> tuple[str, int, int, bytes] | None:
    """(proto, src port, dst port, payload) of an IPv4 TCP/UDP frame captured on lo."""
    ip = frame[14:]
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    l4 = ip[(ip[0] & 15) * 4 :]
    if ip[9] == 17 and len(l4) >= 8:
        return "udp", *struct.unpack("!HH", l4[:4]), l4[8:]
    if ip[9] == 6 and len(l4) >= 20:
        return "tcp", *struct.unpack("!HH", l4[:4]), l4[(l4[12] >> 4) * 4 :]
    return None


def udp_ports(pid: int) -> set[int]:
    """Local ports of the UDP sockets process `pid` holds (from /proc: fd inodes x /proc/net/udp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("udp", "udp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                if cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def wire_metrics(
    packets: list[tuple[float, bytes]], http_port: int, media_ports: set[int]
) -> dict[str, float | None]:
    """Times on the wire, ms after the offer POST's first TCP segment reached the server's port:

    wire_http_turnaround: the request's last segment (the body) -> the 201 (the server's HTTP
    handling, offer -> answer); wire_answer: the 201 leaves the server; wire_check: Chromium's first STUN Binding request to the
    server; wire_check_response: the server's first success response to it; wire_dtls: the
    handshake's last flight (the second datagram carrying a ChangeCipherSpec, sent by the other side
    than the first); wire_echo: the first RTP packet the server sends; wire_echo_turnaround: the
    browser's first RTP packet -> the server's first (decode, agent, encode, pacing).
    """
    post = answer = check = check_resp = dtls = echo = last_request_segment = first_rtp_in = None
    ccs_from: int | None = None
    for ts, frame in packets:
        d = decode(frame)
        if d is None:
            continue
        proto, sport, dport, payload = d
        if proto == "tcp":
            if post is None and dport == http_port and payload.startswith(b"POST "):
                post = ts
            if post is not None and answer is None and dport == http_port and payload:
                last_request_segment = ts
            elif (
                post is not None
                and answer is None
                and sport == http_port
                and payload.startswith(b"HTTP/1.1 201")
            ):
                answer = ts
            continue
        from_server = sport in media_ports
        if post is None or not payload or not (from_server or dport in media_ports):
            continue
        first = payload[0]
        if first < 4 and len(payload) >= 20:  # STUN
            if check is None and not from_server and payload[:2] == b"\x00\x01":
                check = ts
            elif check_resp is None and from_server and payload[:2] == b"\x01\x01":
                check_resp = ts
        elif 20 <= first <= 63 and dtls is None:  # DTLS: walk the records for a ChangeCipherSpec
            pos, has_ccs = 0, False
            while pos + 13 <= len(payload):
                has_ccs |= payload[pos] == 20
                pos += 13 + int.from_bytes(payload[pos + 11 : pos + 13], "big")
            if has_ccs:
                if ccs_from is None:
                    ccs_from = sport
                elif sport != ccs_from:
                    dtls = ts
        elif 128 <= first <= 191 and len(payload) > 1 and not 192 <= payload[1] <= 223:  # RTP, not RTCP
            if echo is None and from_server:
                echo = ts
            elif first_rtp_in is None and not from_server:
                first_rtp_in = ts

    def rel(t: float | None) -> float | None:
        return None if t is None or post is None else (t - post) * 1e3

    turnaround = (
        None if answer is None or last_request_segment is None else (answer - last_request_segment) * 1e3
    )
    return {
        "wire_http_turnaround": turnaround,
        "wire_answer": rel(answer),
        "wire_check": rel(check),
        "wire_check_response": rel(check_resp),
        "wire_dtls": rel(dtls),
        "wire_echo": rel(echo),
        "wire_echo_turnaround": None if echo is None or first_rtp_in is None else (echo - first_rtp_in) * 1e3,
    }


def cpu_ticks(pid: int) -> int:
    """utime + stime of the process (all threads, dead ones included), in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; fields[0] is field 3 (state)
    return int(fields[11]) + int(fields[12])  # fields 14 and 15


def cpu_ns(pid: int) -> tuple[int, int]:
    """(CPU time, time runnable but waiting for a CPU) of the process's live threads in ns: the first
    two fields of each task's schedstat."""
    run = wait = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = (task / "schedstat").read_text().split()
            run += int(fields[0])
            wait += int(fields[1])
    return run, wait


def wait_event(page: Any, event: str, timeout: float) -> None:
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


def one_connection(
    browser: Any, server: Server, query: str, timeout: float, sniffer: Sniffer | None
) -> dict[str, Any]:
    page = open_page(browser, server.url, query)
    try:
        page.wait_for_timeout(200)  # let the tab settle (page load work is not part of setup)
        if sniffer is not None:
            sniffer.take()
        ticks0, ns0, t0 = cpu_ticks(server.pid), cpu_ns(server.pid), time.monotonic()
        start_call(page)  # resolves once the answer is applied; DTLS usually completes later
        wait_event(page, "dtls_connected", timeout)
        ticks1, ns1, t1 = cpu_ticks(server.pid), cpu_ns(server.pid), time.monotonic()
        media_ports = udp_ports(server.pid)
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
    row["http"] = http and http["total"]
    row["http_ttfb"] = http and http["ttfb"]
    if "ice" in row and "dtls" in row and row["ice"] is not None and row["dtls"] is not None:
        row["ice_to_dtls"] = row["dtls"] - row["ice"]
    if "answer_received" in events and "first_candidate" in events:
        row["floor"] = max(events["answer_received"], events["first_candidate"]) - base
    row["cpu"] = (ns1[0] - ns0[0]) / 1e6
    row["cpu_wait"] = (ns1[1] - ns0[1]) / 1e6
    row["cpu_ticks"] = (ticks1 - ticks0) * TICK_MS
    row["cpu_window_ms"] = (t1 - t0) * 1e3
    row["timeline"] = events
    if sniffer is not None:
        row.update(wire_metrics(sniffer.take(), server.http_port, media_ports))
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
        for metric in [*METRICS, *DERIVED, "cpu", "cpu_ticks", "cpu_wait", "cpu_window_ms"]:
            values = [r[metric] for r in ok if r.get(metric) is not None]
            out[name][metric] = (
                {
                    "median": statistics.median(values),
                    "p90": pct(values, 90),
                    "mean": statistics.fmean(values),
                    "n": len(values),
                }
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
            for m in [*METRICS, *DERIVED, "cpu", "cpu_ticks", "cpu_wait"]
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
    for metric in [
        "direct_post",
        "http_ttfb",
        "http",
        *METRICS,
        "floor",
        "ice_to_dtls",
        *WIRE,
        "cpu",
        "cpu_ticks",
        "cpu_wait",
    ]:
        cells = [LABELS[metric]]
        digits = 2 if metric.startswith("cpu") else 1
        for n in names:
            s = summary[n][metric]
            cells += [fmt(s and s["median"], digits), fmt(s and s["p90"], digits)]
        for n in others:
            r = summary[n].get("ratio_to_" + BASELINE, {}).get(metric)
            cells.append(fmt(r, 2))
        print("| " + " | ".join(cells) + " |")
    means = ", ".join(
        f"{n} {fmt(summary[n]['cpu_ticks'] and summary[n]['cpu_ticks']['mean'], 2)}" for n in names
    )
    print(f"\nmean of the tick-based CPU (10 ms ticks, so the mean is the meaningful figure): {means}")
    for n in others:
        for metric, where in (("dtls", "page timeline"), ("wire_dtls", "wire")):
            ratio = summary[n].get("ratio_to_" + BASELINE, {}).get(metric)
            if ratio is not None:
                verdict = "PASS" if ratio <= 1 / 3 else "FAIL"
                print(
                    f"target POST -> DTLS connected <= 1/3 of {BASELINE} ({where}): {n} {ratio:.2f} -> {verdict}"
                )
    failed = {n: summary[n]["failed"] for n in names if summary[n]["failed"]}
    if failed:
        print(f"failed connections: {failed}")


def direct_post(server: Server, offer: bytes) -> float:
    """ms for one offer POST straight from Python (new TCP connection); the call is then deleted."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(
        urllib.request.Request(
            server.url + "/v1/realtime/calls", data=offer, headers={"Content-Type": "application/sdp"}
        ),
        timeout=10,
    ) as response:
        response.read()
        location = response.headers["Location"]
    elapsed = (time.perf_counter() - t0) * 1e3
    urllib.request.urlopen(urllib.request.Request(server.url + location, method="DELETE"), timeout=10).read()
    return elapsed


def idle_cpu(servers: list[Server], seconds: float) -> dict[str, float]:
    """Each idle server's CPU in ms per second (background work that the per-setup figures include)."""
    before = {s.name: cpu_ns(s.pid)[0] for s in servers}
    time.sleep(seconds)
    return {s.name: (cpu_ns(s.pid)[0] - before[s.name]) / 1e6 / seconds for s in servers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls", type=int, default=12, help="measured connections per server and page mode (default 12)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (default 1)")
    parser.add_argument(
        "--query",
        action="append",
        default=None,
        help="page query, repeatable; each is a page mode measured interleaved with the others "
        f"(default: {' and '.join(DEFAULT_QUERIES)})",
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for each event")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between connections")
    parser.add_argument("--no-wire", action="store_true", help="no packet capture on lo (wire_* metrics)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "setup.json")
    args = parser.parse_args()
    queries = args.query or list(DEFAULT_QUERIES)

    others = [name for name, _ in socket_if_names() if name != "lo"]
    if others:
        print(
            f"warning: this network namespace also has {', '.join(others)}; run through "
            "scripts/netns-run.sh for a loopback-only one",
            file=sys.stderr,
        )

    wav = speech_wav()
    offer = RECORDED_OFFER.read_bytes()
    specs: list[tuple[str, list[str], int]] = []
    for role in ("active", "passive"):
        http = free_port()
        specs.append(
            (
                f"voxwire-{role}",
                voxwire_command(
                    http, free_port(socket.SOCK_DGRAM), "--dtls-role", role, "--log-level", "warning"
                ),
                http,
            )
        )
    http = free_port()
    specs.append((BASELINE, baseline_command(http), http))
    names = [s for s, _, _ in specs]

    rows: dict[str, dict[str, list[dict[str, Any]]]] = {q: {n: [] for n in names} for q in queries}
    with contextlib.ExitStack() as stack:
        servers = []
        for name, cmd, port in specs:
            proc = stack.enter_context(run_server(cmd, port=port))
            servers.append(Server(name, proc.url, proc.proc.pid, port))
        browser = stack.enter_context(launch_browser(wav))
        sniffer = None
        if not args.no_wire:
            try:
                sniffer = Sniffer()
                stack.callback(sniffer.close)
            except PermissionError:
                print(
                    "warning: no packet capture (needs CAP_NET_RAW): wire_* metrics skipped", file=sys.stderr
                )
        for i in range(args.warmup + args.calls):
            for query in queries:
                for server in servers:
                    try:
                        row = one_connection(browser, server, query, args.timeout, sniffer)
                    except Exception as exc:  # a failed connection is counted, not fatal
                        row = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
                        print(f"  {server.name} {query} #{i}: {row['error']}", file=sys.stderr)
                    time.sleep(args.pause)
                    if "error" not in row:  # one direct POST per connection, while nothing else runs
                        row["direct_post"] = direct_post(server, offer)
                        time.sleep(0.05)
                    if i >= args.warmup:
                        row["round"] = i - args.warmup
                        rows[query][server.name].append(row)
            tag = "warm-up" if i < args.warmup else f"{i - args.warmup + 1}/{args.calls}"
            progress = "; ".join(
                f"{q} " + ", ".join(f"{n} {fmt(rows[q][n][-1].get('dtls'))}" for n in names)
                for q in queries
                if i >= args.warmup
            )
            print(f"round {tag}: POST -> DTLS ms: {progress}", file=sys.stderr, flush=True)
        idle = idle_cpu(servers, 2.0)

    version = chromium_version()
    out: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "chromium": version,
        "idle_cpu_ms_per_s": idle,
        "modes": {},
    }
    for query in queries:
        summary = summarize(rows[query])
        print(
            f"\nConnection setup, headless Chromium ({version}), {args.calls} connections per server, "
            f"interleaved, page /{query}; times relative to the offer POST\n"
        )
        print_table(summary, names)
        out["modes"][query] = {"summary": summary, "connections": rows[query]}
    print(
        "\nidle server CPU (ms per s, measured after the run): "
        + ", ".join(f"{n} {v:.2f}" for n, v in idle.items())
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {args.json}")


def socket_if_names() -> list[tuple[str, int]]:
    return [(name, index) for index, name in socket.if_nameindex()]


def chromium_version() -> str:
    import subprocess

    with contextlib.suppress(Exception):
        return subprocess.run(
            ["/usr/bin/chromium", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    return "chromium"


if __name__ == "__main__":
    main()
