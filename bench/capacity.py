"""Capacity: concurrent echo calls per core, CPU and memory per call; voxwire vs the aiortc baseline.

Run inside a loopback-only network namespace (needs matplotlib in the venv for the chart):

    scripts/netns-run.sh .venv/bin/python bench/capacity.py [--quick] [--nice -10] [--complexity 1]

(``--nice``: the server and the generator run ahead of other work, in a scheduling autogroup of
their own; ``--complexity N`` adds an experiment: voxwire echo with its Opus encoder complexity fixed at N
rather than stepping down from 5 to 1 under load; ``--opus-mode lowdelay`` adds voxwire echo with
CELT-only outbound Opus, ``voxwire serve --opus-mode lowdelay``.)

The server runs in its own process pinned to core 0 (``taskset -c 0``); this process is the load
generator (:mod:`voxwire.loadgen`) pinned to core 1. Three servers, one after the other:

* ``voxwire echo``: ``voxwire serve --agent echo``, the transcoding echo (Opus decode, 24 kHz PCM
  to the agent and back, Opus encode). The offers carry the session configuration
  ``{"audio": {"input": {"turn_detection": null}}}`` (the echo agent's default too): server VAD off,
  so what is measured is the transport and the codecs, as in the aiortc baseline (VAD costs about
  0.9 % of a core per call on its own, see bench/agent.py; ``--vad`` adds a run with ``server_vad``);
* ``voxwire passthrough``: ``voxwire serve --agent passthrough``: the caller's Opus packets come
  back as they are (the cost floor of the transport);
* ``aiortc echo``: bench/baseline/aiortc_echo.py, decode and re-encode through a MediaRelay.

**Ramp.** Calls are added in levels; at each level, after a settling second, a window of
``--window`` seconds is measured: the server's CPU (sum of its threads' schedstat run time, in % of
one core), its time runnable but waiting for the core (another process on core 0 shows up there),
its RSS, the generator's own CPU and schedule lateness, and every frame sent in the window (lost:
no echo; late: its echo delay exceeds that call's smallest delay in the window by more than 20 ms).
A window whose median echo delay is more than 20 ms above the first glitch-free level's is
glitched too (a server that fell behind before the window delays every frame alike, which the
per-call test cannot see). A glitch-free window settles a level. A glitched window counts only when it was clean (neither
process waited more than 10 % of the window for its core, and the generator kept its 1 ms
schedule within 15 ms: these machines are shared, and another process's stall is not this
server's limit); a level is measured up to 3 times (quick) or 4 times and ends the ramp at the
second clean glitched window, or at once when the server's core is saturated. A level without a
verdict is "disturbed"; two in a row end the ramp ("at least"), as do failed setups or a saturated
load generator.
**Sessions per core** is the largest glitch-free level. **CPU per call** is the slope of server CPU
against calls (least squares over the unsaturated levels, idle cost removed: a thread's schedstat run
time does not grow while it waits for the core, so this holds on a busy machine too), and 100 % /
that slope is the CPU-bound estimate of sessions per core.

**Memory per call.** A fresh server for each: 5 warm-up calls are made and ended, then 200 (quick:
100; aiortc 40 and 20) calls are set up with idle media (connected, consent checks only): (RSS after - RSS before) / calls.
Then media flows for 3 s and the RSS is read again (buffers, codec state touched by audio).

**Setup under load** (voxwire passthrough, the server that carries 200 calls): the setup times of
3 rounds of 100 calls added at 20/s with nothing running, against 3 x 100 added the same way while
200 calls stream audio (POST -> SRTP keys, p50 and p99 over the 300, each round's p99, and the p99
of each phase: POST -> answer, answer -> first check response, check response -> keys). The
probe calls keep their media idle and are hung up once measured, so they add setups and not load.
They come from the generator process, as the running calls do: a probe from a process of its own
had worse tails (it waits for core 1 behind the generator). The same setups as the server timed
them (its dashboard's per-call timeline: offer request start -> answer made -> DTLS connected)
are given beside them, to tell the server's share from the generator's.

Writes bench/out/capacity.json, bench/out/capacity.md and bench/out/capacity.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.capacity_setup import SETUP_PROBES, SETUP_UNDER_LOAD, rounded, setup_probe  # noqa: E402
from bench.setup import cpu_ns  # noqa: E402
from tests.e2e.browser import wait_for_port  # noqa: E402
from voxwire.loadgen.core import LoadClient, LoadConfig, LoadGen, load_frames, percentile  # noqa: E402

OUT = REPO / "bench" / "out"
NICE = 0  # --nice: both processes' niceness (negative: ahead of other work on shared cores)
SERVER_CORE = 0
LOADGEN_CORE = 1
NO_VAD = {"audio": {"input": {"turn_detection": None}}}
@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # voxwire | aiortc
    agent: str = "echo"
    session: dict[str, Any] | None = None
    levels: tuple[int, ...] = ()
    ramp_rate: float = 40.0
    mem_calls: int = 200
    #: Opus encoder complexity fixed on the server (an experiment; None: voxwire's default, which
    #: steps down under load).
    complexity: int | None = None
    #: Outbound Opus mode on the server (an experiment; None: voxwire's default, voip).
    opus_mode: str | None = None


@dataclass
class Level:
    calls: int
    server_cpu_pct: float
    server_wait_pct: float
    rss_mb: float
    loadgen_cpu_pct: float
    loadgen_wait_pct: float
    generator_late_ms: float
    sent: int
    lost: int
    late: int
    glitched_calls: int
    max_late_ms: float
    delay_p50_ms: float | None
    delay_p99_ms: float | None
    setup_keys_p50_ms: float | None
    setup_keys_p99_ms: float | None
    setup_echo_p99_ms: float | None
    failed: int
    #: why setups failed (distinct LoadClient errors)
    errors: list[str] = field(default_factory=list)
    #: ok (a glitch-free window), glitch (two clean windows glitched, or a saturated server),
    #: disturbed (no clean window: other work on the machine stalled the server or the generator)
    verdict: str = ""
    windows: int = 1


@dataclass
class Result:
    target: str
    levels: list[Level] = field(default_factory=list)
    limit: int | None = None  # largest glitch-free level
    limit_reason: str = ""
    at_least: bool = False
    cpu_per_call_pct: float | None = None  # slope, % of a core per call
    cpu_idle_pct: float | None = None  # intercept
    mem: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)


# ---- processes ---------------------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(target: Target, log_dir: Path) -> Iterator[tuple[str, int]]:
    """Start the target's server pinned to the server core; yields (url, pid)."""
    port = free_port()
    if target.kind == "voxwire":
        cmd = [sys.executable, "-m", "voxwire", "serve", "--http-port", str(port), "--udp-port",
               str(free_port(socket.SOCK_DGRAM)), "--agent", target.agent, "--max-calls", "5000",
               "--log-level", "warning"]
        if target.complexity is not None:
            cmd += ["--opus-complexity", str(target.complexity), "--opus-complexity-under-load", str(target.complexity)]
        if target.opus_mode is not None:
            cmd += ["--opus-mode", target.opus_mode]
    else:
        cmd = [sys.executable, str(REPO / "bench" / "baseline" / "aiortc_echo.py"), "--port", str(port)]
    env = dict(os.environ)
    log = open(log_dir / f"{target.name.replace(' ', '_')}-{port}.log", "wb")
    prefix = ["nice", "-n", str(NICE)] if NICE else []
    proc = subprocess.Popen([*prefix, "taskset", "-c", str(SERVER_CORE), *cmd], stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO, env=env, preexec_fn=_lift_fd_limit)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_port(port, timeout=20, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{target.name} did not start ({exc}): {Path(log.name).read_text()[-2000:]}") from None
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def prioritize(nice: int) -> None:
    """Run this process (and the servers it starts) at ``nice``. With autogroup scheduling (Linux
    desktop default) niceness only ranks processes of one session, so first take a session of our
    own and give its autogroup the same niceness; otherwise other sessions' work on the two cores
    still gets an equal share and shows up as glitches that are not the server's."""
    if os.environ.get("CAPACITY_SESSION") != "1":
        try:
            os.setsid()
        except PermissionError:  # already a process group leader: let setsid(1) fork us
            os.environ["CAPACITY_SESSION"] = "1"
            os.execvp("setsid", ["setsid", "--wait", sys.executable, *sys.argv])
    os.nice(nice)
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))


