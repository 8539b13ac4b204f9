"""The relay's forwarding decisions, sans-IO.

Theory of operation
-------------------
The relay owns the public UDP address and forwards datagrams between clients and the transceivers
that own their sessions, over the internal network with the encapsulation header of
:mod:`voxwire.wire.encap`. It never answers a client itself (no amplification, no reflection) and
never forwards to an address it did not get from its own directory (no open proxy).

:meth:`RelayCore.from_client` — a datagram on the public socket:

1. **Known client address** (the hot path): one dict lookup, counters, ``header + data``; the
   result goes to the flow's transceiver. Nothing is parsed.
2. **Unknown address, STUN Binding Request**: the local half of the USERNAME (``serverUfrag:...``,
   RFC 8445 §7.2.2) must be a routing token (:mod:`voxwire.wire.token`) that verifies and is fresh,
   for this relay's cluster. Its transceiver *id* is resolved to an internal address through the
   :class:`Directory` (a local cache the loop fills from Redis or static configuration). Then a flow
   is created and the check forwarded. If the id is not in the cache yet, the request is parked and
   a :class:`ResolveTransceiver` is queued for the loop; :meth:`RelayCore.transceiver_resolved`
   releases it.
3. **Unknown address, anything else**: if it looks like WebRTC after ICE (DTLS or RTP/RTCP by its
   first byte, RFC 7983 §7) and the flow cache is on, the loop is asked to look the address up in the
   Redis flow cache (:class:`LookupFlow`) and the datagram is parked (the latest one per address);
   :meth:`RelayCore.flow_recovered` rebuilds the flow and releases it. This is what lets a restarted
   relay resume an established call at its next media packet. Lookups are bounded (pending count,
   a rate, a negative cache), so garbage from spoofed addresses cannot turn into Redis load.

Every other datagram is dropped and counted by reason in :attr:`RelayCore.counters`.

:meth:`RelayCore.from_transceiver` — a datagram on the internal socket: only from an address in the
directory, or from the transceiver of the named client's flow (an established call outlives its
transceiver's registry entry, e.g. while Redis comes back empty); the header names the client; the
payload leaves from the public socket. The flow's counters are refreshed, and a missing flow is
learned from the reply (the transceiver is trusted and knows where its session is), so after a relay
restart the first packet of audio from the transceiver also restores the path.

Datagrams released later (parked ones) come out of :meth:`RelayCore.poll_transmit`, always towards a
transceiver; work for the loop (Redis lookups and writes) comes out of :meth:`RelayCore.poll_request`
as small frozen dataclasses. :meth:`RelayCore.handle_timeout` runs the idle sweep.

Time: ``now`` is monotonic seconds; the routing token carries Unix seconds, so the core is given
``wallclock_offset`` (Unix time minus monotonic time) once.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from voxwire.relay.flows import Flow, FlowTable, FlowTableConfig
from voxwire.wire import stun
from voxwire.wire.encap import decode_offset, pack_addr
from voxwire.wire.errors import ParseError
from voxwire.wire.token import TokenError, TokenVerifier
from voxwire.wire.types import Address

__all__ = [
    "Directory",
    "LookupFlow",
    "RelayConfig",
    "RelayCore",
    "ResolveTransceiver",
    "StoreFlow",
]

log = logging.getLogger(__name__)

#: STUN message type of a Binding Request (RFC 8489 §5: method 0x001, class request).
_BINDING_REQUEST = b"\x00\x01"


@dataclass(frozen=True, slots=True)
class ResolveTransceiver:
    """Find the internal address of transceiver ``transceiver_id``; answer with
    :meth:`RelayCore.transceiver_resolved`."""

    transceiver_id: int


@dataclass(frozen=True, slots=True)
class LookupFlow:
    """Look ``client`` up in the Redis flow cache; answer with :meth:`RelayCore.flow_recovered` or
    :meth:`RelayCore.flow_not_found`."""

    client: Address


@dataclass(frozen=True, slots=True)
class StoreFlow:
    """Write (or refresh) ``client -> transceiver_id`` in the Redis flow cache."""

    client: Address
    transceiver_id: int


Request = ResolveTransceiver | LookupFlow | StoreFlow


@dataclass(frozen=True)
class RelayConfig:
    """Policy of one relay worker. Every limit bounds memory or work per unit of time."""

    #: The cluster id this relay serves; tokens of other clusters are dropped.
    cluster: int = 0
    flows: FlowTableConfig = field(default_factory=FlowTableConfig)
    #: Ask the loop to recover unknown non-STUN flows from the Redis flow cache.
    flow_cache: bool = True
    #: Seconds between rewrites of a live flow in the flow cache (its TTL must be longer).
    flow_cache_refresh: float = 600.0
    #: Most datagrams parked at once, waiting for a transceiver or a flow lookup (one per client).
    max_pending: int = 1024
    #: Flow-cache lookups started per second at most (token bucket; the burst is one second's worth).
    lookup_rate: float = 2000.0
    #: Seconds an address whose lookup found nothing is not looked up again.
    negative_ttl: float = 5.0
    #: Most addresses in that negative cache.
    max_negative: int = 8192
    #: Create a missing flow from a transceiver's reply (the transceiver is trusted).
    learn_from_transceiver: bool = True
    #: Seconds between idle sweeps.
    sweep_interval: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.cluster <= 0xFF:
            raise ValueError("cluster must be 0..255")
        if self.max_pending < 1 or self.max_negative < 1:
            raise ValueError("max_pending and max_negative must be at least 1")
        if self.lookup_rate <= 0 or self.negative_ttl < 0 or self.sweep_interval <= 0:
            raise ValueError("lookup_rate and sweep_interval must be > 0, negative_ttl >= 0")
        if self.flow_cache_refresh <= 0:
            raise ValueError("flow_cache_refresh must be > 0")


class Directory:
    """Transceiver id <-> internal address, as this relay currently knows it.

    The only source of forwarding destinations: a token names an id, never an address. Filled by the
    loop (Redis registry, static configuration); ``pinned`` entries (static configuration) are never
    dropped by :meth:`remove`. ``addresses`` is read on the hot path of replies.
    """

    def __init__(self, static: Iterable[tuple[int, Address]] = ()) -> None:
        self._by_id: dict[int, Address] = {}
        self._id_of: dict[Address, int] = {}
        self.addresses: set[Address] = set()
        self.pinned: frozenset[int] = frozenset()
        for tid, addr in static:
            self.set(tid, addr)
        self.pinned = frozenset(self._by_id)

    def get(self, transceiver_id: int) -> Address | None:
        return self._by_id.get(transceiver_id)

    def id_of(self, addr: Address) -> int | None:
        return self._id_of.get(addr)

    def set(self, transceiver_id: int, addr: Address) -> None:
        if transceiver_id in self.pinned:
            return
        old = self._by_id.get(transceiver_id)
        if old == addr:
            return
        if old is not None:
            self._forget_addr(old, transceiver_id)
        self._by_id[transceiver_id] = addr
        self._id_of[addr] = transceiver_id
        self.addresses.add(addr)

    def remove(self, transceiver_id: int) -> None:
        if transceiver_id in self.pinned:
            return
        addr = self._by_id.pop(transceiver_id, None)
        if addr is not None:
            self._forget_addr(addr, transceiver_id)

    def ids(self) -> list[int]:
        return list(self._by_id)

    def _forget_addr(self, addr: Address, transceiver_id: int) -> None:
        if self._id_of.get(addr) == transceiver_id:
            del self._id_of[addr]
            self.addresses.discard(addr)

    def __len__(self) -> int:
        return len(self._by_id)


class RelayCore:
    """One worker's forwarding state. Remote garbage is counted, never raised."""

    def __init__(
        self,
        config: RelayConfig,
        verifier: TokenVerifier,
        directory: Directory,
        now: float,
        *,
        wallclock_offset: float = 0.0,
    ) -> None:
        self.config = config
        self.verifier = verifier
        self.directory = directory
        self.table = FlowTable(config.flows)
        self.wallclock_offset = wallclock_offset
        self.counters: dict[str, int] = {}
        self._flows = self.table.flows  # the hot path's dict
        self._known = directory.addresses  # the same set object: the directory updates it in place
        #: transceiver id -> client -> (parked STUN datagram, token's id) awaiting its address.
        self._wait_tid: dict[int, dict[Address, bytes]] = {}
        #: client -> latest datagram parked while its flow-cache lookup runs.
        self._wait_flow: dict[Address, bytes] = {}
        self._parked = 0
        self._negative: dict[Address, float] = {}
        self._bucket = config.lookup_rate
        self._bucket_at = now
        self._next_sweep = now + config.sweep_interval
        self._transmits: deque[tuple[bytes, Address]] = deque()
        self._requests: deque[Request] = deque()

    # -- the two directions -----------------------------------------------------------------------

    def from_client(self, data: bytes, addr: Address, now: float) -> tuple[bytes, Address] | None:
        """A datagram from ``addr`` on the public socket -> (datagram, transceiver) or ``None``."""
        flow = self._flows.get(addr)
        if flow is not None:
            flow.last_seen = now
            flow.packets_in += 1
            flow.bytes_in += len(data)
            return flow.header + data, flow.transceiver
        return self._unknown_client(data, addr, now)

    def from_transceiver(self, data: bytes, addr: Address, now: float) -> tuple[bytes, Address] | None:
        """A datagram from ``addr`` on the internal socket -> (payload, client) or ``None``.

        Accepted from a transceiver in the directory, or for a client whose flow goes to ``addr``:
        an established flow keeps working both ways when its transceiver drops out of the directory
        (a Redis that came back empty, before the transceiver's next heartbeat and the next refresh).
        """
        known = addr in self._known
        try:
            client, offset = decode_offset(data)
        except ParseError:
            self._count("drop_internal_bad_header" if known else "drop_internal_unknown_source")
            return None
        flow = self._flows.get(client)
        if not known and (flow is None or flow.transceiver != addr):
            self._count("drop_internal_unknown_source")
            return None
        if flow is None:
            flow = self._learn(data[:offset], client, addr, now)
        if flow is not None:
            flow.last_seen = now
            flow.packets_out += 1
            flow.bytes_out += len(data) - offset
        return data[offset:], client

    # -- answers from the loop ----------------------------------------------------------------------

    def transceiver_resolved(self, transceiver_id: int, addr: Address | None, now: float) -> None:
        """The answer to :class:`ResolveTransceiver`: create the parked flows, or drop them."""
        waiting = self._wait_tid.pop(transceiver_id, None)
        if addr is not None:
            self.directory.set(transceiver_id, addr)
        if waiting is None:
            return
        self._parked -= len(waiting)
        for client, data in waiting.items():
            if addr is None:
                self._count("drop_transceiver_unknown")
                continue
            out = self._open(data, client, addr, transceiver_id, now, report=True)
            if out is not None:
                self._transmits.append(out)

    def flow_recovered(self, client: Address, transceiver_id: int, addr: Address, now: float) -> None:
        """The answer to :class:`LookupFlow` when the cache had ``client``: rebuild its flow."""
        data = self._wait_flow.pop(client, None)
        if data is not None:
            self._parked -= 1
        if client in self._flows:
            return  # a STUN check or a reply got there first
        self.directory.set(transceiver_id, addr)
        self._count("flows_recovered")
        out = self._open(data or b"", client, addr, transceiver_id, now, report=False)
        if out is not None and data:
            self._transmits.append(out)

    def flow_not_found(self, client: Address, now: float) -> None:
        """The answer to :class:`LookupFlow` when the cache had nothing (or Redis failed)."""
        if self._wait_flow.pop(client, None) is not None:
            self._parked -= 1
            self._count("drop_flow_not_found")
        negative = self._negative
        if len(negative) >= self.config.max_negative:
            del negative[next(iter(negative))]
        negative.pop(client, None)
        negative[client] = now + self.config.negative_ttl

    # -- driver shape for the loop ------------------------------------------------------------------

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        """A released parked datagram, already encapsulated, and the transceiver it goes to."""
        return self._transmits.popleft() if self._transmits else None

    def poll_request(self) -> Request | None:
        return self._requests.popleft() if self._requests else None

    def poll_timeout(self) -> float:
        return self._next_sweep

    def handle_timeout(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.config.sweep_interval
        requeued: list[Flow] = []
        self.table.expire(now, requeued)
        refresh = self.config.flow_cache_refresh
        for flow in requeued:
            if flow.transceiver_id is not None and now - flow.reported_at >= refresh:
                flow.reported_at = now
                self._requests.append(StoreFlow(flow.client, flow.transceiver_id))
        negative = self._negative
        while negative:
            client = next(iter(negative))
            if negative[client] > now:
                break
            del negative[client]

    def stats(self) -> dict[str, int]:
        """Counters for monitoring: drops by reason, flows, parked datagrams."""
        out = dict(self.counters)
        out.update(self.table.counters())
        out["parked"] = self._parked
        return out

    # -- internals ----------------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _unknown_client(self, data: bytes, addr: Address, now: float) -> tuple[bytes, Address] | None:
        if not data:
            self._count("drop_empty")
            return None
        first = data[0]
        if first < 4:
            return self._stun_from_unknown(data, addr, now)
        if 20 <= first <= 63 or 128 <= first <= 191:  # DTLS, RTP/RTCP (RFC 7983 §7)
            self._lookup_flow(data, addr, now)
            return None
        self._count("drop_unknown_source")
        return None

    def _stun_from_unknown(self, data: bytes, addr: Address, now: float) -> tuple[bytes, Address] | None:
        if data[:2] != _BINDING_REQUEST:
            self._count("drop_stun_not_binding_request")
            return None
        username = stun.peek_username(data)
        if username is None:
            self._count("drop_stun_without_username")
            return None
        ufrag, sep, _ = username.partition(b":")
        if not sep:
            self._count("drop_stun_bad_username")
            return None
        try:
            token = self.verifier.verify(ufrag, now + self.wallclock_offset)
        except TokenError as exc:
            self._count("drop_token_" + exc.reason)
            return None
        if token.cluster != self.config.cluster:
            self._count("drop_token_cluster")
            return None
        tid = token.transceiver_id
        target = self.directory.get(tid)
        if target is None:
            self._park_for_transceiver(tid, data, addr)
            return None
        return self._open(data, addr, target, tid, now, report=True)

    def _open(
        self, data: bytes, client: Address, target: Address, tid: int, now: float, *, report: bool
    ) -> tuple[bytes, Address] | None:
        try:
            header = pack_addr(client)
        except ValueError:
            self._count("drop_client_address")
            return None
        flow = self.table.add(client, header, target, tid, now)
        if flow is None:
            self._count("drop_table_full")
            return None
        self._negative.pop(client, None)
        if report and self.config.flow_cache:
            self._requests.append(StoreFlow(client, tid))
        if not data:
            return None
        flow.packets_in += 1
        flow.bytes_in += len(data)
        return header + data, target

    def _learn(self, header: bytes, client: Address, transceiver: Address, now: float) -> Flow | None:
        if not self.config.learn_from_transceiver:
            self._count("out_without_flow")
            return None
        flow = self.table.add(client, header, transceiver, self.directory.id_of(transceiver), now)
        self._count("flows_learned" if flow is not None else "out_without_flow")
        return flow

    def _park_for_transceiver(self, tid: int, data: bytes, client: Address) -> None:
        waiting = self._wait_tid.get(tid)
        if waiting is None:
            if self._parked >= self.config.max_pending:
                self._count("drop_pending_full")
                return
            waiting = self._wait_tid[tid] = {}
            self._requests.append(ResolveTransceiver(tid))
        if client in waiting:
            waiting[client] = data  # a retransmission replaces the parked check
            self._count("drop_parked_replaced")
            return
        if self._parked >= self.config.max_pending:
            self._count("drop_pending_full")
            return
        waiting[client] = data
        self._parked += 1
        self._count("parked_for_transceiver")

    def _lookup_flow(self, data: bytes, client: Address, now: float) -> None:
        if not self.config.flow_cache:
            self._count("drop_unknown_source")
            return
        waiting = self._wait_flow
        if client in waiting:
            waiting[client] = data
            self._count("drop_parked_replaced")
            return
        until = self._negative.get(client)
        if until is not None and until > now:
            self._count("drop_unknown_source")
            return
        if self._parked >= self.config.max_pending:
            self._count("drop_pending_full")
            return
        rate = self.config.lookup_rate
        self._bucket = min(rate, self._bucket + (now - self._bucket_at) * rate)
        self._bucket_at = now
        if self._bucket < 1.0:
            self._count("drop_lookup_rate")
            return
        self._bucket -= 1.0
        waiting[client] = data
        self._parked += 1
        self._requests.append(LookupFlow(client))
        self._count("flow_lookups")
