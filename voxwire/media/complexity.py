"""How hard the Opus encoders work: full quality while the event loop has room, less under load.

Encoding is most of what a talking session costs (``bench/capacity.py``: ~2/3 of a transcoding
echo at complexity 5; ``bench/media.py``: 24 kHz speech, VOIP mode, ~215 us per 20 ms frame at
complexity 5 against ~80 us at 1). A gateway near its limit should trade a little encoder quality
for glitch-free audio on every call, as WebRTC engines do on slow devices, rather than let the
loop fall behind and every call stutter.

:class:`ComplexityPolicy` is sans-IO: the edge feeds it the share of the last interval the event
loop's thread spent on the CPU (:meth:`update`), and every encoder reads :attr:`complexity`
before its next frame (a libopus CTL when it changed; complexity may change between frames). The
step down happens at ``high``; the step back up only below ``low``, far enough under ``high`` that
the extra encoder cost does not push the loop straight back over it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ComplexityPolicy:
    #: Complexity while the loop has room (0..10).
    normal: int = 5
    #: Complexity while the loop is loaded (0..10, at most ``normal``).
    under_load: int = 1
    #: Loop busy share (0..1) at which encoders step down...
    high: float = 0.7
    #: ...and below which they step back up.
    low: float = 0.35
    #: What encoders use for their next frame.
    complexity: int = field(init=False)
    #: Times the policy stepped down (a counter for /metrics and the dashboard).
    step_downs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        for name in ("normal", "under_load"):
            value = getattr(self, name)
            if not 0 <= value <= 10:
                raise ValueError(f"Opus complexity {name}={value} outside 0..10")
        if self.under_load > self.normal:
            raise ValueError(f"under_load complexity {self.under_load} above normal {self.normal}")
        if not 0.0 < self.low < self.high <= 1.0:
            raise ValueError(f"need 0 < low ({self.low}) < high ({self.high}) <= 1")
        self.complexity = self.normal

    @property
    def reduced(self) -> bool:
        return self.complexity != self.normal

    def update(self, busy: float) -> int:
        """Take the loop's busy share over the last interval; returns the complexity to use."""
        if not self.reduced and busy >= self.high and self.under_load < self.normal:
            self.complexity = self.under_load
            self.step_downs += 1
        elif self.reduced and busy < self.low:
            self.complexity = self.normal
        return self.complexity