def _lift_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def self_cpu() -> tuple[float, float]:
    """(CPU seconds, seconds runnable but waiting for the core) of this process (the generator)."""
    run, wait = cpu_ns(os.getpid())
    return run / 1e9, wait / 1e9


# ---- measurement -------------------------------------------------------------------------------


def setup_stats(calls: list[LoadClient]) -> tuple[float | None, float | None, float | None]:
    keys = [1000 * (c.timeline.keys - c.timeline.post) for c in calls if c.timeline.keys is not None]
    echo = [1000 * (c.timeline.first_echo - c.timeline.post) for c in calls if c.timeline.first_echo is not None]
    return percentile(keys, 50), percentile(keys, 99), percentile(echo, 99)


async def measure(gen: LoadGen, pid: int, window: float, added: list[LoadClient]) -> Level:
    opened = gen.mark()
    t0 = time.monotonic()
    run0, wait0 = cpu_ns(pid)
    lg0, lgw0 = self_cpu()
    await asyncio.sleep(window)
    run1, wait1 = cpu_ns(pid)
    lg1, lgw1 = self_cpu()
    elapsed = time.monotonic() - t0
    closed = {id(c): c.frames_sent for c in gen.calls}
    rss = rss_kb(pid)
    await asyncio.sleep(gen.config.grace)
    w = gen.window(opened, t0, closed)
    keys50, keys99, echo99 = setup_stats([c for c in added if c.error is None])
    return Level(
        calls=len(gen.calls),
        server_cpu_pct=round(100 * (run1 - run0) / 1e9 / elapsed, 2),
        server_wait_pct=round(100 * (wait1 - wait0) / 1e9 / elapsed, 2),
        rss_mb=round(rss / 1024, 1),
        loadgen_cpu_pct=round(100 * (lg1 - lg0) / elapsed, 1),
        loadgen_wait_pct=round(100 * (lgw1 - lgw0) / elapsed, 1),
        generator_late_ms=round(w.sched_late_ms, 2),
        sent=w.sent,
        lost=w.lost,
        late=w.late,
        glitched_calls=w.glitched_calls,
        max_late_ms=round(w.max_late_ms, 2),
        delay_p50_ms=_r(percentile(w.delays_ms, 50)),
        delay_p99_ms=_r(percentile(w.p99_delay_ms, 99)),
        setup_keys_p50_ms=_r(keys50),
        setup_keys_p99_ms=_r(keys99),
        setup_echo_p99_ms=_r(echo99),
        failed=sum(1 for c in added if c.error is not None),
        errors=sorted({c.error for c in added if c.error is not None}),
    )


