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

**Batching.** Most of a single-window run is onnxruntime's fixed cost, not the network: one run
over 50 streams' windows costs ~2.5 ms where 50 single runs cost 6-9 ms (``bench/agent.py``
prints the curve). :class:`VadBatch` queues the windows of many streams and scores them with one
run per round (each stream's windows stay in order, since each depends on the state the previous
one left); the edge runs it once per event-loop iteration, after the iteration's datagrams were
read, so a busy gateway scores every call that spoke in that iteration at once and an idle one
adds no delay.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from voxwire.agent.speech.models import SILERO_VAD, verified_path

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["SileroVad", "VadBatch", "WINDOW_SAMPLES", "load_session"]

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
        prob, self._state = self._session.run(
            None, {"input": self._next_input(window), "state": self._state, "sr": self._sr}
        )
        self.windows += 1
        return float(prob[0, 0])

    def _next_input(self, window: Pcm) -> npt.NDArray[np.float32]:
        """The model's input row for the next window: [previous window's tail | window], scaled."""
        ctx = self._context_samples
        buf = self._input
        buf[0, :ctx] = buf[0, -ctx:]  # the previous window's tail becomes the context
        buf[0, ctx:] = window
        buf[0, ctx:] *= 1.0 / 32768.0
        return buf

    def reset(self) -> None:
        """Forget the stream: recurrent state, context and buffered samples."""
        self._input[:] = 0.0
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.int16)
        self.windows = 0


Deliver = Callable[[float], None]


class VadBatch:
    """Windows of many :class:`SileroVad` streams, scored together (see the module docstring).

    :meth:`submit` queues a window with the callback that takes its probability; :meth:`run`
    scores everything queued, at most ``max_batch`` streams per onnxruntime run, and calls the
    callbacks, in order within each stream. ``on_pending`` is called when the first window is
    queued into an empty batch: the edge's cue to schedule :meth:`run`.
    """

    def __init__(self, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.max_batch = max_batch
        self.on_pending: Callable[[], None] | None = None
        self._sr = np.array(16000, dtype=np.int64)
        self._queues: dict[SileroVad, deque[tuple[Pcm, Deliver]]] = {}
        #: onnxruntime runs and windows scored, for the benchmark and /metrics.
        self.runs = 0
        self.windows = 0

    @property
    def pending(self) -> int:
        """Windows queued."""
        return sum(len(q) for q in self._queues.values())

    def submit(self, vad: SileroVad, window: Pcm, deliver: Deliver) -> None:
        if vad.sample_rate != 16000:
            raise ValueError("batched VAD streams run at 16 kHz")
        empty = not self._queues
        queue = self._queues.get(vad)
        if queue is None:
            queue = self._queues[vad] = deque()
        queue.append((window, deliver))
        if empty and self.on_pending is not None:
            self.on_pending()

    def discard(self, vad: SileroVad) -> None:
        """Forget a stream's queued windows (its detector was reset or closed)."""
        self._queues.pop(vad, None)

    def run(self) -> int:
        """Score every queued window; returns how many."""
        scored = 0
        queues = self._queues
        while queues:
            streams = list(islice(queues, self.max_batch))
            items = []
            for vad in streams:
                queue = queues[vad]
                items.append(queue.popleft())
                if not queue:
                    del queues[vad]
            n = len(streams)
            width = streams[0]._input.shape[1]
            x = np.empty((n, width), dtype=np.float32)
            state = np.empty((2, n, 128), dtype=np.float32)
            for i, (vad, (window, _)) in enumerate(zip(streams, items, strict=True)):
                x[i] = vad._next_input(window)[0]
                state[:, i, :] = vad._state[:, 0, :]
            prob, state_out = load_session().run(None, {"input": x, "state": state, "sr": self._sr})
            self.runs += 1
            for i, vad in enumerate(streams):
                vad._state = state_out[:, i : i + 1, :].copy()
                vad.windows += 1
            for i, (_, deliver) in enumerate(items):
                deliver(float(prob[i, 0]))
            scored += n
        self.windows += scored
        return scored
