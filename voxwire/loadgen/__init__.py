"""``voxwire loadgen``: many synthetic WebRTC callers in one process, measuring setup, loss, delay
and jitter of the echoed audio (see :mod:`voxwire.loadgen.core`)."""

from voxwire.loadgen.core import LoadClient, LoadConfig, LoadGen, WindowStats, load_frames

__all__ = ["LoadClient", "LoadConfig", "LoadGen", "WindowStats", "load_frames"]
