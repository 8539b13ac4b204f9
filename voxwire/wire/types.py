"""Small shared types for the wire and protocol layers."""

from typing import NewType

#: A UDP transport address as the socket layer gives it: (host, port).
Address = tuple[str, int]

Ssrc = NewType("Ssrc", int)
PayloadType = NewType("PayloadType", int)
Mid = NewType("Mid", str)
Ufrag = NewType("Ufrag", str)