_r = rounded


def fit(levels: list[Level]) -> tuple[float | None, float | None]:
    """Least-squares slope and intercept of server CPU % against calls."""
    pts = [(lv.calls, lv.server_cpu_pct) for lv in levels]
    if len(pts) < 2:
        return (pts[0][1] / pts[0][0], 0.0) if pts and pts[0][0] else (None, None)
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else None
    return slope, (my - slope * mx) if slope is not None else None


def make_gen(url: str, target: Target, frames: list[bytes], *, media: bool = True) -> LoadGen:
    config = LoadConfig(url=url, session=target.session, connect_timeout=10.0, media_on_connect=media)
    return LoadGen(config, frames)


async def ramp(
    target: Target, frames: list[bytes], window: float, log_dir: Path, probe: bool, retries: int
) -> Result:
    result = Result(target.name)
    with server(target, log_dir) as (url, pid):
        gen = make_gen(url, target, frames)
        await gen.start()
        try:
            if probe:  # setup with nothing running, after 5 warm-up calls made and ended (the first
                # calls pay for lazy imports and first-use set-up: one made the idle p99 127 ms)
                await gen.ramp(5, 10.0)
                await gen.hang_up_all()
                await asyncio.sleep(0.5)
                result.setup["idle"] = await setup_probe(gen)
            last_ok: int | None = None
            baseline_delay: float | None = None  # echo delay p50 at the first glitch-free level
            disturbed = 0
            for level in target.levels:
                if probe and not result.setup.get("loaded") and len(gen.calls) >= SETUP_UNDER_LOAD:
                    result.setup["loaded"] = {"running": len(gen.calls), **await setup_probe(gen)}
                if level <= len(gen.calls):
                    continue
                added = await gen.ramp(level - len(gen.calls), target.ramp_rate)
                await asyncio.sleep(1.0)
                first = await measure(gen, pid, window, added)
                lv, verdict = await settle_level(target.name, gen, pid, window, first, retries, baseline_delay)
                result.levels.append(lv)
                print(_line(target.name, lv) + f"  -> {verdict}", flush=True)
                if lv.failed:
                    result.limit_reason = f"{lv.failed} setups failed at {level}: {'; '.join(lv.errors)}"
                    break
                if lv.verdict == "glitch":  # the verdict string may add why ("server core saturated")
                    result.limit_reason = f"glitch at {lv.calls} calls ({lv.lost} lost, {lv.late} late"
                    if delayed(lv, baseline_delay):
                        result.limit_reason += f", echo delay p50 {lv.delay_p50_ms:.0f} ms"
                    result.limit_reason += ")"
                    break
                if verdict == "disturbed":
                    disturbed += 1
                    if disturbed >= 2:
                        result.limit_reason = "two levels in a row disturbed by other work on the machine"
                        result.at_least = True
                        break
                    continue
                disturbed = 0
                last_ok = lv.calls
                if baseline_delay is None:
                    baseline_delay = lv.delay_p50_ms
                if lv.loadgen_cpu_pct > 85:
                    result.limit_reason = "the load generator is saturated"
                    result.at_least = True
                    break
                if lv.server_cpu_pct > 97:
                    result.limit_reason = f"server core saturated ({lv.server_cpu_pct:.0f} %) at {lv.calls}"
                    break
            else:
                result.limit_reason = "the last level was glitch-free"
                result.at_least = True
            stopped_clean = result.limit_reason.startswith(("server core saturated", "the last level was glitch-free"))
            if probe and not result.setup.get("loaded") and len(gen.calls) >= SETUP_UNDER_LOAD and stopped_clean:
                # The ramp stopped at a glitch-free level that reached SETUP_UNDER_LOAD (its core
                # saturated, or no levels left): probe there rather than report nothing. Not after
                # failed setups, disturbed windows or a saturated generator (the probe's own loop).
                result.setup["loaded"] = {"running": len(gen.calls), "after": result.limit_reason,
                                          **await setup_probe(gen)}
            result.limit = last_ok
            # schedstat's run time does not depend on waiting: every unsaturated level counts.
            usable = [lv for lv in result.levels if lv.verdict != "failed" and lv.server_cpu_pct < 95]
            slope, intercept = fit(usable)
            result.cpu_per_call_pct = _r(slope, 4)
            result.cpu_idle_pct = _r(intercept)
        finally:
            await gen.stop()
    return result


