"""A bounded time series of a few numbers, cheap enough to keep one per call.

The call monitor samples every call once a tick for the dashboard's charts; a call that lasts an
hour must not cost an hour of samples. A :class:`Series` keeps at most ``capacity`` rows and
halves its resolution when full (every other row goes, the step doubles), so its rows always span
the whole call, and stores them as float32 in one ``array``.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping

__all__ = ["Series"]


class Series:
    """Rows of numbers named by ``fields``, at most ``capacity`` of them; when full, every other row
    goes and the step doubles, so the rows always span the whole call.

    Rows are float32 values interleaved in one ``array`` (4 bytes a field, a missing value is NaN):
    a call's full history of 300 rows of eight fields costs 9.6 KB, where a list of dicts cost
    ~500 bytes a row. :attr:`points` rebuilds the dicts, missing fields left out, values rounded as
    they were sampled (:func:`_shown`).
    """

    # One instance of each per call (slots: ~50 bytes less each).
    __slots__ = ("fields", "capacity", "step", "_width", "_rows", "_skipped")

    def __init__(self, fields: tuple[str, ...], capacity: int = 300) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        if not fields:
            raise ValueError("a series needs at least one field")
        self.fields = fields
        self.capacity = capacity
        self.step = 1
        self._width = len(fields)
        self._rows = array("f")
        self._skipped = 0

    def __len__(self) -> int:
        return len(self._rows) // self._width

    def add(self, point: Mapping[str, float | None]) -> None:
        """Add one row; None is a missing value, fields not in :attr:`fields` are ignored."""
        self._skipped += 1
        if self._skipped < self.step:
            return
        self._skipped = 0
        self._rows.extend([_NAN if (value := point.get(name)) is None else value for name in self.fields])
        if len(self) >= self.capacity:
            width = self._width
            kept = array("f")
            for start in range(0, len(self._rows), 2 * width):
                kept.extend(self._rows[start : start + width])
            self._rows = kept
            self.step *= 2

    @property
    def points(self) -> list[dict[str, float]]:
        fields, rows, width = self.fields, self._rows, self._width
        return [
            {name: _shown(value) for name, value in zip(fields, rows[start : start + width], strict=True) if value == value}
            for start in range(0, len(rows), width)
        ]


_NAN = float("nan")


def _shown(value: float) -> float:
    """A float32 value as sampled: four decimals below 100, one above (float32 keeps about seven
    significant digits: 5000.3 comes back as 5000.2998; the samples above 100 -- seconds into
    the call, milliseconds -- were taken to one decimal)."""
    return round(value, 4) if -100.0 < value < 100.0 else round(value, 1)
