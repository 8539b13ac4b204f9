"""``echo``: the caller hears themself, through decode, resampling and encode in both directions."""

from __future__ import annotations

from collections import deque

import numpy as np

from voxwire.agent.base import Pcm

#: Bound on queued echo audio (seconds): if the output side stalls, the oldest audio goes first.
MAX_QUEUED_SECONDS = 2.0


class EchoAgent:
    def __init__(self, sample_rate: int = 24_000) -> None:
        self.sample_rate = sample_rate
        self._queue: deque[Pcm] = deque()
        self._queued = 0
        self._limit = int(MAX_QUEUED_SECONDS * sample_rate)
        self.dropped_samples = 0

    def on_audio(self, pcm: Pcm, now: float) -> None:
        self._queue.append(pcm)
        self._queued += len(pcm)
        while self._queued > self._limit:
            old = self._queue.popleft()
            self._queued -= len(old)
            self.dropped_samples += len(old)

    def poll_audio(self) -> Pcm | None:
        if not self._queue:
            return None
        out = self._queue[0] if len(self._queue) == 1 else np.concatenate(self._queue)
        self._queue.clear()
        self._queued = 0
        return out

    def close(self) -> None:
        self._queue.clear()
        self._queued = 0
