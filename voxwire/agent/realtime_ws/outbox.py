"""What the ``realtime-ws`` bridge sends upstream, in order, with the input audio bounded.

Two queues of serialized client events, drained by the connection's writer: a priority queue of
interrupts (``response.cancel``, ``conversation.item.truncate``) and, behind it, the ordered queue
of audio and turn events (``input_audio_buffer.append`` / ``.commit`` / ``.clear``,
``response.create``). An interrupt never waits behind audio.

Input audio is resampled to 24 kHz when the agent runs at another rate and batched ``batch_ms`` per
append. The queue holds at most ``max_queued_seconds`` of audio (while connecting, or if the
socket stalls): past that the oldest is dropped and counted. The server's input buffer is kept
bounded too: once more than ``max_uncommitted_seconds`` went up without a commit (a long silence),
the outbox clears it and re-sends the last ``keep_seconds``.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter, deque

import numpy as np

from voxwire.agent.base import Pcm
from voxwire.agent.realtime_ws.config import MIN_COMMIT_MS, SERVER_RATE, RealtimeBridgeConfig
from voxwire.media.resample import Resampler
from voxwire.realtime.events import (
    ClientEvent,
    InputAudioBufferClearEvent,
    InputAudioBufferCommitEvent,
    serialize_client_event,
)


class Outbox:
    """One call's queue of client events; it outlives connections (queued audio is kept)."""

    def __init__(self, config: RealtimeBridgeConfig, counters: Counter[str]) -> None:
        self.config = config
        self.counters = counters
        self._upsampler = Resampler(config.sample_rate, SERVER_RATE)
        self._batch: list[Pcm] = []
        self._batch_samples = 0
        self._batch_limit = SERVER_RATE * config.batch_ms // 1000
        #: Ordered queue: (text, samples of audio it carries; 0 for other events).
        self._queue: deque[tuple[str, int]] = deque()
        self._queued_samples = 0
        self._priority: deque[str] = deque()
        self._wake = asyncio.Event()
        self._uncommitted = 0  # samples sent or queued since the last commit or clear
        self._recent: deque[tuple[str, int]] = deque()  # the newest appends since the last commit
        self._recent_samples = 0
        self._restarts = 0

    # -- filling ----------------------------------------------------------------------------------

    def add_audio(self, pcm: Pcm) -> None:
        """Input audio at the agent's rate, batched into appends."""
        audio = pcm if self._upsampler.passthrough else self._upsampler.process(pcm)
        if len(audio):
            self._batch.append(audio)
            self._batch_samples += len(audio)
        if self._batch_samples >= self._batch_limit:
            self.flush_batch()

    def flush_batch(self) -> None:
        if not self._batch_samples:
            return
        pcm = self._batch[0] if len(self._batch) == 1 else np.concatenate(self._batch)
        self._batch.clear()
        self._batch_samples = 0
        self._append(pcm)

    def upload(self, pcm: Pcm, rate: int) -> None:
        """A turn's own audio, when none of it went up through :meth:`add_audio`."""
        audio = pcm
        if rate != SERVER_RATE:
            resampler = Resampler(rate, SERVER_RATE)
            audio = np.concatenate((resampler.process(pcm), resampler.flush()))
        step = SERVER_RATE  # one second per append
        for start in range(0, len(audio), step):
            self._append(audio[start : start + step])

    @property
    def committable(self) -> bool:
        """Whether enough audio went up since the last commit for the server to accept one."""
        return self._uncommitted * 1000 >= MIN_COMMIT_MS * SERVER_RATE

    def commit(self, event_id: str) -> None:
        self.send(InputAudioBufferCommitEvent(event_id=event_id))
        self._uncommitted = 0
        self._recent.clear()
        self._recent_samples = 0

    def send(self, event: ClientEvent) -> None:
        """Queue an event behind the audio and events queued before it."""
        self._queue.append((serialize_client_event(event), 0))
        self._wake.set()

    def send_first(self, event: ClientEvent) -> None:
        """Queue an interrupt ahead of all audio and turn events."""
        self._priority.append(serialize_client_event(event))
        self._wake.set()

    def new_connection(self, first: ClientEvent) -> None:
        """A new server session: interrupts and turn events queued for an earlier connection mean
        nothing to it; queued audio is kept. ``first`` (the session configuration) goes first."""
        self._priority.clear()
        self._priority.append(serialize_client_event(first))
        self._queue = deque(entry for entry in self._queue if entry[1])
        self._uncommitted = self._queued_samples
        self._wake.set()

    def clear(self) -> None:
        self._queue.clear()
        self._queued_samples = 0
        self._priority.clear()

    # -- draining (the connection's writer) -------------------------------------------------------

    def pop(self) -> str | None:
        """The next event to send: interrupts first."""
        if self._priority:
            return self._priority.popleft()
        if self._queue:
            text, samples = self._queue.popleft()
            self._queued_samples -= samples
            return text
        return None

    async def wait(self) -> None:
        """Until something is queued (call when :meth:`pop` returned None)."""
        self._wake.clear()
        await self._wake.wait()

    # -- internals --------------------------------------------------------------------------------

    def _append(self, pcm: Pcm) -> None:
        """Queue one ``input_audio_buffer.append`` (hand-built JSON: the hot path skips validation)."""
        data = base64.b64encode(np.ascontiguousarray(pcm, dtype="<i2").tobytes()).decode("ascii")
        text = '{"type":"input_audio_buffer.append","audio":"' + data + '"}'
        samples = len(pcm)
        self._queue.append((text, samples))
        self._queued_samples += samples
        self._uncommitted += samples
        self._recent.append((text, samples))
        self._recent_samples += samples
        keep = self.config.keep_seconds * SERVER_RATE
        while self._recent_samples - self._recent[0][1] >= keep:
            self._recent_samples -= self._recent.popleft()[1]
        limit = self.config.max_queued_seconds * SERVER_RATE
        while self._queued_samples > limit:
            self._drop_oldest_audio()
        if self._uncommitted > self.config.max_uncommitted_seconds * SERVER_RATE:
            self._restart_buffer()
        self._wake.set()

    def _drop_oldest_audio(self) -> None:
        for index, (_, samples) in enumerate(self._queue):
            if samples:
                del self._queue[index]
                self._queued_samples -= samples
                self._uncommitted = max(0, self._uncommitted - samples)
                self.counters["input_audio_dropped_ms"] += 1000 * samples // SERVER_RATE
                return
        raise AssertionError("queued audio count without audio in the queue")

    def _restart_buffer(self) -> None:
        """Too long without a commit: clear the server's buffer, re-send only the newest audio."""
        while self._queue and self._queue[-1][1]:  # unsent appends after the last other event
            self._queued_samples -= self._queue.pop()[1]
        self._restarts += 1
        clear = InputAudioBufferClearEvent(event_id=f"vw_clear{self._restarts}")
        self._queue.append((serialize_client_event(clear), 0))
        self._queue.extend(self._recent)
        resent = sum(samples for _, samples in self._recent)
        self._queued_samples += resent
        self._uncommitted = resent
        self.counters["input_buffer_restarts"] += 1
