"""``passthrough``: the caller hears themself with no transcoding at all.

Every Opus packet the caller sends is queued for the pacer as it is, so the audio path costs only
the transport (SRTP, RTP, pacing): the cost floor of a call, which ``bench/capacity.py`` measures
beside the transcoding ``echo``. The call hands the raw payloads to :meth:`on_packet` (the hook a
call looks for on its agent session) instead of decoding them; packets are forwarded in arrival
order, without reorder buffering or loss concealment. Responses, if a client asks for one over
the event channel, are empty.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from voxwire.agent.base import DEFAULT_SAMPLE_RATE, AgentOutput, AgentSession, CallContext, Pcm, Turn


class EncodedCallContext(CallContext, Protocol):
    def play_encoded(self, payload: bytes, now: float | None = None) -> None:
        """Queue one 20 ms Opus payload as it is, outside any response; with ``now``, it may
        leave at once."""


class PassthroughSession:
    # One instance per call (slots: ~50 bytes less each).
    __slots__ = ("_play",)

    def __init__(self, ctx: EncodedCallContext) -> None:
        self._play = ctx.play_encoded

    def on_packet(self, payload: bytes, rtp_timestamp: int, now: float) -> None:
        """One inbound Opus payload, undecoded, in arrival order, as it arrives at ``now``."""
        self._play(payload, now)

    def on_audio(self, pcm: Pcm, now: float) -> None:
        pass  # the call sends us packets, never PCM

    async def respond(self, turn: Turn) -> AsyncIterator[AgentOutput]:
        return
        yield  # an empty async generator

    def close(self) -> None:
        pass


class PassthroughAgent:
    name = "passthrough"
    #: No PCM ever reaches a turn detector (the call does not decode), so its sessions start with
    #: turn detection off, as echo's do: no detector state per call (a client may turn it on).
    session_defaults = {"audio": {"input": {"turn_detection": None}}}

    def __init__(self, sample_rate: int = DEFAULT_SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate

    def start(self, ctx: CallContext) -> AgentSession:
        assert hasattr(ctx, "play_encoded"), "passthrough needs a call that queues encoded frames"
        return PassthroughSession(ctx)  # type: ignore[arg-type]
