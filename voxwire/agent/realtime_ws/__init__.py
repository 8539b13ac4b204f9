"""``realtime-ws``: a call bridged to a model server that speaks the OpenAI Realtime WebSocket protocol.

Theory of operation
-------------------
Each call gets one :class:`RealtimeBridgeSession` and, at most, one WebSocket to the model server.
The connection is opened as soon as the session starts on a running loop (else at first use) and
again by the next ``respond`` after it drops; a failure to connect is an
:class:`~voxwire.agent.base.AgentError` naming the server (its host, never the key) and the HTTP
status when there is one. The bridge's session configuration turns the server's turn detection
off: the gateway's own VAD decides turns and barge-in.

The package, by concern:

* :mod:`~voxwire.agent.realtime_ws.config`: :class:`RealtimeBridgeConfig`, the protocol constants;
* :mod:`~voxwire.agent.realtime_ws.outbox`: what goes up, in order, interrupts ahead of audio, the
  input audio batched and bounded;
* :mod:`~voxwire.agent.realtime_ws.connection`: one WebSocket, its handshake, writer and reader,
  server events routed to the responses in flight, ``response.cancel`` and
  ``conversation.item.truncate``;
* :mod:`~voxwire.agent.realtime_ws.bridge`: the agent session: turns become commits and
  ``response.create``, server deltas become ``AudioOut`` / ``TextOut``, and barge-in (the gateway's
  ``interrupted`` hook, or the generator cancelled) is mapped upstream so that the model server's
  conversation holds what the user heard, also when the response had finished generating and was
  only still playing out.

Known limits: after a reconnection the model server starts a new conversation (earlier turns are
not replayed); user text items created by the client are not forwarded; a response cut short
before any of its audio reached the bridge is cancelled but not truncated.
"""

from voxwire.agent.realtime_ws.bridge import RealtimeBridgeAgent, RealtimeBridgeSession, from_environment
from voxwire.agent.realtime_ws.config import RealtimeBridgeConfig, RealtimeConfigError

__all__ = [
    "RealtimeBridgeAgent",
    "RealtimeBridgeConfig",
    "RealtimeBridgeSession",
    "RealtimeConfigError",
    "from_environment",
]
