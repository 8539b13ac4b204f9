"""The model side as the transceiver sees it (a first, minimal shape; the voice agent layer grows it).

An agent receives the caller's audio as 16-bit mono PCM at the rate it chose and hands back PCM to
play at the same rate. It is driven synchronously from the transceiver's loop, so it must never
block: a slow model runs elsewhere and feeds its output through :meth:`poll_audio`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]


class Agent(Protocol):
    #: Sample rate of both directions, in Hz.
    sample_rate: int

    def on_audio(self, pcm: Pcm, now: float) -> None:
        """The caller's audio, in order, with losses already concealed."""

    def poll_audio(self) -> Pcm | None:
        """PCM to play next, or None when the agent has nothing queued."""

    def close(self) -> None:
        """The call ended; free what the agent holds."""
