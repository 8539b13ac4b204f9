"""Agents: the model side of a call. ``AGENTS`` maps the names accepted by ``--agent``."""

from collections.abc import Callable

from voxwire.agent.base import (
    Agent,
    AgentError,
    AgentOutput,
    AgentSession,
    AudioOut,
    CallContext,
    HandlerAgent,
    Message,
    TextOut,
    Turn,
    UserTranscript,
    handler_agent,
)
from voxwire.agent.echo import EchoAgent
from voxwire.agent.passthrough import PassthroughAgent


def _assistant() -> Agent:
    from voxwire.agent.assistant import AssistantAgent  # loads speech models: only when chosen
    from voxwire.agent.speech import preload

    preload()  # VAD, Whisper and the voice load (and are checked) now, not on the first call
    return AssistantAgent()


def _realtime_ws() -> Agent:
    from voxwire.agent.realtime_ws import from_environment

    return from_environment()


AGENTS: dict[str, Callable[[], Agent]] = {
    "assistant": _assistant,
    "echo": EchoAgent,
    "passthrough": PassthroughAgent,
    "realtime-ws": _realtime_ws,
}

__all__ = [
    "AGENTS",
    "Agent",
    "AgentError",
    "AgentOutput",
    "AgentSession",
    "AudioOut",
    "CallContext",
    "EchoAgent",
    "HandlerAgent",
    "Message",
    "TextOut",
    "Turn",
    "UserTranscript",
    "handler_agent",
]
