"""The model side of a call, as an agent author sees it.

The common case is one short async generator: it gets a finished user turn and yields what the
assistant says::

    @handler_agent("parrot")
    async def parrot(turn: Turn) -> AsyncIterator[AgentOutput]:
        yield TextOut("You said something.")
        yield AudioOut(turn.audio)            # PCM at turn.sample_rate

The gateway does the rest: turn detection, the Realtime events, pacing the audio out in 20 ms
frames, and barge-in (when the user talks over the assistant the generator is cancelled and the
audio not yet played is dropped).

The full streaming case implements :class:`Agent` / :class:`AgentSession` directly: the session
sees every input audio frame (:meth:`AgentSession.on_audio`) and may play audio outside responses
through :meth:`CallContext.play` (the ``echo`` agent does).

Agents never block the transceiver: ``on_audio`` must return at once, and ``respond`` runs as a
task on the event loop (heavy models belong in an executor thread).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]

DEFAULT_SAMPLE_RATE = 24_000


@dataclass(frozen=True)
class Message:
    """One earlier conversation item, as text."""

    role: str  # "user" | "assistant" | "system"
    text: str


@dataclass(frozen=True)
class Turn:
    """A finished user turn: its audio (mono int16 at ``sample_rate``) and the conversation so far.

    ``audio`` belongs to the voice layer: read it, copy it to change it (before the first turn
    it is a shared, read-only empty array)."""

    audio: Pcm
    sample_rate: int
    item_id: str | None = None
    instructions: str = ""
    history: Sequence[Message] = field(default_factory=tuple)
    #: The user's words when the gateway (or the client) already transcribed them.
    transcript: str | None = None
    #: The gateway's id of the response answering this turn (what ``interrupted`` names).
    response_id: str | None = None


@dataclass(frozen=True)
class AudioOut:
    """Assistant audio to play (mono int16 at the agent's sample rate)."""

    pcm: Pcm


@dataclass(frozen=True)
class TextOut:
    """Assistant words: the transcript of its audio, published as it is produced."""

    delta: str


@dataclass(frozen=True)
class UserTranscript:
    """What the user said in the turn being answered (published on the user's item)."""

    text: str


AgentOutput = AudioOut | TextOut | UserTranscript


class AgentError(Exception):
    """An agent failure whose message is safe and useful to show the client (e.g. "the model
    server closed the connection"). Any other exception is reported without its message."""


class CallContext(Protocol):
    """What an agent session may do on its call besides answering turns."""

    call_id: str

    def play(self, pcm: Pcm, now: float | None = None) -> None:
        """Queue audio outside any response (streaming agents). A streaming agent passes the
        ``now`` it was given: a frame that nothing waits before may then leave at once."""


class AgentSession(Protocol):
    """One call's agent. Besides the methods below, a session may define these optional hooks (the
    call looks them up once, when the session starts):

    ``on_packet(payload: bytes, rtp_timestamp: int, now: float) -> None``
        Take the caller's Opus packets as they arrive (at ``now``), undecoded, instead of
        ``on_audio`` (``passthrough``).

    ``interrupted(response_id: str, audio_end_ms: int) -> None``
        The playback of the response answering ``Turn.response_id`` was cut short (the user spoke
        over it, or the client sent ``response.cancel`` / ``output_audio_buffer.clear``) after
        ``audio_end_ms`` of its audio reached the user (0 when none did). Called whether or not the
        response's generator still runs; when it does, the generator is cancelled as well, in
        either order. Must not block. A session whose model server keeps the conversation
        (``realtime-ws``) truncates the assistant's item there to the audio actually heard.
    """

    def on_audio(self, pcm: Pcm, now: float) -> None:
        """Every input audio frame, in order, losses concealed. Must not block."""

    def respond(self, turn: Turn) -> AsyncIterator[AgentOutput]:
        """Answer a turn; cancelled (``CancelledError`` at an ``await``) on barge-in."""

    def close(self) -> None:
        """The call ended."""


class Agent(Protocol):
    """An agent may also carry ``session_defaults``: a Realtime session configuration applied to
    each of its calls before the client's (e.g. turn detection off for a streaming agent)."""

    name: str
    #: Rate of the PCM the agent hears and speaks.
    sample_rate: int

    def start(self, ctx: CallContext) -> AgentSession: ...


Handler = Callable[[Turn], AsyncIterator[AgentOutput]]


class _HandlerSession:
    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    def on_audio(self, pcm: Pcm, now: float) -> None:
        pass

    def respond(self, turn: Turn) -> AsyncIterator[AgentOutput]:
        return self._handler(turn)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class HandlerAgent:
    """An :class:`Agent` made from one turn handler."""

    name: str
    handler: Handler
    sample_rate: int = DEFAULT_SAMPLE_RATE

    def start(self, ctx: CallContext) -> AgentSession:
        return _HandlerSession(self.handler)


def handler_agent(name: str, *, sample_rate: int = DEFAULT_SAMPLE_RATE) -> Callable[[Handler], HandlerAgent]:
    """Decorator: turn an async generator ``handler(turn)`` into a named agent."""

    def wrap(handler: Handler) -> HandlerAgent:
        return HandlerAgent(name, handler, sample_rate)

    return wrap
