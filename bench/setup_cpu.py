"""Server CPU per session setup, in process, on virtual time: no sockets, no HTTP, no browser.

Run: ``.venv/bin/python bench/setup_cpu.py [--sessions 200] [--json bench/out/setup_cpu.json]``.

Each session is a fresh :class:`~voxwire.transceiver.service.Transceiver` (echo agent, one shared
certificate) and a :class:`~voxwire.testing.client.TestClient` on a
:class:`~voxwire.testing.link.Network` (20 ms one-way delay, no loss). The server's endpoint is
registered on the network behind a timing proxy, so only the server's calls are timed
(``time.thread_time_ns``, i.e. CPU of this thread, ns resolution):

* ``create_call``: what the HTTP handler costs beyond HTTP: offer parse, session and call
  (agent, Opus codecs, resamplers) construction, answer build. Broken down by wrapping the names the
  transceiver module calls.
* ``setup``: from the first STUN check reaching the endpoint to SRTP keys in place, plus the drain
  of the datagrams that the keying datagram produced (as passive, our Finished flight). It is the sum
  of ``handle_datagram``, ``handle_timeout`` and ``poll_transmit`` calls in that window;
  ``poll_timeout`` is reported apart (the network polls it more often than the asyncio shell, which
  calls it once per drain).

It also counts server timer firings during setup: ``handle_timeout`` calls the network made because
the endpoint's deadline was due, and DTLS retransmissions. DESIGN.md: none should fire on the happy
path. The smallest headroom between "now" and the endpoint's next deadline during setup is reported
too (what would have to go wrong for a timer to fire).

Both DTLS roles are measured, interleaved session by session (active, passive, active, ...).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import voxwire.transceiver.service as service  # noqa: E402
from voxwire.agent.echo import EchoAgent  # noqa: E402
from voxwire.proto.certificate import Certificate  # noqa: E402
from voxwire.proto.session import State  # noqa: E402
from voxwire.testing.client import TestClient  # noqa: E402
from voxwire.testing.link import Link, LinkConfig, Network  # noqa: E402
from voxwire.transceiver.service import Transceiver, TransceiverConfig  # noqa: E402
from voxwire.wire.demux import classify  # noqa: E402

SERVER = ("192.0.2.1", 3478)
CLIENT = ("192.0.2.10", 50000)
CHROMIUM_OFFER = REPO / "tests" / "data" / "sdp" / "chromium_audio_only.sdp"
clock = time.thread_time_ns


def pct(values: list[float], q: float) -> float:
    """Percentile with linear interpolation (numpy's default), q in [0, 100]."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class Stopwatch:
    """Accumulates CPU ns of wrapped callables into named buckets while enabled."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = {}
        self.enabled = False

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kw: Any) -> Any:
            if not self.enabled:
                return fn(*args, **kw)
            t0 = clock()
            try:
                return fn(*args, **kw)
            finally:
                self.ns[name] = self.ns.get(name, 0) + clock() - t0

        return timed


class TimedEndpoint:
    """Stands in for the transceiver's endpoint on the network and times the server's work in the
    setup window: first handle_datagram -> the drain after SRTP keys are in place."""

    def __init__(self, endpoint: Any, is_keyed: Callable[[], bool]) -> None:
        self.endpoint = endpoint
        self.is_keyed = is_keyed
        self.state = "before"  # before -> window -> draining -> after
        self.ns = {"handle_datagram": 0, "handle_timeout": 0, "poll_transmit": 0, "poll_timeout": 0}
        self.calls = dict.fromkeys(self.ns, 0)
        self.timer_firings = 0
        self.timer_firings_with_output = 0
        self.min_headroom: float | None = None  # smallest (next deadline - now) seen in the window
        self.started_at: float | None = None
        self.keyed_at: float | None = None
        self._pending_output = False
        self.datagrams: list[tuple[str, int]] = []  # (RFC 7983 kind, CPU ns) per datagram in the window

    def _account(self, name: str, t0: int) -> None:
        if self.state in ("window", "draining"):
            self.ns[name] += clock() - t0
            self.calls[name] += 1

    def handle_datagram(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if self.state == "before":
            self.state = "window"
            self.started_at = now
        t0 = clock()
        self.endpoint.handle_datagram(data, addr, now)
        if self.state == "window":
            self.datagrams.append((classify(data).name, clock() - t0))
        self._account("handle_datagram", t0)
        self._check_keyed(now)

    def handle_timeout(self, now: float) -> None:
        t0 = clock()
        self.endpoint.handle_timeout(now)
        self._account("handle_timeout", t0)
        if self.state in ("window", "draining"):
            self.timer_firings += 1
            self._pending_output = True
        self._check_keyed(now)

    def poll_transmit(self) -> tuple[bytes, tuple[str, int]] | None:
        t0 = clock()
        out: tuple[bytes, tuple[str, int]] | None = self.endpoint.poll_transmit()
        self._account("poll_transmit", t0)
        if out is not None and self._pending_output:
            self.timer_firings_with_output += 1
            self._pending_output = False
        if out is None:
            self._pending_output = False
            if self.state == "draining":
                self.state = "after"
        return out

    def poll_timeout(self) -> float | None:
        t0 = clock()
        deadline = self.endpoint.poll_timeout()
        self._account("poll_timeout", t0)
        return cast("float | None", deadline)

    def note_headroom(self, now: float, deadline: float | None) -> None:
        if self.state == "window" and deadline is not None:
            gap = deadline - now
            self.min_headroom = gap if self.min_headroom is None else min(self.min_headroom, gap)

    def _check_keyed(self, now: float) -> None:
        if self.state == "window" and self.is_keyed():
            self.state = "draining"
            self.keyed_at = now


def one_session(
    role: str, certs: tuple[Certificate, Certificate], seed: int, delay: float, watch: Stopwatch
) -> dict[str, Any]:
    net = Network(Link(LinkConfig(delay=delay), seed=seed))
    config = TransceiverConfig(advertised=(SERVER,), preferred_setup=role)
    agent = EchoAgent()
    agent.start = watch.wrap("agent", agent.start)  # type: ignore[method-assign]
    transceiver = Transceiver(config, agent, certificate=certs[0])
    client = TestClient(certs[1], net.now, rng=random.Random(seed))
    offer = client.offer()
    start = net.now

    gc.collect()
    watch.ns.clear()
    watch.enabled = True
    t0 = clock()
    call, answer = transceiver.create_call(offer, net.now)
    create_ns = clock() - t0
    watch.enabled = False
    parts = dict(watch.ns)

    client.answer(answer, net.now)
    proxy = TimedEndpoint(transceiver.endpoint, lambda: call.session.state is State.CONNECTED)
    net.add(SERVER, proxy)
    net.add(CLIENT, client)
    gc.collect()
    give_up = net.now + 30.0
    while proxy.state != "after":
        if not net.step():
            raise AssertionError(f"{role}: nothing pending before the setup completed")
        proxy.note_headroom(net.now, transceiver.endpoint.poll_timeout())
        if net.now > give_up:
            raise AssertionError(f"{role}: no SRTP keys after 30 s of virtual time")
    # Let the client finish too (passive: our Finished is still on the link), untimed.
    net.run_until(lambda: client.srtp is not None, timeout=5)
    assert call.session.state is State.CONNECTED, call.session.state
    assert proxy.started_at is not None and proxy.keyed_at is not None
    rtx = call.session.dtls.counters.retransmits
    return {
        "role": role,
        "create_call_ms": create_ns / 1e6,
        "create_parts_ms": {k: v / 1e6 for k, v in parts.items()},
        "setup_ms": sum(proxy.ns[k] for k in ("handle_datagram", "handle_timeout", "poll_transmit")) / 1e6,
        "setup_parts_ms": {k: v / 1e6 for k, v in proxy.ns.items()},
        "setup_calls": dict(proxy.calls),
        "datagrams_ms": [(kind, ns / 1e6) for kind, ns in proxy.datagrams],
        "timer_firings": proxy.timer_firings,
        "timer_firings_with_output": proxy.timer_firings_with_output,
        "dtls_retransmits": rtx,
        "min_headroom_s": proxy.min_headroom,
        "virtual_setup_ms": (proxy.keyed_at - proxy.started_at) * 1e3,
        # Server view: its first check in -> its keys. Client view: its first check out -> its keys.
        "round_trips": (proxy.keyed_at - proxy.started_at) / (2 * delay),
        "client_round_trips": ((client.connected_at or math.nan) - start) / (2 * delay),
    }


def chromium_create_call(certs: tuple[Certificate, Certificate], offer: str) -> float:
    """CPU ms of create_call on a recorded Chromium offer (bigger than the test client's)."""
    config = TransceiverConfig(advertised=(SERVER,))
    transceiver = Transceiver(config, EchoAgent(), certificate=certs[0])
    gc.collect()
    t0 = clock()
    transceiver.create_call(offer, 1000.0)
    return (clock() - t0) / 1e6


def install_create_call_probes(watch: Stopwatch) -> None:
    """Time the pieces create_call is made of by wrapping the names it looks up in its module."""
    for name in ("parse_offer", "build_answer", "Session", "Call", "ice_string"):
        setattr(service, name, watch.wrap(name, getattr(service, name)))


def summarize(rows: list[dict[str, Any]], chromium: list[float]) -> dict[str, Any]:
    def stats(values: list[float]) -> dict[str, float]:
        return {
            "median": statistics.median(values),
            "p90": pct(values, 90),
            "mean": statistics.fmean(values),
            "min": min(values),
            "max": max(values),
        }

    out: dict[str, Any] = {}
    for role in ("active", "passive"):
        rs = [r for r in rows if r["role"] == role]
        if not rs:
            continue
        out[role] = {
            "sessions": len(rs),
            "setup_ms": stats([r["setup_ms"] for r in rs]),
            "setup_parts_ms": {
                k: stats([r["setup_parts_ms"][k] for r in rs]) for k in rs[0]["setup_parts_ms"]
            },
            "setup_calls_median": {
                k: statistics.median(r["setup_calls"][k] for r in rs) for k in rs[0]["setup_calls"]
            },
            "datagram_kinds": [k for k, _ in rs[0]["datagrams_ms"]],
            "datagrams_ms": [
                stats([r["datagrams_ms"][i][1] for r in rs if len(r["datagrams_ms"]) > i])
                for i in range(max(len(r["datagrams_ms"]) for r in rs))
            ],
            "create_call_ms": stats([r["create_call_ms"] for r in rs]),
            "create_parts_ms": {
                k: stats([r["create_parts_ms"].get(k, 0.0) for r in rs]) for k in rs[0]["create_parts_ms"]
            },
            "timer_firings_total": sum(r["timer_firings"] for r in rs),
            "timer_firings_with_output_total": sum(r["timer_firings_with_output"] for r in rs),
            "dtls_retransmits_total": sum(r["dtls_retransmits"] for r in rs),
            "min_headroom_s": min(r["min_headroom_s"] for r in rs if r["min_headroom_s"] is not None),
            "round_trips_median": statistics.median(r["round_trips"] for r in rs),
            "client_round_trips_median": statistics.median(r["client_round_trips"] for r in rs),
        }
    if chromium:
        out["create_call_chromium_offer_ms"] = stats(chromium)
    return out


def print_table(summary: dict[str, Any], args: argparse.Namespace) -> None:
    roles = [r for r in ("active", "passive") if r in summary]
    head = "| metric (server CPU, ms) | " + " | ".join(f"{r} median | {r} p90" for r in roles) + " |"
    print(head)
    print("|" + "---|" * (1 + 2 * len(roles)))

    def row(label: str, *path: str | int) -> None:
        cells = []
        for r in roles:
            node: Any = summary[r]
            for key in path:
                node = node[key] if isinstance(key, str) or key < len(node) else None
                if node is None:
                    break
            cells += [f"{node['median']:.3f}", f"{node['p90']:.3f}"] if node else ["-", "-"]
        print(f"| {label} | " + " | ".join(cells) + " |")

    row("**first STUN check -> SRTP keys**", "setup_ms")
    for part in ("handle_datagram", "poll_transmit", "handle_timeout"):
        row(f"&nbsp;&nbsp;{part}", "setup_parts_ms", part)
    for i in range(max(len(summary[r]["datagrams_ms"]) for r in roles)):
        kinds = "/".join(
            summary[r]["datagram_kinds"][i] if i < len(summary[r]["datagram_kinds"]) else "-" for r in roles
        )
        row(f"&nbsp;&nbsp;&nbsp;&nbsp;datagram {i + 1} ({kinds})", "datagrams_ms", i)
    row("(poll_timeout, not included)", "setup_parts_ms", "poll_timeout")
    row("**create_call** (offer -> answer)", "create_call_ms")
    for part in ("parse_offer", "ice_string", "Session", "agent", "Call", "build_answer"):
        if part in summary[roles[0]]["create_parts_ms"]:
            row(f"&nbsp;&nbsp;{part}", "create_parts_ms", part)
    if "create_call_chromium_offer_ms" in summary:
        c = summary["create_call_chromium_offer_ms"]
        print(
            f"| **create_call**, recorded Chromium offer ({CHROMIUM_OFFER.name}, default role) | "
            f"{c['median']:.3f} | {c['p90']:.3f} | | |"
        )
    print()
    for r in roles:
        s = summary[r]
        verdict = "PASS" if s["setup_ms"]["median"] < 2.0 and s["setup_ms"]["p90"] < 2.0 else "FAIL"
        print(
            f"{r}: {s['sessions']} sessions; target < 2 ms: {verdict} (median {s['setup_ms']['median']:.3f} ms); "
            f"timer firings during setup: {s['timer_firings_total']} "
            f"({s['timer_firings_with_output_total']} sent something), DTLS retransmits: "
            f"{s['dtls_retransmits_total']}; smallest headroom to the next server deadline: "
            f"{s['min_headroom_s'] * 1e3:.0f} ms; round trips (virtual, one-way delay {args.delay * 1e3:.0f} ms): "
            f"server first check -> server keys {s['round_trips_median']:.2f}, client first check -> "
            f"client keys {s['client_round_trips_median']:.2f}; calls per setup (median): "
            + ", ".join(f"{k} {v:g}" for k, v in s["setup_calls_median"].items())
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200, help="sessions per DTLS role (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed sessions per role first (default 10)")
    parser.add_argument("--delay", type=float, default=0.02, help="one-way link delay, s (default 0.02)")
    parser.add_argument(
        "--json",
        type=Path,
        default=REPO / "bench" / "out" / "setup_cpu.json",
        help="where to write the results (default bench/out/setup_cpu.json)",
    )
    args = parser.parse_args()

    watch = Stopwatch()
    install_create_call_probes(watch)
    certs = (Certificate.generate(), Certificate.generate())
    chromium_offer = CHROMIUM_OFFER.read_text() if CHROMIUM_OFFER.exists() else None
    rows = []
    chromium: list[float] = []
    for i in range(args.warmup + args.sessions):
        for role in ("active", "passive"):
            row = one_session(role, certs, seed=i + 1, delay=args.delay, watch=watch)
            if i >= args.warmup:
                rows.append(row)
        if chromium_offer is not None:
            ms = chromium_create_call(certs, chromium_offer)
            if i >= args.warmup:
                chromium.append(ms)
    summary = summarize(rows, chromium)
    print(
        f"voxwire server CPU per session setup, in process, virtual time ({args.sessions} sessions per role,"
        f" time.thread_time_ns, Python {sys.version.split()[0]})\n"
    )
    print_table(summary, args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary, "sessions": rows},
            indent=1,
        )
    )
    print(f"\nwrote {args.json.relative_to(REPO) if args.json.is_relative_to(REPO) else args.json}")


if __name__ == "__main__":
    main()