#: A window is clean when neither process waited for its core more than this share of the time and
#: the generator kept its own schedule within GENERATOR_LATE_MS: otherwise a glitch may be another
#: process's doing (these machines are shared), and the window does not count.
MAX_WAIT_PCT = 10.0
GENERATOR_LATE_MS = 15.0


#: A level whose median echo delay exceeds the first glitch-free level's by more than this is
#: glitched even when no frame was late against its own call's smallest delay in the window: a
#: server that fell behind before the window started delays every frame alike.
DELAY_MARGIN_MS = 20.0


def delayed(lv: Level, baseline_delay: float | None) -> bool:
    return (baseline_delay is not None and lv.delay_p50_ms is not None
            and lv.delay_p50_ms > baseline_delay + DELAY_MARGIN_MS)


def clean(lv: Level) -> bool:
    return (lv.server_wait_pct <= MAX_WAIT_PCT and lv.loadgen_wait_pct <= MAX_WAIT_PCT
            and lv.generator_late_ms <= GENERATOR_LATE_MS)


async def settle_level(name: str, gen: LoadGen, pid: int, window: float, first: Level,
                       retries: int, baseline_delay: float | None = None) -> tuple[Level, str]:
    """Measure more windows at this level until the verdict is clear: ok at the first glitch-free
    window, glitch at the second clean glitched one (or at once when the server's core is
    saturated), disturbed when the windows run out without either. A window glitches when a frame
    was lost or late, or when the median echo delay is :data:`DELAY_MARGIN_MS` above
    ``baseline_delay``."""
    lv = first
    clean_glitches = 0
    for attempt in range(retries + 1):
        if attempt:
            lv = await measure(gen, pid, window, [])
            lv.setup_keys_p50_ms, lv.setup_keys_p99_ms = first.setup_keys_p50_ms, first.setup_keys_p99_ms
            lv.setup_echo_p99_ms, lv.failed, lv.errors = first.setup_echo_p99_ms, first.failed, first.errors
        lv.windows = attempt + 1
        glitched = bool(lv.lost or lv.late) or delayed(lv, baseline_delay)
        if lv.failed:
            lv.verdict = "failed"
            return lv, "failed"
        if glitched and lv.server_cpu_pct >= 97:
            lv.verdict = "glitch"
            return lv, "glitch (server core saturated)"
        if not glitched:  # other work can only add glitches: a glitch-free window settles it
            lv.verdict = "ok"
            return lv, "ok"
        if clean(lv):
            clean_glitches += 1
            if clean_glitches == 2:
                lv.verdict = "glitch"
                return lv, "glitch"
        if attempt < retries:
            why = "glitch" if glitched else "disturbed"
            print(_line(name, lv) + f"  ({why}: measuring again)", flush=True)
    lv.verdict = "glitch" if clean_glitches else "disturbed"
    return lv, lv.verdict


