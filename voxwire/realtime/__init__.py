"""The OpenAI-compatible Realtime event protocol (GA shapes): event models, the session
configuration and a sans-IO conversation state machine. No I/O anywhere in this package."""

from voxwire.realtime.conversation import (
    Conversation,
    ConversationError,
    IdFactory,
    counter_ids,
    random_ids,
)
from voxwire.realtime.events import (
    AUDIO_CLIENT_EVENTS,
    MAX_EVENT_BYTES,
    ClientEvent,
    EventError,
    ServerEvent,
    parse_client_event,
    parse_server_event,
    serialize_client_event,
    serialize_server_event,
)
from voxwire.realtime.session import (
    Session,
    SessionUpdate,
    VadParams,
    apply_update,
    default_session,
    vad_params,
)

__all__ = [
    "AUDIO_CLIENT_EVENTS",
    "MAX_EVENT_BYTES",
    "ClientEvent",
    "Conversation",
    "ConversationError",
    "EventError",
    "IdFactory",
    "ServerEvent",
    "Session",
    "SessionUpdate",
    "VadParams",
    "apply_update",
    "counter_ids",
    "default_session",
    "parse_client_event",
    "parse_server_event",
    "random_ids",
    "serialize_client_event",
    "serialize_server_event",
    "vad_params",
]
