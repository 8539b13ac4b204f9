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
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from voxwire.agent.speech.models import SILERO_VAD, verified_path

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["SileroVad", "VadBatch", "VadRound", "WINDOW_SAMPLES", "frame_db", "load_session"]

Pcm = npt.NDArray[np.int16]

#: Samples per window, and samples of context carried from the previous window, per sample rate.
WINDOW_SAMPLES = {16000: 512, 8000: 256}
_CONTEXT_SAMPLES = {16000: 64, 8000: 32}
#: Samples per energy frame of :func:`frame_db` (4 ms at 16 kHz), and the floor of its levels.
ENERGY_FRAME = 64
SILENT_DB = -100.0


def frame_db(windows: npt.NDArray[np.float32]) -> list[list[float]]:
    """The level of each 4 ms frame of each window, in dB relative to full scale (floored at
    :data:`SILENT_DB`): ``windows`` is ``(n, 512)`` samples scaled to [-1, 1) as Silero takes
    them. The turn detector places turn boundaries with these."""
    frames = windows.reshape(len(windows), -1, ENERGY_FRAME)
    energy = np.mean(frames * frames, axis=2)
    db = 10.0 * np.log10(np.maximum(energy, 1e-10))
    return np.maximum(db, SILENT_DB).tolist()  # type: ignore[no-any-return]


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


#: Takes a window's speech probability and its frames' levels (:func:`frame_db`).
Deliver = Callable[[float, list[float]], None]
_SR16 = np.array(16000, dtype=np.int64)


@dataclass(eq=False)
class VadRound:
    """One onnxruntime run's worth of windows: the oldest queued window of up to ``max_batch``
    streams. :meth:`VadBatch.score` may run on another thread (onnxruntime releases the GIL)."""

    streams: list[SileroVad]
    delivers: list[Deliver]
    x: npt.NDArray[np.float32]
    state: npt.NDArray[np.float32]
    prob: npt.NDArray[np.float32] | None = None
    state_out: npt.NDArray[np.float32] | None = None
    levels: list[list[float]] | None = None  # frame_db of each window


class VadBatch:
    """Windows of many :class:`SileroVad` streams, scored together (see the module docstring).

    :meth:`submit` queues a window with the callback that takes its probability; :meth:`run`
    scores everything queued, at most ``max_batch`` streams per onnxruntime run, and calls the
    callbacks, in order within each stream. ``on_pending`` is called when the first window is
    queued into an empty batch: the edge's cue to schedule :meth:`run`.

    :meth:`run` is :meth:`take_round`, :meth:`score`, :meth:`finish` until nothing is queued; an
    edge may call :meth:`score` on a worker thread instead, one round in flight at a time.
    """

    def __init__(self, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.max_batch = max_batch
        self.on_pending: Callable[[], None] | None = None
        self._queues: dict[SileroVad, deque[tuple[Pcm, Deliver]]] = {}
        self._in_flight: VadRound | None = None
        self._discarded: set[SileroVad] = set()  # streams reset while their window was in flight
        #: onnxruntime runs and windows scored, for the benchmark and /metrics.
        self.runs = 0
        self.windows = 0

    @property
    def pending(self) -> int:
        """Windows queued (not counting a round in flight)."""
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
        if self._in_flight is not None and vad in self._in_flight.streams:
            self._discarded.add(vad)

    def run(self) -> int:
        """Score every queued window here and now; returns how many."""
        scored = 0
        while (batch := self.take_round()) is not None:
            self.score(batch)
            scored += self.finish(batch)
        return scored

    def take_round(self) -> VadRound | None:
        """The next round's inputs (the oldest window of each of up to ``max_batch`` streams), or
        None if nothing is queued. Until :meth:`finish`, no other round may be taken."""
        if self._in_flight is not None:
            raise RuntimeError("a VAD round is already in flight")
        queues = self._queues
        if not queues:
            return None
        streams = list(islice(queues, self.max_batch))
        delivers = []
        x = np.empty((len(streams), streams[0]._input.shape[1]), dtype=np.float32)
        state = np.empty((2, len(streams), 128), dtype=np.float32)
        for i, vad in enumerate(streams):
            queue = queues[vad]
            window, deliver = queue.popleft()
            if not queue:
                del queues[vad]
            delivers.append(deliver)
            x[i] = vad._next_input(window)[0]
            state[:, i, :] = vad._state[:, 0, :]
        self._in_flight = VadRound(streams, delivers, x, state)
        return self._in_flight

    @staticmethod
    def score(batch: VadRound) -> None:
        """Run the model on a round and measure its windows' frame levels, all rows at once
        (touches nothing else: safe on a worker thread, where this work leaves the loop's)."""
        batch.prob, batch.state_out = load_session().run(
            None, {"input": batch.x, "state": batch.state, "sr": _SR16}
        )
        batch.levels = frame_db(batch.x[:, _CONTEXT_SAMPLES[16000] :])

    def abandon(self, batch: VadRound) -> None:
        """Give up on a round whose scoring failed: its windows are dropped, nothing is delivered."""
        assert batch is self._in_flight
        self._in_flight = None
        self._discarded.clear()

    def finish(self, batch: VadRound) -> int:
        """Store each stream's new state and deliver the probabilities; returns how many."""
        assert batch is self._in_flight and batch.prob is not None and batch.state_out is not None
        assert batch.levels is not None
        self._in_flight = None
        discarded, self._discarded = self._discarded, set()
        self.runs += 1
        n = len(batch.streams)
        self.windows += n
        for i, vad in enumerate(batch.streams):
            if vad in discarded:
                continue  # reset while scored: this window belongs to the stream's old life
            vad._state = batch.state_out[:, i : i + 1, :].copy()
            vad.windows += 1
            batch.delivers[i](float(batch.prob[i, 0]), batch.levels[i])
        return n
