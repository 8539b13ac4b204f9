"""The audio gap a headless Chromium hears when the relay restarts in the middle of a call.

Run: ``scripts/netns-run.sh .venv/bin/python bench/relay_restart.py [--reps N]`` (Chromium, Redis,
the relay and the transceivers all on loopback in a private namespace). Prints a Markdown table and
writes JSON to ``bench/out/relay_restart.json``.

Setup (tests/e2e/relay_fleet.py): for each relay configuration below one ``voxwire relay`` in front of
one ``voxwire transceiver`` (echo agent), each in its own process; one Redis for all. The page is
loaded from the transceiver and its fake microphone plays a steady 440 Hz tone (``?raw=1``: no echo
cancellation, noise suppression or gain control), so the echo it hears is continuous sound and a
restart shows up as the one hole in it.

Per measurement: a fresh call; ``--warmup`` seconds of echo plus a random 0..2.5 s (Chromium's ICE
agent settles into the ping rate of a stable connection, one check every 2.5 s, as in any call older
than a few seconds; the random part samples the phase of that interval); the relay is stopped
(SIGTERM) and started again on the same public and internal ports (its flow table is lost); the
measurement ends ``--steady`` seconds after the echo is back. One restart per call, because the echo
agent plays the caller's lost audio back (as concealment) after a gap, so every outage adds its length
to the echo delay of that call. Measurements are interleaved over the configurations (A, B, C, D,
A, ...; all fleets run throughout) so the machine's noise hits them alike. The page polls its
receiver every 5 ms (``getSynchronizationSources``: when a frame from a received packet reaches the
track), timed on the same Unix clock as this script. Columns, medians over ``--reps`` calls:

* ``gap`` — the longest time without a frame from a received packet around the restart: the hole the
  restart made in what the page plays (Chromium's NetEq fills it with concealment);
* ``relay down`` — from the stop to the new worker listening (process start: alike for all);
* ``echo back after it listened`` — what the configuration adds on top of the restart itself: how
  long the new relay takes to carry the call again (plus one round trip and the echo);
* ``silence heard (tone)`` — the longest stretch of the page's received audio below a third of the
  tone's level (5 ms blocks). Concealment on both sides blurs it: NetEq continues a steady tone for a
  while, and the echo agent then plays the caller's lost audio back as concealment (silence after a
  few frames), which lengthens the hole.

Configurations (``voxwire.relay.core.RelayConfig``):

* ``cache+learn`` — ``voxwire relay --redis-url``: the Redis flow cache recovers the flow at the
  client's first packet after the restart, and the transceiver's first packet re-creates it too
  (``learn_from_transceiver``, the default);
* ``cache`` — the flow cache only (``learn_from_transceiver=False``);
* ``learn`` — no Redis (static transceivers): the transceiver's packets re-create the flow;
* ``none`` — neither: media is dropped until the browser's next ICE check (consent freshness,
  RFC 7675) brings a routing token; Chromium checks a working pair every ~2.5 s.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from e2e.browser import launch_browser, open_page, recording, start_call, stop_call, wait_for  # noqa: E402
from e2e.relay_fleet import RelayFleet, start_redis  # noqa: E402

RATE = 48000
TONE_HZ = 440
BLOCK = 0.005
VARIANTS = {  # name -> (Redis, flow cache, learn_from_transceiver)
    "cache+learn": (True, True, True),
    "cache": (True, True, False),
    "learn": (False, False, True),
    "none": (False, False, False),
}


def tone_wav(path: Path, seconds: float = 2.0, amplitude: float = 0.3) -> Path:
    """A 440 Hz tone, a whole number of periods long so Chromium's loop of the file is seamless."""
    t = np.arange(int(seconds * RATE)) / RATE
    samples = (amplitude * np.sin(2 * np.pi * TONE_HZ * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())
    return path


# Added to every page before its own script: keeps the page's RTCPeerConnections in window.__pcs.
HOOK_JS = """(() => {
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) { const pc = new Native(...args); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Native.prototype;
})();"""

# Runs in the page: every 5 ms, look at the receiver's synchronization source; whenever its timestamp
# moves (a frame from a received packet went to the track) note the time on the Unix clock, in ms.
POLL_JS = """() => {
  const pc = window.__pcs[window.__pcs.length - 1];
  const receiver = pc.getReceivers()[0];
  const g = window.__gap = { frames: [], last: null, timer: null };
  g.timer = setInterval(() => {
    const s = receiver.getSynchronizationSources()[0];
    if (s && s.timestamp !== g.last) {
      g.last = s.timestamp;
      g.frames.push(performance.timeOrigin + performance.now());
    }
  }, 5);
}"""

CHECKS_JS = """async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  let n = 0;
  (await pc.getStats()).forEach((x) => { if (x.type === 'candidate-pair' && x.nominated) n = x.requestsSent; });
  return n;
}"""


def frames(page) -> list[float]:
    """Unix times (s) at which the page saw a new frame from a received packet."""
    return [t / 1000 for t in page.evaluate("window.__gap.frames")]


def longest_silence(x: np.ndarray, rate: int) -> float:
    """Seconds of the longest run of 5 ms blocks quieter than a third of the tone's level."""
    n = int(BLOCK * rate)
    blocks = x[: len(x) // n * n].astype(np.float64).reshape(-1, n)
    rms = np.sqrt(np.mean(blocks**2, axis=1))
    quiet = rms < np.percentile(rms, 90) / 3
    best = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        best = max(best, run)
    return best * BLOCK


def measure(fleet: RelayFleet, browser, args: argparse.Namespace, rng: random.Random) -> dict[str, float]:
    """One fresh call, one relay restart in its middle."""
    page = open_page(browser, fleet.transceivers[0].url, "?raw=1")
    try:
        start_call(page)
        wait_for(page, "first_audio", timeout=15)
        page.evaluate(POLL_JS)
        # Chromium's ICE settles into its stable ping rate; a random extra puts the restart at a random
        # phase of its 2.5 s check interval (a fixed warm-up would hit the same phase every time).
        page.wait_for_timeout(int((args.warmup + rng.uniform(0, 2.5)) * 1000))
        checks = page.evaluate(CHECKS_JS)
        t_stop = time.time()
        down, _ = fleet.restart_relay()
        listening = time.time()
        deadline = time.monotonic() + args.timeout
        while not any(t > listening for t in frames(page)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no echoed audio {args.timeout} s after the restart")
            page.wait_for_timeout(20)
        page.wait_for_timeout(int(args.steady * 1000))
        if page.evaluate("window.voxwire.state") != "connected":
            raise RuntimeError(f"call not connected after the restart: {page.evaluate('window.voxwire.error')}")
        rec = recording(page)
        times = frames(page)
        checks = page.evaluate(CHECKS_JS) - checks
    finally:
        stop_call(page)
        page.close()
    around = [t for t in times if t > t_stop - 0.5]
    # The recording ended just now: cut from 1 s before the stop (the echo was steady then).
    cut = rec.remote[-int((time.time() - t_stop + 1.0) * rec.rate):]
    return {
        "gap": max(b - a for a, b in zip(around, around[1:], strict=False)),
        "down": down,
        "first_audio": min(t for t in times if t > listening) - listening,
        "silence": longest_silence(cut, rec.rate),
        "stun_checks": checks,
        "frames_after_stop": [round(t - t_stop, 4) for t in around],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="calls (one relay restart each) per configuration")
    parser.add_argument("--warmup", type=float, default=6.0,
                        help="seconds of call before the restart (plus a random 0..2.5 s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random part of the warm-up")
    parser.add_argument("--steady", type=float, default=2.0, help="seconds of echo after the restart")
    parser.add_argument("--timeout", type=float, default=15.0, help="most seconds to wait for the echo to return")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "relay_restart.json")
    args = parser.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    others = sorted({name for _, name in socket.if_nameindex()} - {"lo"})
    if others:
        print(f"warning: this namespace also has {', '.join(others)}: run inside scripts/netns-run.sh", file=sys.stderr)

    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    rng = random.Random(args.seed)
    redis = start_redis()
    fleets: list[RelayFleet] = []
    try:
        with tempfile.TemporaryDirectory(prefix="voxwire-relay-restart-") as tmp:
            for i, name in enumerate(names):  # every configuration's fleet runs throughout (idle between calls)
                use_redis, cache, learn = VARIANTS[name]
                fleet = RelayFleet(1, first_id=10 + i, redis=redis if use_redis else None, static=not use_redis,
                                   flow_cache=cache, learn_from_transceiver=learn, log_level="info",
                                   log_dir=Path(tmp) / name)
                fleets.append(fleet)
                fleet.start()
            with launch_browser(tone_wav(Path(tmp) / "tone.wav")) as browser:
                browser.add_init_script(HOOK_JS)
                for rep in range(args.reps):
                    for name, fleet in zip(names, fleets, strict=True):
                        try:
                            row = measure(fleet, browser, args, rng)
                        except BaseException:
                            fleet.dump_logs()
                            raise
                        results[name].append(row)
                        print(f"rep {rep + 1} {name:12s} gap {row['gap'] * 1000:5.0f} ms (relay down "
                              f"{row['down'] * 1000:4.0f} ms, echo back {row['first_audio'] * 1000:5.0f} ms after "
                              f"it listened; {row['stun_checks']} STUN checks), silence heard "
                              f"{row['silence'] * 1000:5.0f} ms", file=sys.stderr, flush=True)
    finally:
        for fleet in fleets:
            fleet.stop()
        redis.stop()

    def med(rows: list[dict[str, float]], key: str) -> str:
        return f"{statistics.median(r[key] for r in rows) * 1000:.0f}"

    print(f"\nRelay restart mid-call, seen by Chromium: medians of {args.reps} calls, ms\n")
    print("| relay | flow cache | learn from transceiver | gap | gap min..max | relay down | echo back after it "
          "listened | silence heard (tone) |")
    print("|---|---|---|---:|---|---:|---:|---:|")
    for name in names:
        rows = results[name]
        _, cache, learn = VARIANTS[name]
        gaps = [r["gap"] * 1000 for r in rows]
        print(f"| {name} | {'yes' if cache else 'no'} | {'yes' if learn else 'no'} | {med(rows, 'gap')} | "
              f"{min(gaps):.0f}..{max(gaps):.0f} | {med(rows, 'down')} | {med(rows, 'first_audio')} | "
              f"{med(rows, 'silence')} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1))
    print(f"\n(raw results in {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
