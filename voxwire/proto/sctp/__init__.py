"""SCTP over DTLS for WebRTC data channels (RFC 9260, RFC 8261, RFC 8831), sans-IO.

``association.py`` is the state machine and the driver surface; ``handshake.py`` and ``cookie.py``
set it up (INIT, INIT ACK, the signed State Cookie, SNAP); ``send.py`` queues and fragments
outbound messages, ``packetizer.py`` chooses the DATA of each packet, ``retransmit.py`` handles
acknowledgement, retransmission, congestion control and partial reliability, ``recv.py`` tracks
TSNs, builds SACKs and reassembles, ``reconfig.py`` resets streams, ``heartbeat.py`` and
``shutdown.py`` do what their names say. ``common.py`` holds the config, events and errors.
"""

from voxwire.proto.sctp.association import SctpAssociation
from voxwire.proto.sctp.common import (
    BufferedAmountLow,
    Closed,
    Connected,
    MessageReceived,
    MessageTooLarge,
    SctpConfig,
    SctpError,
    SctpEvent,
    SctpStateError,
    SendBufferFull,
    State,
    StreamClosing,
    StreamsReset,
)

__all__ = [
    "BufferedAmountLow",
    "Closed",
    "Connected",
    "MessageReceived",
    "MessageTooLarge",
    "SctpAssociation",
    "SctpConfig",
    "SctpError",
    "SctpEvent",
    "SctpStateError",
    "SendBufferFull",
    "State",
    "StreamClosing",
    "StreamsReset",
]
