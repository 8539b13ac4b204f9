"""End-to-end harness: headless Debian Chromium with a fake microphone, a server in its own
process, and audio checks by cross-correlation.

Recipes from ../shared/TESTING.md. Typical use (see test_baseline_page.py):

    wav = speech_wav()
    with run_server([...], port=port) as server, launch_browser(wav) as browser:
        page = open_page(browser, server.url)
        start_call(page)
        wait_for(page, "first_audio")
        page.wait_for_timeout(3000)
        rec = recording(page)
        match = find_in_loop(read_wav(wav), rec.remote, rec.rate)
        assert match.corr > 0.6
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    # Without this Chromium gathers no candidates on loopback.
    "--allow-loopback-in-peer-connection",
)
DEFAULT_PHRASE = "The quick brown fox jumps over the lazy dog. Testing voxwire, one two three."
SPEECH_RATE = 48000
ANALYSIS_RATE = 16000  # correlation runs at 16 kHz: Opus keeps the speech band, the math is 9x cheaper
REPO = Path(__file__).resolve().parents[2]


# ---- speech for the fake microphone ---------------------------------------------------------------


def cache_dir() -> Path:
    """Where generated speech is kept: $VOXWIRE_E2E_CACHE, else ~/.cache/voxwire/e2e."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voxwire" / "e2e"
    path = Path(os.environ.get("VOXWIRE_E2E_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def speech_wav(text: str = DEFAULT_PHRASE, *, voice: str = "en-us", speed: int = 150) -> Path:
    """A 48 kHz mono 16-bit WAV of `text` spoken by espeak-ng, cached by content.

    Leading and trailing silence is trimmed and 0.2 s of silence appended, so the file Chromium
    loops has speech almost all the time.
    """
    key = hashlib.sha256(f"{text}|{voice}|{speed}|{SPEECH_RATE}|v1".encode()).hexdigest()[:16]
    out = cache_dir() / f"speech-{key}.wav"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
        part = Path(tmp) / "speech.wav"
        trim = "silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse pad 0 0.2".split()
        convert = ["-r", str(SPEECH_RATE), "-c", "1", "-b", "16"]
        subprocess.run(["sox", str(raw), *convert, str(part), *trim], check=True)
        shutil.move(part, out)  # atomic enough: a concurrent writer produces the same bytes
    return out


def read_wav(path: Path) -> np.ndarray:
    """Samples of a mono 16-bit WAV as float32 in [-1, 1) (the rate is SPEECH_RATE for speech_wav)."""
    import wave

    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, f"{path}: want mono 16-bit"
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0


# ---- the browser ----------------------------------------------------------------------------------


def chromium_flags(
    fake_audio: Path, field_trials: Sequence[str] = (), extra: Sequence[str] = ()
) -> list[str]:
    """The flags of TESTING.md, with `fake_audio` as the microphone and optional field trials,
    e.g. field_trials=["WebRTC-Sctp-Snap/Enabled/", "WebRTC-IceHandshakeDtls/Enabled/"]."""
    flags = [*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={fake_audio}"]
    if field_trials:
        flags.append("--force-fieldtrials=" + "".join(field_trials))
    return [*flags, *extra]


@contextlib.contextmanager
def launch_browser(fake_audio: Path, *, field_trials: Sequence[str] = (), extra_args: Sequence[str] = ()):
    """A headless Chromium (playwright BrowserContext, sync API) whose microphone plays `fake_audio`
    in a loop. Closed, with its profile directory, on exit."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="voxwire-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=chromium_flags(fake_audio, field_trials, extra_args),
        )
        try:
            yield context
        finally:
            context.close()


def open_page(context, base_url: str, query: str = ""):
    """Open the call page (`base_url` + "/" + `query`, e.g. "?dc=1") and wait for window.voxwire.
    Console errors are collected in page.console_errors."""
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    page.goto(base_url.rstrip("/") + "/" + query)
    page.wait_for_function("window.voxwire !== undefined")
    return page


def start_call(page) -> None:
    page.evaluate("window.voxwire.start()")


def stop_call(page) -> None:
    page.evaluate("window.voxwire.stop()")


def wait_for(page, event: str, timeout: float = 10.0) -> dict[str, float]:
    """Wait until the page's timeline has `event` (e.g. "dtls_connected", "first_audio"); return the
    timeline. Fails early with the page's error if the call fails."""
    page.wait_for_function(
        "([e]) => e in window.voxwire.timeline || window.voxwire.error !== null",
        arg=[event],
        timeout=timeout * 1000,
    )
    state = page.evaluate("({error: window.voxwire.error, timeline: window.voxwire.timeline})")
    assert event in state["timeline"], f"page error before {event}: {state['error']} {state['timeline']}"
    return state["timeline"]


def timeline(page) -> dict[str, float]:
    """name -> ms since start(): mic, offer_created, offer_sent, first_candidate, answer_received,
    ice_connected, dtls_connected, connected, track_unmuted, first_audio, datachannel_open."""
    return page.evaluate("window.voxwire.timeline")


def page_state(page) -> dict:
    return page.evaluate("({state: window.voxwire.state, error: window.voxwire.error})")


@dataclass
class Recording:
    rate: int
    remote: np.ndarray  # what the page heard (the received track), float32
    local: np.ndarray  # the page's own microphone track, sample-aligned with remote


def recording(page) -> Recording:
    """The page's recordings (last ~20 s) of the remote track and of its own microphone."""
    got = page.evaluate("['remote', 'local'].map((w) => window.voxwire.recorded(w, 'base64'))")
    remote, local = (np.frombuffer(base64.b64decode(g["base64"]), "<f4") for g in got)
    return Recording(rate=int(got[0]["rate"]), remote=remote, local=local)


# ---- servers --------------------------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free loopback port (TCP by default; socket.SOCK_DGRAM for UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    url: str  # http://127.0.0.1:PORT
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0, proc=None) -> None:
    """Wait until something accepts TCP connections on host:port; fail if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def run_server(
    cmd: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str] | None = None,
    timeout: float = 15.0,
    log_dir: Path | None = None,
) -> Iterator[ServerProcess]:
    """Run a server command in its own process (stdout+stderr to a log file), wait for its HTTP
    `port`, yield it, then stop it (SIGTERM, then SIGKILL after 5 s). The log is printed when the
    body raises, so a failing test shows what the server said."""
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="voxwire-server-"))
    log_path = log_dir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(cmd), stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **(env or {})}
        )
    server = ServerProcess(proc=proc, url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        wait_for_port(port, timeout=timeout, proc=proc)
        yield server
    except BaseException:
        print(f"---- {' '.join(cmd)} ----\n{server.log()}")
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def baseline_command(port: int) -> list[str]:
    """The aiortc echo baseline (bench/baseline/aiortc_echo.py) on `port`."""
    import sys

    return [sys.executable, str(REPO / "bench" / "baseline" / "aiortc_echo.py"), "--port", str(port)]


def voxwire_command(http_port: int, udp_port: int, *extra: str, agent: str = "echo") -> list[str]:
    """`voxwire serve` on loopback with the given ports (the echo agent unless told otherwise)."""
    import sys

    voxwire = Path(sys.executable).with_name("voxwire")  # the console script next to this Python
    return [
        str(voxwire),
        "serve",
        "--http-host",
        "127.0.0.1",
        "--http-port",
        str(http_port),
        "--udp-port",
        str(udp_port),
        "--agent",
        agent,
        *extra,
    ]


# ---- audio checks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    lag: float  # seconds, the median over the windows (see the function that returned it)
    corr: float  # median over the windows of the best normalized cross-correlation, in [-1, 1]
    windows: int  # how many windows of `received` carried enough sound to be compared


def to_analysis_rate(x: np.ndarray, rate: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x if rate == ANALYSIS_RATE else soxr.resample(x, rate, ANALYSIS_RATE).astype(np.float32)


def normalized_xcorr(window: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """c[k] = <window, signal[k:k+n]> / (|window| |signal[k:k+n]|) for every k (FFT-based)."""
    n, m = len(window), len(signal)
    assert m >= n > 0, "signal must be at least as long as the window"
    size = 1 << (n + m - 1).bit_length()
    window = window.astype(np.float64)
    signal = signal.astype(np.float64)
    dots = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(window, size)), size)[: m - n + 1]
    power = np.concatenate([[0.0], np.cumsum(signal**2)])
    energy = np.maximum(power[n:] - power[: m - n + 1], 0.0)
    return dots / (np.sqrt(energy * np.sum(window**2)) + 1e-12)


def sound_windows(x: np.ndarray, n: int, first: int = 0) -> list[int]:
    """Starts (from `first`, hop n/2) of the n-sample windows of x within 20 dB of the loudest."""
    starts = list(range(first, len(x) - n + 1, n // 2))
    assert starts, f"need at least {n / ANALYSIS_RATE:.2f} s of audio after {first / ANALYSIS_RATE:.2f} s"
    rms = np.array([np.sqrt(np.mean(x[i : i + n].astype(np.float64) ** 2)) for i in starts])
    return [i for i, r in zip(starts, rms, strict=True) if r > 0.1 * rms.max() and r > 1e-4]


def _median_match(results: list[tuple[float, float]]) -> Match:
    assert results, "no window of the received audio carries sound"
    lags, corrs = zip(*results, strict=True)
    return Match(lag=float(np.median(lags)), corr=float(np.median(corrs)), windows=len(results))


# Why short windows and medians: Chromium's jitter buffer (NetEq) time-stretches the received
# audio by a few ms at a time, and the fake microphone's loop point jumps by a few ms too; a
# waveform stays aligned for half a second, not for two. Measured through aiortc's echo: 0.5 s
# windows of speech correlate at ~0.88 (raw microphone) or ~0.67 (with Chromium's echo
# cancellation, noise suppression and gain control), unrelated speech at ~0.25-0.32.


def find_in_loop(
    sent: np.ndarray, received: np.ndarray, rate: int, *, sent_rate: int = SPEECH_RATE, window: float = 0.5
) -> Match:
    """How well `received` matches `sent` played in a loop (as Chromium plays its fake-microphone
    file): for each `window`-second piece of received sound, the best normalized correlation at
    any offset in the loop; lag = where in the loop received[0] sits (median over windows), s."""
    ref = to_analysis_rate(sent, sent_rate)
    rec = to_analysis_rate(received, rate)
    n = min(int(window * ANALYSIS_RATE), len(ref))
    loop = np.concatenate([ref, ref[:n]])  # every offset k in [0, len(ref)) wraps around once
    results = []
    for start in sound_windows(rec, n):
        c = normalized_xcorr(rec[start : start + n], loop)[: len(ref)]
        k = int(np.argmax(c))
        results.append((((k - start) % len(ref)) / ANALYSIS_RATE, float(c[k])))
    return _median_match(results)


def delay(
    earlier: np.ndarray, later: np.ndarray, rate: int, *, max_delay: float = 1.0, window: float = 0.5
) -> Match:
    """How far `later` lags `earlier` (both recorded on one clock, e.g. Recording.local and
    Recording.remote: the round-trip audio delay), searched in [0, max_delay] seconds per window."""
    a = to_analysis_rate(earlier, rate)
    b = to_analysis_rate(later, rate)
    assert len(a) == len(b), "earlier and later must be sample-aligned recordings"
    n = int(window * ANALYSIS_RATE)
    d = int(max_delay * ANALYSIS_RATE)
    results = []
    for start in sound_windows(b, n, first=d):
        c = normalized_xcorr(b[start : start + n], a[start - d : start + n])  # index k <-> delay d - k
        k = int(np.argmax(c))
        results.append(((d - k) / ANALYSIS_RATE, float(c[k])))
    return _median_match(results)


def rms_dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-20))


# ---- one echo call, measured -------------------------------------------------------------------


@dataclass(frozen=True)
class EchoCall:
    heard: Match  # received audio against the speech the page sent
    control: Match  # received audio against unrelated speech (negative control)
    echo: Match  # round-trip delay from the page's microphone to what it heard
    events: dict[str, float]  # the page's timeline, ms

    def assert_echoed(self) -> None:
        """The page heard its own speech, clearly better than unrelated speech, a plausible delay later.

        Measured through aiortc's echo: heard ~0.85, unrelated speech ~0.32, delay ~0.15 s;
        through voxwire: heard ~0.82, delay ~0.07 s."""
        assert self.heard.corr > 0.6 and self.heard.windows >= 8, self.heard
        assert self.control.corr < self.heard.corr - 0.25, (self.heard, self.control)
        assert 0.02 < self.echo.lag < 0.6 and self.echo.corr > 0.6, self.echo


def echo_call(page, speech: Path, other_speech: Path, *, listen_ms: int = 3000) -> EchoCall:
    """Start a call on `page`, listen for `listen_ms` after the first audio, hang up, analyse."""
    start_call(page)
    wait_for(page, "first_audio", timeout=15)
    page.wait_for_timeout(listen_ms)
    rec = recording(page)
    events = timeline(page)
    stop_call(page)
    result = EchoCall(
        heard=find_in_loop(read_wav(speech), rec.remote, rec.rate),
        control=find_in_loop(read_wav(other_speech), rec.remote, rec.rate),
        echo=delay(rec.local, rec.remote, rec.rate),
        events=events,
    )
    print(f"\ntimeline ms: {result.events}\nheard {result.heard}\ncontrol {result.control}\necho {result.echo}")
    return result
