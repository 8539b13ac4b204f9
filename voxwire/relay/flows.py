"""The relay's flow table: client address -> transceiver, bounded, with idle expiry.

Theory of operation
-------------------
A flow is created once per client transport address (after a verified routing token, a Redis flow
cache hit, or a reply from a trusted transceiver) and then looked up for every datagram: the hot path
is ONE dict lookup (``table.flows.get(addr)``) followed by a few attribute updates on the
:class:`Flow` (last seen, packet and byte counters), which has ``__slots__`` so it stays small.

The dict is kept in *queue order*: a flow enters at the back when it is created. The hot path never
reorders it (moving an entry costs a delete and an insert per datagram). Instead the queue is
reordered lazily, CLOCK / second-chance style: whoever looks at the front (the expiry sweep, or the
eviction of a full table) checks whether the front flow has been seen since it was queued; if so it
goes to the back with ``queued_at = now``, otherwise it is the victim. ``queued_at`` is therefore
non-decreasing from front to back, which bounds every scan:

* :meth:`FlowTable.expire` removes flows idle for ``idle_timeout`` seconds. It stops at the first
  flow queued less than ``idle_timeout`` ago, so it does work proportional to what it removes or
  requeues, and at most ``max_scan`` steps per call. A flow is removed between ``idle_timeout`` and
  about twice that after its last datagram (it may sit behind a later-requeued flow).
* When the table is full, :meth:`FlowTable.add` evicts the first flow in queue order that has been
  idle for at least ``evict_idle`` seconds, requeueing active ones on the way, for at most
  ``max_scan`` steps. If none qualifies the new flow is refused (``full_refused``): a flood of new
  flows (say, one captured STUN request replayed from many spoofed addresses) can only displace
  flows that are already quiet, never a call that is sending media.

Memory is bounded by ``max_flows`` entries: the dict never holds more, and nothing else in this
module grows per client.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from voxwire.wire.types import Address

__all__ = ["Flow", "FlowTable", "FlowTableConfig"]


@dataclass(frozen=True)
class FlowTableConfig:
    """Limits of one worker's flow table."""

    #: Most flows held at once; the memory bound (a flow is ~250 bytes with its dict slot and header).
    max_flows: int = 65536
    #: Seconds without a datagram in either direction after which a flow is removed. ICE consent
    #: checks (RFC 7675 §5.1) come every ~5 s even on a muted call, and the transceiver gives up
    #: after 30 s, so 60 s outlives every session the transceiver still keeps.
    idle_timeout: float = 60.0
    #: A full table evicts only a flow idle at least this long (a live call sends every 20 ms).
    evict_idle: float = 2.0
    #: Most queue entries one :meth:`FlowTable.expire` or eviction looks at (bounds a pause).
    max_scan: int = 256

    def __post_init__(self) -> None:
        if self.max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        if self.idle_timeout <= 0 or self.evict_idle < 0:
            raise ValueError("idle_timeout must be > 0 and evict_idle >= 0")
        if self.max_scan < 1:
            raise ValueError("max_scan must be at least 1")


class Flow:
    """One client address's route to a transceiver, with counters for monitoring."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "client",
        "created",
        "header",
        "last_seen",
        "packets_in",
        "packets_out",
        "queued_at",
        "reported_at",
        "transceiver",
        "transceiver_id",
    )

    def __init__(
        self, client: Address, header: bytes, transceiver: Address, transceiver_id: int | None, now: float
    ) -> None:
        self.client = client
        #: The packed encapsulation header of ``client`` (:func:`voxwire.wire.encap.pack_addr`).
        self.header = header
        #: The transceiver's internal address, where client datagrams go.
        self.transceiver = transceiver
        #: The transceiver id when known (token or flow cache); ``None`` for a flow learned from a reply.
        self.transceiver_id = transceiver_id
        self.created = now
        self.last_seen = now
        self.queued_at = now
        #: When the flow was last reported for the Redis flow cache (the core's business).
        self.reported_at = now
        #: client -> transceiver
        self.packets_in = 0
        self.bytes_in = 0
        #: transceiver -> client
        self.packets_out = 0
        self.bytes_out = 0

    def __repr__(self) -> str:
        return (
            f"Flow({self.client} -> {self.transceiver} id={self.transceiver_id} "
            f"in={self.packets_in}/{self.bytes_in}B out={self.packets_out}/{self.bytes_out}B)"
        )


class FlowTable:
    """Bounded client address -> :class:`Flow` map. ``flows`` is public for the hot path's lookup."""

    def __init__(self, config: FlowTableConfig | None = None) -> None:
        self.config = config or FlowTableConfig()
        self.flows: dict[Address, Flow] = {}
        self.created = 0
        self.expired = 0
        self.evicted = 0
        #: New flows refused because the table was full of active flows.
        self.full_refused = 0

    def __len__(self) -> int:
        return len(self.flows)

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows.values())

    def get(self, client: Address) -> Flow | None:
        return self.flows.get(client)

    def add(self, client: Address, header: bytes, transceiver: Address, transceiver_id: int | None,
            now: float) -> Flow | None:
        """Create (or re-point) the flow of ``client``; ``None`` when the table is full of live flows."""
        flows = self.flows
        flow = flows.get(client)
        if flow is not None:  # the client now belongs to another session or transceiver
            flow.transceiver = transceiver
            flow.transceiver_id = transceiver_id
            flow.last_seen = now
            return flow
        if len(flows) >= self.config.max_flows and not self._evict_one(now):
            self.full_refused += 1
            return None
        flow = Flow(client, header, transceiver, transceiver_id, now)
        flows[client] = flow
        self.created += 1
        return flow

    def remove(self, client: Address) -> Flow | None:
        return self.flows.pop(client, None)

    def expire(self, now: float, requeued: list[Flow] | None = None) -> int:
        """Remove flows idle for ``idle_timeout``; at most ``max_scan`` steps. Returns how many.

        Flows found active are requeued (about once per ``idle_timeout`` each) and appended to
        ``requeued`` when given: the core's cheap moment to refresh them in the Redis flow cache.
        """
        flows = self.flows
        timeout = self.config.idle_timeout
        removed = 0
        for _ in range(self.config.max_scan):
            if not flows:
                break
            client = next(iter(flows))
            flow = flows[client]
            if now - flow.queued_at < timeout:
                break  # every flow behind was queued later still
            del flows[client]
            if now - flow.last_seen >= timeout:
                removed += 1
            else:
                flow.queued_at = now
                flows[client] = flow
                if requeued is not None:
                    requeued.append(flow)
        self.expired += removed
        return removed

    def _evict_one(self, now: float) -> bool:
        flows = self.flows
        min_idle = self.config.evict_idle
        for _ in range(min(self.config.max_scan, len(flows))):
            client = next(iter(flows))
            flow = flows.pop(client)
            if now - flow.last_seen >= min_idle:
                self.evicted += 1
                return True
            flow.queued_at = now
            flows[client] = flow
        return False

    def counters(self) -> dict[str, int]:
        return {
            "flows": len(self.flows),
            "flows_created": self.created,
            "flows_expired": self.expired,
            "flows_evicted": self.evicted,
            "flows_full_refused": self.full_refused,
        }
