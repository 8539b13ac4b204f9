"""voxwire: voice AI over standard WebRTC."""

__version__ = "0.1.0"
