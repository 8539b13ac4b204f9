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

AGENTS: dict[str, Callable[[], Agent]] = {
    "echo": EchoAgent,
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