async def memory(target: Target, frames: list[bytes], calls: int, log_dir: Path) -> dict[str, Any]:
    with server(target, log_dir) as (url, pid):
        gen = make_gen(url, target, frames)
        await gen.start()
        try:
            await gen.ramp(5, 10.0)  # warm-up: imports, codecs, first-call caches
            await asyncio.sleep(1.0)
            await gen.hang_up_all()
            await asyncio.sleep(1.5)
            before = rss_kb(pid)
            gen.config.media_on_connect = False
            added = await gen.ramp(calls, target.ramp_rate)
            await asyncio.sleep(2.0)
            idle = rss_kb(pid)
            gen.set_media(True)
            await asyncio.sleep(3.0)
            media = rss_kb(pid)
            ok = sum(1 for c in added if c.error is None)
            errors = sorted({c.error for c in added if c.error is not None})
        finally:
            await gen.stop()
    return {
        "calls": ok,
        "rss_before_mb": round(before / 1024, 1),
        "rss_idle_mb": round(idle / 1024, 1),
        "rss_media_mb": round(media / 1024, 1),
        "idle_kb_per_call": round((idle - before) / max(ok, 1), 1),
        "media_kb_per_call": round((media - before) / max(ok, 1), 1),
        **({"errors": errors} if errors else {}),
    }


