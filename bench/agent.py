"""Cost of the default agent's speech engines on this machine: VAD, turn detection, STT, TTS.

Run: ``.venv/bin/python bench/agent.py [--repeat N] [--accuracy]``. Prints Markdown tables:

* VAD: milliseconds per 32 ms Silero window, and per 20 ms chunk of 24 kHz input through the whole
  turn detector (resampling, VAD, energy placement, buffering), with the share of one core a
  session's input costs.
* STT: seconds to transcribe turns of 1-8 s (faster-whisper tiny.en, int8, one thread), and the
  cost per second of audio; Whisper's encoder always sees 30 s, so a turn has a fixed cost.
* TTS: time to the first audio chunk and real-time factor (compute time / audio duration) for
  Piper and for the espeak-ng fallback voice.
* ``--accuracy``: turn boundaries against an energy truth on 108 espeak-ng utterances (5 voices,
  two levels, white noise -80..-50 dBFS; needs espeak-ng and sox), placed by the turn detector and
  raw from Silero, in ms (positive = late).

All models run on one thread each; the machine's other core may be busy, so take medians.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voxwire.agent.speech.stt import Transcriber, load_whisper
from voxwire.agent.speech.tts import Synthesizer
from voxwire.agent.turns import ServerVad, TurnCommitted, TurnDetector
from voxwire.agent.vad import SileroVad, VadBatch, load_session
from voxwire.media.resample import Resampler

Pcm = npt.NDArray[np.int16]
WAV = Path(__file__).resolve().parent.parent / "tests" / "data" / "audio" / "three_turns.wav"

SENTENCES = {
    "short": "Sure, I can help with that.",
    "long": "The weather in Paris is sunny today, and the museum near the river opens at nine in the morning.",
    "paragraph": (
        "Here is what I found. The train to London leaves every hour from platform four. "
        "Tickets are cheaper if you book a day ahead, and children under five travel free. "
        "Would you like me to check the times for tomorrow?"
    ),
}


def load_recording() -> Pcm:
    with wave.open(str(WAV)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def quantiles(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(0.9 * len(xs)))]


def bench_loads() -> list[tuple[str, float]]:
    return [
        ("Silero VAD session", timed(load_session)),
        ("Whisper tiny.en (sha256 + load)", timed(load_whisper)),
        ("Piper en_US-joe-medium (sha256 + load)", timed(lambda: Synthesizer("piper"))),
    ]


def bench_vad(pcm16: Pcm, repeat: int) -> list[tuple[str, float, float]]:
    vad = SileroVad()
    windows = [pcm16[i : i + 512] for i in range(0, len(pcm16) - 511, 512)]
    per_window = []
    for _ in range(repeat):
        vad.reset()
        for w in windows:
            t0 = time.perf_counter_ns()
            vad.process(w)
            per_window.append((time.perf_counter_ns() - t0) / 1e6)
    r = Resampler(16000, 24000)
    pcm24 = np.concatenate([r.process(pcm16), r.flush()])
    chunks = [pcm24[i : i + 480] for i in range(0, len(pcm24) - 479, 480)]
    per_chunk = []
    for _ in range(repeat):
        det = TurnDetector(ServerVad(), 24000)
        for c in chunks:
            t0 = time.perf_counter_ns()
            det.append(c)
            while det.poll_event() is not None:
                pass
            per_chunk.append((time.perf_counter_ns() - t0) / 1e6)
    w50, w90 = quantiles(per_window)
    c50, c90 = quantiles(per_chunk)
    rows = [
        ("Silero window (32 ms of audio)", w50, w90),
        ("TurnDetector.append, 20 ms at 24 kHz", c50, c90),
        ("  = share of one core per session (%)", 100 * statistics.mean(per_chunk) / 20, float("nan")),
    ]
    # As voxwire serve runs it: N sessions' detectors on one VadBatch, each 20 ms step is every
    # session's append() and one batch run (everything on this thread here).
    for sessions in (1, 10, 50):
        per_step = []
        for _ in range(repeat):
            batch = VadBatch()
            dets = [TurnDetector(ServerVad(), 24000, batch=batch) for _ in range(sessions)]
            for k in range(len(chunks)):
                t0 = time.perf_counter_ns()
                for i, det in enumerate(dets):
                    det.append(chunks[(k + 7 * i) % len(chunks)])  # sessions at different points
                batch.run()
                for det in dets:
                    while det.poll_event() is not None:
                        pass
                per_step.append((time.perf_counter_ns() - t0) / 1e6 / sessions)
        s50, s90 = quantiles(per_step)
        rows.append((f"batched, {sessions} sessions: per session per 20 ms", s50, s90))
    return rows


def bench_stt(pcm16: Pcm, repeat: int) -> list[tuple[str, float, float]]:
    stt = Transcriber()
    speech = pcm16[int(2.7 * 16000) : int(5.8 * 16000)]  # utterance A
    rows = []
    for seconds in (1, 2, 4, 8):
        n = seconds * 16000
        audio = np.resize(speech, n)
        times = [timed(lambda a=audio: stt.transcribe(a, 16000)) for _ in range(repeat)]
        med, p90 = quantiles(times)
        rows.append((f"{seconds} s turn", med, med / seconds))
    return rows


def bench_tts(repeat: int) -> list[tuple[str, str, float, float, float]]:
    rows = []
    for voice in ("piper", "espeak"):
        synth = Synthesizer(voice)  # type: ignore[arg-type]
        for name, text in SENTENCES.items():
            firsts, rtfs, durs = [], [], []
            for _ in range(repeat):
                t0 = time.perf_counter()
                first = None
                n = 0
                for chunk in synth.synthesize(text):
                    if first is None:
                        first = time.perf_counter() - t0
                    n += len(chunk)
                total = time.perf_counter() - t0
                dur = n / synth.sample_rate
                assert first is not None
                firsts.append(first)
                rtfs.append(total / dur)
                durs.append(dur)
            rows.append(
                (voice, name, statistics.median(durs), statistics.median(firsts), statistics.median(rtfs))
            )
    return rows


UTTERANCES = [
    "Please call Stella.",
    "Ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas",
    "five thick slabs of blue cheese",
    "and maybe a snack for her brother Bob.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "She can scoop these things into three red bags",
    "and we will go meet her Wednesday at the train station.",
    "How are you today?",
    "Yes",
    "Okay then, let's go!",
    "It is sunny and warm in Paris.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-us+m3", "en+f4"]


def espeak16(text: str, voice: str, wpm: int) -> Pcm:
    """espeak-ng at 16 kHz with its own leading and trailing silence trimmed (sox)."""
    raw = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", text], capture_output=True, check=True
    )
    trim = ["silence", "1", "0.005", "0.05%", "reverse", "silence", "1", "0.005", "0.05%", "reverse"]
    out = subprocess.run(
        [
            "sox",
            "-t",
            "wav",
            "-",
            "-t",
            "wav",
            "-r",
            "16000",
            "-b",
            "16",
            "-c",
            "1",
            "-",
            "rate",
            "-v",
            *trim,
        ],
        input=raw.stdout,
        capture_output=True,
        check=True,
    ).stdout
    with wave.open(io.BytesIO(out)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def energy_truth(pcm: Pcm) -> tuple[float, float]:
    """First and last ms where the 10 ms RMS is more than 20 dB above the noise floor."""
    x = pcm.astype(np.float64) / 32768.0
    env = np.sqrt(np.convolve(x * x, np.ones(160) / 160, mode="same"))
    db = 20 * np.log10(env + 1e-12)
    on = np.flatnonzero(db > np.median(db[:6400]) + 20)
    return on[0] / 16.0, (on[-1] + 1) / 16.0


def bench_accuracy() -> list[tuple[str, float, float, float, int, int]]:
    placed: list[tuple[float, float]] = []
    raw: list[tuple[float, float]] = []
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        for i, text in enumerate(UTTERANCES):
            for voice in VOICES[i % 3 : i % 3 + 3]:
                speech = espeak16(text, voice, int(rng.integers(140, 200))).astype(np.float64)
                lead = int(rng.integers(8000, 16000))
                noise, gain = float(rng.choice([3, 10, 30, 100])), float(rng.choice([1.0, 0.3]))
                x = np.concatenate([np.zeros(lead), speech * gain, np.zeros(16000)])
                x = np.clip(x + rng.standard_normal(len(x)) * noise, -32768, 32767).astype(np.int16)
                t0, t1 = energy_truth(x)
                det = TurnDetector(ServerVad(prefix_padding_ms=0, silence_duration_ms=500), 16000)
                det.append(x)
                turns = []
                while (e := det.poll_event()) is not None:
                    if isinstance(e, TurnCommitted):
                        turns.append(e)
                placed.append((turns[0].audio_start_ms - t0, turns[-1].audio_end_ms - 500 - t1))
                p = np.array(SileroVad().process(x))
                raw.append(
                    (np.flatnonzero(p >= 0.5)[0] * 32 - t0, (np.flatnonzero(p >= 0.35)[-1] + 1) * 32 - t1)
                )
    rows = []
    for name, errs in (("turn detector", placed), ("raw Silero", raw)):
        a = np.array(errs)
        for j, edge in enumerate(("onset", "end")):
            e = a[:, j]
            rows.append(
                (
                    f"{name} {edge}",
                    float(e.mean()),
                    float(e.std()),
                    float(np.abs(e).max()),
                    int((np.abs(e) <= 32).sum()),
                    len(e),
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--accuracy", action="store_true", help="also measure turn boundary accuracy")
    args = parser.parse_args()
    pcm16 = load_recording()

    print("### Model loads (once per process)\n")
    print("| model | seconds |\n|---|---:|")
    for name, sec in bench_loads():
        print(f"| {name} | {sec:.2f} |")

    print("\n### Voice activity and turn detection (ms per call)\n")
    print("| operation | median | p90 |\n|---|---:|---:|")
    for name, med, p90 in bench_vad(pcm16, args.repeat):
        print(f"| {name} | {med:.3f} | {'' if p90 != p90 else f'{p90:.3f}'} |")

    print("\n### Speech recognition (faster-whisper tiny.en, int8, 1 thread)\n")
    print("| input | seconds (median) | seconds per second of audio |\n|---|---:|---:|")
    for name, med, per_s in bench_stt(pcm16, args.repeat):
        print(f"| {name} | {med:.3f} | {per_s:.3f} |")

    print("\n### Speech synthesis (22.05 kHz, 1 thread)\n")
    print("| voice | text | audio s | time to first audio s | real-time factor |\n|---|---|---:|---:|---:|")
    for voice, name, dur, first, rtf in bench_tts(args.repeat):
        print(f"| {voice} | {name} | {dur:.2f} | {first:.3f} | {rtf:.3f} |")

    if args.accuracy:
        print("\n### Turn boundaries against the energy truth (ms, positive = late)\n")
        print("| boundary | mean | sd | max abs | within 32 ms |\n|---|---:|---:|---:|---:|")
        for name, mean, sd, worst, ok, n in bench_accuracy():
            print(f"| {name} | {mean:+.1f} | {sd:.1f} | {worst:.0f} | {ok}/{n} |")


if __name__ == "__main__":
    main()
