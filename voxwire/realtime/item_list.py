"""The items of one conversation, in order and bounded: lookup by id, insertion that evicts the
oldest idle items past ``max_items`` (announced with ``conversation.item.deleted``), and how much
assistant audio each assistant item has, which bounds a truncation. What goes in (never audio
bytes) is decided by :class:`~voxwire.realtime.conversation.Conversation`.
"""

from __future__ import annotations

from collections.abc import Iterator

from voxwire.realtime.common import IdFactory
from voxwire.realtime.events import EventError
from voxwire.realtime.items import Item
from voxwire.realtime.server_events import ConversationItemDeletedEvent, ServerEvent


class ItemList:
    """A conversation's items, indexable like a list; see the module docstring."""

    # One instance per call (slots: ~50 bytes less each).
    __slots__ = ("_ids", "_items", "_max_items", "_audio_ms")

    def __init__(self, ids: IdFactory, max_items: int) -> None:
        self._ids = ids
        self._items: list[Item] = []
        self._max_items = max_items
        # assistant item id -> audio produced (or kept after truncation)
        self._audio_ms: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    def __getitem__(self, index: int) -> Item:
        return self._items[index]

    def __setitem__(self, index: int, item: Item) -> None:
        self._items[index] = item

    def get(self, item_id: str) -> Item | None:
        for it in self._items:
            if it.id == item_id:
                return it
        return None

    def index(self, item_id: str, param: str = "item_id") -> int:
        """The item's position; an unknown id is the client's error, reported against ``param``."""
        for i, it in enumerate(self._items):
            if it.id == item_id:
                return i
        raise EventError("invalid_value", f"Item with item_id '{item_id}' not found.", param=param)

    def previous_id(self, index: int) -> str | None:
        """``previous_item_id`` of the item at ``index``: None at the start."""
        return self._items[index - 1].id if index > 0 else None

    def insert(self, item: Item, index: int, busy: set[str | None]) -> tuple[list[ServerEvent], str | None]:
        """Insert, evicting the oldest items past the bound that are not ``busy`` (outputs of a
        response in progress); returns the evictions' events and the new item's previous id."""
        self._items.insert(index, item)
        evicted: list[ServerEvent] = []
        i = 0
        while len(self._items) > self._max_items and i < len(self._items):
            victim = self._items[i]
            if victim is item or victim.id in busy:
                i += 1
                continue
            del self._items[i]
            assert victim.id is not None, "stored items always have ids"
            self._audio_ms.pop(victim.id, None)
            evicted.append(ConversationItemDeletedEvent(event_id=self._ids("event"), item_id=victim.id))
        return evicted, self.previous_id(self._items.index(item))

    def delete(self, index: int) -> None:
        item = self._items.pop(index)
        assert item.id is not None, "stored items always have ids"
        self._audio_ms.pop(item.id, None)

    def audio_ms(self, item_id: str) -> float:
        """Assistant audio the item has (produced, or kept by a truncation), in ms."""
        return self._audio_ms.get(item_id, 0.0)

    def set_audio_ms(self, item_id: str, audio_ms: float) -> None:
        self._audio_ms[item_id] = audio_ms
