"""``echo``: the caller hears themself, through decode and encode in both directions.

It streams: every input frame is played straight back (the duplex path of the transceiver, with no
model in the way). With the Realtime protocol it also answers ``response.create`` by playing back
the last committed user turn, so the event flow is exercised before a real model exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from voxwire.agent.base import (
    DEFAULT_SAMPLE_RATE,
    AgentOutput,
    AgentSession,
    AudioOut,
    CallContext,
    Pcm,
    TextOut,
    Turn,
)


class EchoSession:
    # One instance per call (slots: ~50 bytes less each).
    __slots__ = ("_ctx", "_stream")

    def __init__(self, ctx: CallContext, stream: bool) -> None:
        self._ctx = ctx
        self._stream = stream

    def on_audio(self, pcm: Pcm, now: float) -> None:
        if self._stream:
            self._ctx.play(pcm, now)

    async def respond(self, turn: Turn) -> AsyncIterator[AgentOutput]:
        seconds = len(turn.audio) / turn.sample_rate
        yield TextOut(f"(echo of {seconds:.1f} s)")
        yield AudioOut(turn.audio)

    def close(self) -> None:
        pass


class EchoAgent:
    name = "echo"
    #: The echo already plays every frame back; turn-triggered responses would play it twice, so its
    #: sessions start with turn detection off (a client may turn server_vad on).
    session_defaults = {"audio": {"input": {"turn_detection": None}}}

    def __init__(self, sample_rate: int = DEFAULT_SAMPLE_RATE, *, stream: bool = True) -> None:
        self.sample_rate = sample_rate
        self.stream = stream

    def start(self, ctx: CallContext) -> AgentSession:
        return EchoSession(ctx, self.stream)
