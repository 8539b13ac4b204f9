"""The caller's audio: speech (espeak-ng, or a synthetic speech-like signal, or a WAV file) encoded
once into 20 ms Opus frames that every call then sends in turn.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

FRAME_SECONDS = 0.02
FRAME_SAMPLES = 960  # RTP clock is 48 kHz for Opus (RFC 7587 §4.1)

DEFAULT_PHRASE = (
    "Hello, this is a synthetic caller. I am counting the packets that come back to me, one two "
    "three four five, and measuring how late each of them is."
)


def speech_pcm(text: str = DEFAULT_PHRASE) -> np.ndarray | None:
    """``text`` spoken by espeak-ng at 48 kHz mono int16, or None without espeak-ng."""
    if shutil.which("espeak-ng") is None:
        return None
    from voxwire.media.resample import Resampler

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(path), text], check=True,
                       capture_output=True)
        with wave.open(str(path)) as w:
            rate, raw = w.getframerate(), w.readframes(w.getnframes())
    pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if rate != 48_000:
        resampler = Resampler(rate, 48_000)
        pcm = np.concatenate([resampler.process(pcm), resampler.process(np.zeros(rate // 10, np.int16))])
    return pcm


def synthetic_pcm(seconds: float = 6.0, seed: int = 1) -> np.ndarray:
    """A speech-like signal at 48 kHz: a glottal pulse train whose pitch wanders, shaped by three
    moving formants, in syllables of 120-300 ms with short pauses."""
    rng = np.random.default_rng(seed)
    rate = 48_000
    n = int(seconds * rate)
    t = np.arange(n) / rate
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
    phase = np.cumsum(pitch / rate)
    source = np.zeros(n)
    for h in range(1, 25):
        source += np.sin(2 * np.pi * h * phase) / h
    out = np.zeros(n)
    for f0, df, rate_hz in ((600, 250, 2.3), (1500, 500, 1.7), (2600, 300, 1.1)):
        centre = f0 + df * np.sin(2 * np.pi * rate_hz * t)
        out += source * np.cos(2 * np.pi * np.cumsum(centre / rate)) * 0.5
    env = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.12, 0.3) * rate)
        seg = min(length, n - pos)
        env[pos : pos + seg] = np.sin(np.linspace(0, np.pi, seg)) ** 0.5
        pos += seg + int(rng.uniform(0.02, 0.12) * rate)
    out *= env
    out = out / np.max(np.abs(out)) * 0.5
    pcm: np.ndarray = (out * 32767).astype(np.int16)
    return pcm


def encode_frames(pcm: np.ndarray, bitrate: int = 32_000, seed: int = 2) -> list[bytes]:
    """Encode 48 kHz mono PCM once into 20 ms Opus payloads. A faint noise floor keeps every payload
    distinct (no two silent frames encode alike), which payload matching relies on."""
    from voxwire.media.opus import OpusEncoder

    rng = np.random.default_rng(seed)
    usable = len(pcm) - len(pcm) % FRAME_SAMPLES
    noisy = np.clip(pcm[:usable].astype(np.int32) + rng.integers(-24, 25, usable), -32768, 32767).astype(np.int16)
    encoder = OpusEncoder(48_000, 1, bitrate=bitrate)
    frames = [encoder.encode(noisy[i : i + FRAME_SAMPLES]) for i in range(0, usable, FRAME_SAMPLES)]
    if not frames:
        raise ValueError("the audio is shorter than one frame")
    return frames


def load_frames(source: str = "auto") -> tuple[list[bytes], str]:
    """Pre-encoded frames: ``espeak`` (espeak-ng speech), ``synthetic``, ``auto`` (espeak when
    installed) or the path of a 48 kHz mono 16-bit WAV. Returns the frames and what they are."""
    if source in ("auto", "espeak"):
        pcm = speech_pcm()
        if pcm is not None:
            return encode_frames(pcm), "espeak-ng speech"
        if source == "espeak":
            raise RuntimeError("espeak-ng is not installed")
        return encode_frames(synthetic_pcm()), "synthetic speech-like signal"
    if source == "synthetic":
        return encode_frames(synthetic_pcm()), "synthetic speech-like signal"
    with wave.open(source) as w:
        if w.getframerate() != 48_000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{source}: need a 48 kHz mono 16-bit WAV")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    return encode_frames(pcm), source
