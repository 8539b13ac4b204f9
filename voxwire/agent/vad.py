"""Voice activity: the Silero VAD ONNX model (from the ``silero-vad`` wheel) run with onnxruntime.

Theory of operation
-------------------
Silero VAD v5/v6 is a small recurrent network. Every call takes one window of audio (512 samples at
16 kHz, 256 at 8 kHz: 32 ms) prefixed by the last 64 (32) samples of the previous window as context,
plus a recurrent state of shape ``(2, 1, 128)``, and returns the probability that the window holds
speech and the next state. :class:`SileroVad` keeps that context and state for one stream, buffers
the samples that do not fill a window yet, and returns one probability per complete window, so the
probabilities depend only on the samples, never on how they were chunked or on a clock.

One ``onnxruntime.InferenceSession`` serves every stream of the process (``run`` is thread-safe and
the state lives in the caller's arrays); it runs on one intra-op thread, since a window costs about
0.1 ms and more threads only add contention on a shared CPU. torch is never imported: the wheel is
installed with ``pip install --no-deps silero-vad``, and only its ONNX file is used (checked against a
pinned SHA-256, see :mod:`voxwire.agent.speech.models`).

Measured here (``bench/agent.py``, onnxruntime 1.32, one thread): 0.13 ms per 32 ms window, i.e.
0.4% of a core per stream (the whole turn detector around it: 0.9%).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from voxwire.agent.speech.models import SILERO_VAD, verified_path

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["SileroVad", "WINDOW_SAMPLES", "load_session"]

Pcm = npt.NDArray[np.int16]

#: Samples per window, and samples of context carried from the previous window, per sample rate.
WINDOW_SAMPLES = {16000: 512, 8000: 256}
_CONTEXT_SAMPLES = {16000: 64, 8000: 32}


@functools.cache
def load_session() -> onnxruntime.InferenceSession:
    """The process-wide Silero session (loaded and digest-checked on first use)."""
    import onnxruntime

    path = verified_path(SILERO_VAD)
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # the graph has unused initializers; do not warn about them
    return onnxruntime.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class SileroVad:
    """Speech probability per 32 ms window of one int16 mono stream at 16 kHz (or 8 kHz)."""

    def __init__(self, sample_rate: int = 16000) -> None:
        if sample_rate not in WINDOW_SAMPLES:
            raise ValueError(f"Silero VAD runs at {sorted(WINDOW_SAMPLES)} Hz, not {sample_rate}")
        self.sample_rate = sample_rate
        self.window_samples = WINDOW_SAMPLES[sample_rate]
        self._context_samples = _CONTEXT_SAMPLES[sample_rate]
        self._session = load_session()
        self._sr = np.array(sample_rate, dtype=np.int64)
        # One float32 buffer [context | window] reused for every call.
        self._input = np.zeros((1, self._context_samples + self.window_samples), dtype=np.float32)
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.int16)
        #: Complete windows processed since creation or the last :meth:`reset`.
        self.windows = 0

    @property
    def window_ms(self) -> float:
        return 1000.0 * self.window_samples / self.sample_rate

    def process(self, pcm: Pcm) -> list[float]:
        """Feed the next samples; returns the probability of each window completed by them."""
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise TypeError(f"VAD input must be 1-D int16 PCM, not {pcm.dtype} {pcm.shape}")
        if len(self._pending):
            pcm = np.concatenate([self._pending, pcm])
        n = self.window_samples
        full = len(pcm) - len(pcm) % n
        out = [self._window(pcm[i : i + n]) for i in range(0, full, n)]
        self._pending = pcm[full:].copy()
        return out

    def _window(self, window: Pcm) -> float:
        ctx = self._context_samples
        buf = self._input
        buf[0, :ctx] = buf[0, -ctx:]  # the previous window's tail becomes the context
        buf[0, ctx:] = window
        buf[0, ctx:] *= 1.0 / 32768.0
        prob, self._state = self._session.run(None, {"input": buf, "state": self._state, "sr": self._sr})
        self.windows += 1
        return float(prob[0, 0])

    def reset(self) -> None:
        """Forget the stream: recurrent state, context and buffered samples."""
        self._input[:] = 0.0
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.int16)
        self.windows = 0