def _line(name: str, lv: Level) -> str:
    return (
        f"{name:20s} {lv.calls:5d} calls  server {lv.server_cpu_pct:5.1f} % (wait {lv.server_wait_pct:4.1f} %)  "
        f"rss {lv.rss_mb:6.1f} MB  loadgen {lv.loadgen_cpu_pct:5.1f} % (wait {lv.loadgen_wait_pct:4.1f} %) "
        f"late {lv.generator_late_ms:4.1f} ms  "
        f"lost {lv.lost} late {lv.late} (max {lv.max_late_ms:.1f} ms)  setup p99 {lv.setup_keys_p99_ms} ms"
        f"{'  failed ' + str(lv.failed) if lv.failed else ''}"
    )


# ---- report ------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    by = {r.target: r for r in results}
    lines = [
        "| server | sessions per core (glitch-free) | CPU per call (% of a core) | idle-media memory per call "
        "| with media | CPU-bound estimate (100 % / CPU per call) | why the ramp stopped |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        limit = "-" if r.limit is None else (f">= {r.limit}" if r.at_least else str(r.limit))
        cpu = "-" if r.cpu_per_call_pct is None else f"{r.cpu_per_call_pct:.3f}"
        mem = r.mem.get("idle_kb_per_call")
        memm = r.mem.get("media_kb_per_call")
        lines.append(
            f"| {r.target} | {limit} | {cpu} | {'-' if mem is None else f'{mem:.0f} KB'} | "
            f"{'-' if memm is None else f'{memm:.0f} KB'} | "
            f"{'-' if not r.cpu_per_call_pct else f'{100 / r.cpu_per_call_pct:.0f}'} | {r.limit_reason} |"
        )
    base = by.get("aiortc echo")
    echo = by.get("voxwire echo")
    passthrough = by.get("voxwire passthrough")
    if base is not None and echo is not None:
        lines.append("")
        if base.limit and echo.limit:
            lines.append(f"voxwire echo / aiortc echo, sessions per core: {echo.limit / base.limit:.1f}x")
        if base.cpu_per_call_pct and echo.cpu_per_call_pct:
            lines.append(f"aiortc / voxwire CPU per call: {base.cpu_per_call_pct / echo.cpu_per_call_pct:.1f}x")
        bm, em = base.mem.get("idle_kb_per_call"), echo.mem.get("idle_kb_per_call")
        if bm and em:
            lines.append(f"aiortc / voxwire memory per idle call: {bm / em:.1f}x")
    if passthrough is not None and passthrough.setup.get("idle") and passthrough.setup.get("loaded"):
        i, lo = passthrough.setup["idle"], passthrough.setup["loaded"]
        ratio = f" ({lo['keys_p99_ms'] / i['keys_p99_ms']:.1f}x)" if i["keys_p99_ms"] and lo["keys_p99_ms"] else ""
        lines.append(
            f"setup (passthrough, {i['calls']} calls each), POST -> SRTP keys p50 / p99: idle {i['keys_p50_ms']} / "
            f"{i['keys_p99_ms']} ms, with {lo['running']} calls running {lo['keys_p50_ms']} / {lo['keys_p99_ms']} ms{ratio}; "
            f"p99 of POST -> answer {i['answer_p99_ms']} vs {lo['answer_p99_ms']}, ICE {i['ice_p99_ms']} vs "
            f"{lo['ice_p99_ms']}, DTLS {i['dtls_p99_ms']} vs {lo['dtls_p99_ms']} ms"
        )
        lines.append(f"  p99 of each round of {SETUP_PROBES}: idle {i.get('keys_p99_ms_rounds')}, "
                     f"loaded {lo.get('keys_p99_ms_rounds')} ms")
        if i.get("server_keys_p99_ms") and lo.get("server_keys_p99_ms"):
            lines.append(
                f"the same setups as the server timed them (request start -> keys) p50 / p99: idle "
                f"{i['server_keys_p50_ms']} / {i['server_keys_p99_ms']} ms, loaded {lo['server_keys_p50_ms']} / "
                f"{lo['server_keys_p99_ms']} ms ({lo['server_keys_p99_ms'] / i['server_keys_p99_ms']:.1f}x); of which "
                f"the offer request (start -> answer made) p50 / p99: {i['server_answer_p50_ms']} / "
                f"{i['server_answer_p99_ms']} vs {lo['server_answer_p50_ms']} / {lo['server_answer_p99_ms']} ms"
            )
    lines.append("")
    lines.append("| server | calls | verdict (windows) | server CPU % | wait % | RSS MB | loadgen CPU % | loadgen wait % "
                 "| gen late ms | lost | late | max late ms | delay p50 ms | setup keys p99 ms |")
    lines.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        for lv in r.levels:
            lines.append(
                f"| {r.target} | {lv.calls} | {lv.verdict} ({lv.windows}) | {lv.server_cpu_pct} | {lv.server_wait_pct} | "
                f"{lv.rss_mb} | "
                f"{lv.loadgen_cpu_pct} | {lv.loadgen_wait_pct} | {lv.generator_late_ms} | {lv.lost} | {lv.late} | "
                f"{lv.max_late_ms} | "
                f"{lv.delay_p50_ms} | {lv.setup_keys_p99_ms} |"
            )
    return "\n".join(lines)


def chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        xs = [lv.calls for lv in r.levels]
        line = ax1.plot(xs, [lv.server_cpu_pct for lv in r.levels], marker="o", label=r.target)[0]
        bad = [lv for lv in r.levels if lv.verdict in ("glitch", "failed")]
        if bad:
            ax1.scatter([lv.calls for lv in bad], [lv.server_cpu_pct for lv in bad], marker="x", s=80,
                        color=line.get_color(), zorder=3)
        ax2.plot(xs, [lv.rss_mb for lv in r.levels], marker="o", label=r.target, color=line.get_color())
    ax1.set_xlabel("concurrent calls")
    ax1.set_ylabel("server CPU (% of one core)")
    ax1.set_title("Server CPU against concurrent calls (x: glitch)")
    ax1.axhline(100, color="grey", lw=0.8, ls="--")
    ax2.set_xlabel("concurrent calls")
    ax2.set_ylabel("server RSS (MB)")
    ax2.set_title("Resident memory against concurrent calls")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---- main --------------------------------------------------------------------------------------


def targets(quick: bool, vad: bool, complexity: list[int], opus_modes: list[str]) -> list[Target]:
    if quick:
        echo: tuple[int, ...] = (10, 30, 60, 90, 120, 150, 180)
        passthrough: tuple[int, ...] = (50, 250, 500, 750, 1000)
        aiortc: tuple[int, ...] = (3, 6, 10, 15, 20)
        mem, mem_aiortc = 100, 20
    else:
        echo = (10, 20, 30, 40, 50, 60, 80, 100, 120, 135, 150, 165, 180, 200)
        passthrough = (50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200)
        aiortc = (2, 4, 6, 8, 10, 12, 15, 20, 25, 30, 40)
        mem, mem_aiortc = 200, 40
    out = [
        Target("voxwire echo", "voxwire", "echo", NO_VAD, echo, 40.0, mem),
        Target("voxwire passthrough", "voxwire", "passthrough", NO_VAD, passthrough, 60.0, mem),
        Target("aiortc echo", "aiortc", levels=aiortc, ramp_rate=10.0, mem_calls=mem_aiortc),
    ]
    if vad:
        vad_session = {"audio": {"input": {"turn_detection": {"type": "server_vad"}}}}
        out.insert(1, Target("voxwire echo+vad", "voxwire", "echo", vad_session, echo[: len(echo) // 2 + 1], 40.0, mem))
    for c in complexity:
        out.insert(1, Target(f"voxwire echo cx{c}", "voxwire", "echo", NO_VAD, echo, 40.0, mem, complexity=c))
    for mode in opus_modes:
        out.insert(1, Target(f"voxwire echo {mode}", "voxwire", "echo", NO_VAD, echo, 40.0, mem, opus_mode=mode))
    return out


async def run(args: argparse.Namespace) -> list[Result]:
    frames, what = load_frames(args.audio)
    print(f"audio: {what}, {len(frames)} frames in the loop; server on core {SERVER_CORE}, load generator on "
          f"core {LOADGEN_CORE}", flush=True)
    window = args.window or (2.0 if args.quick else 4.0)
    results = []
    with tempfile.TemporaryDirectory(prefix="capacity-") as tmp:
        log_dir = Path(tmp)
        for target in targets(args.quick, args.vad, args.complexity, args.opus_mode):
            if args.only and target.name not in args.only:
                continue
            result = await ramp(target, frames, window, log_dir, probe=target.name == "voxwire passthrough",
                                retries=2 if args.quick else 3)
            if not args.no_memory:
                result.mem = await memory(target, frames, target.mem_calls, log_dir)
                print(f"{target.name:20s} memory: {result.mem}", flush=True)
            results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, coarser levels and 2 s windows (< 2 min)")
    parser.add_argument("--window", type=float, default=None, help="seconds measured per level (4; quick 2)")
    parser.add_argument("--vad", action="store_true", help="also ramp voxwire echo with the default server_vad")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory-per-call runs")
    parser.add_argument("--complexity", type=int, action="append", default=[],
                        help="experiment: also ramp voxwire echo with this Opus encoder complexity (repeatable)")
    parser.add_argument("--opus-mode", action="append", default=[], choices=("voip", "lowdelay"),
                        help="experiment: also ramp voxwire echo with this outbound Opus mode (repeatable)")
    parser.add_argument("--only", action="append", help="run only this target (repeatable), e.g. 'aiortc echo'")
    parser.add_argument("--audio", default="auto", help="auto, espeak, synthetic or a 48 kHz mono WAV")
    parser.add_argument("--nice", type=int, default=0, help="niceness of the server and the generator, and of "
                        "their own scheduling autogroup (e.g. -10 on a machine shared with other work; needs root)")
    args = parser.parse_args()
    global NICE
    NICE = args.nice
    if NICE:
        prioritize(NICE)
    if len(os.sched_getaffinity(0)) < 2 and os.cpu_count() and os.cpu_count() < 2:  # type: ignore[operator]
        raise SystemExit("capacity needs two cores (server and load generator on their own)")
    os.sched_setaffinity(0, {LOADGEN_CORE})
    _lift_fd_limit()
    started = time.monotonic()
    import uvloop

    results = uvloop.run(run(args))
    OUT.mkdir(parents=True, exist_ok=True)
    text = table(results)
    print("\n" + text)
    (OUT / "capacity.md").write_text(text + "\n")
    meta = {
        "quick": args.quick,
        "seconds": round(time.monotonic() - started, 1),
        "host_load": os.getloadavg(),
        "results": [asdict(r) for r in results],
    }
    (OUT / "capacity.json").write_text(json.dumps(meta, indent=1) + "\n")
    try:
        chart(results, OUT / "capacity.png")
    except ImportError:
        print("matplotlib is not installed: no chart (.venv/bin/pip install matplotlib)")
    print(f"\nwrote {OUT / 'capacity.md'}, capacity.json, capacity.png in {meta['seconds']:.0f} s")


if __name__ == "__main__":
    main()
