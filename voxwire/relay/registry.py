"""Redis for the relay tier: the transceiver registry, the relay's resolver cache, the flow cache.

Theory of operation
-------------------
Redis is never on the per-packet path. It holds two kinds of key, both with a TTL so that a dead
process's entries disappear on their own::

    voxwire:<cluster>:tx:<id>            hash {addr: "host|port", load: "<calls>", at: "<unix s>"}
    voxwire:<cluster>:flow:<host>|<port> "<transceiver id>"

* A transceiver runs :class:`TransceiverRegistration`: every ``interval`` seconds it rewrites its
  hash and its TTL (``ttl`` > ``interval``, so one missed beat is forgiven, two or three are not).
  The routing token names the id; the address lives only here (or in static configuration).
* A relay runs a :class:`Resolver`: it loads every registered transceiver into its
  :class:`~voxwire.relay.core.Directory` at start and every ``refresh`` seconds, and resolves an id
  it has never seen on demand. When Redis is down the directory keeps what it had (a stale address
  is better than none: a transceiver that moved re-registers and the next refresh fixes it).
* :class:`FlowCache` is ``client address -> transceiver id``: written for each new flow, read when a
  relay sees a non-STUN datagram from an address it has no flow for.

Failures: every call goes through :class:`RedisLink`, which turns a connection error or timeout into
:class:`RedisUnavailable`, counts it, logs the first failure of an outage and its recovery (not every
failure), and then fails fast for a backoff period (``backoff_min`` doubling to ``backoff_max``)
instead of waiting out a timeout per datagram. Nothing here is fatal to the relay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from voxwire.relay.core import Directory
from voxwire.wire.types import Address

__all__ = [
    "FlowCache",
    "RedisLink",
    "RedisUnavailable",
    "Resolver",
    "TransceiverRegistration",
    "format_addr",
    "parse_addr",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

_FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, asyncio.TimeoutError)


class RedisUnavailable(RuntimeError):
    """Redis did not answer (or is in its backoff period); the caller degrades, never crashes."""


def format_addr(addr: Address) -> str:
    return f"{addr[0]}|{addr[1]}"


def parse_addr(raw: str | bytes) -> Address | None:
    """``host|port`` -> address; ``None`` for anything malformed (Redis content is not trusted)."""
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    host, sep, port = text.rpartition("|")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 0xFFFF:
        return None
    return host, int(port)


class RedisLink:
    """One Redis client with fail-fast backoff and failure counters.

    ``timeout`` bounds every command and connection attempt (seconds). redis-py's own retries are
    off: a retry belongs to the caller's next attempt, after the backoff.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.5,
        backoff_min: float = 0.5,
        backoff_max: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self.timeout = timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.clock = clock
        self.failures = 0
        self.skipped = 0
        self.calls = 0
        self._backoff = backoff_min
        self._down_until = 0.0
        self._down = False

    @property
    def is_down(self) -> bool:
        return self._down

    async def call(self, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run ``op(client)``; :class:`RedisUnavailable` on failure or during the backoff."""
        now = self.clock()
        if self._down and now < self._down_until:
            self.skipped += 1
            raise RedisUnavailable("redis: backing off after a failure")
        self.calls += 1
        try:
            result = await asyncio.wait_for(op(self.client), self.timeout * 2)
        except _FAILURES as exc:
            self.failures += 1
            if not self._down:
                log.warning("redis %s unavailable: %s; retrying with backoff", self._safe_url(), exc)
            else:
                self._backoff = min(self._backoff * 2, self.backoff_max)
            self._down = True
            self._down_until = self.clock() + self._backoff
            raise RedisUnavailable(f"redis: {exc}") from exc
        if self._down:
            log.warning("redis %s is back after %d failures", self._safe_url(), self.failures)
            self._down = False
            self._backoff = self.backoff_min
        return result

    async def close(self) -> None:
        await self.client.aclose()

    def _safe_url(self) -> str:
        """The URL without a password, for logs."""
        url = self.url
        if "@" in url:
            scheme, _, rest = url.partition("://")
            return f"{scheme}://***@{rest.rpartition('@')[2]}"
        return url


def _tx_key(cluster: int, transceiver_id: int) -> str:
    return f"voxwire:{cluster}:tx:{transceiver_id}"


def _flow_key(cluster: int, client: Address) -> str:
    return f"voxwire:{cluster}:flow:{format_addr(client)}"


class TransceiverRegistration:
    """What a transceiver process runs: its registry entry, rewritten every ``interval`` seconds."""

    def __init__(
        self,
        link: RedisLink,
        cluster: int,
        transceiver_id: int,
        internal: Address,
        *,
        load: Callable[[], int] = lambda: 0,
        interval: float = 2.0,
        ttl: float = 6.0,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= interval:
            raise ValueError("registration ttl must be longer than the heartbeat interval")
        self.link = link
        self.key = _tx_key(cluster, transceiver_id)
        self.internal = internal
        self.load = load
        self.interval = interval
        self.ttl = ttl
        self.wallclock = wallclock
        self.beats = 0
        self.failures = 0

    async def beat(self) -> bool:
        """Write the entry once; False (counted, logged by the link) when Redis is unavailable."""
        mapping: dict[str | bytes, str | bytes | int | float] = {
            "addr": format_addr(self.internal), "load": self.load(), "at": int(self.wallclock())
        }
        ttl_ms = int(self.ttl * 1000)

        async def op(r: aioredis.Redis) -> Any:
            pipe = r.pipeline(transaction=True)
            pipe.hset(self.key, mapping=mapping)  # type: ignore[arg-type]
            pipe.pexpire(self.key, ttl_ms)
            return await pipe.execute()

        try:
            await self.link.call(op)
        except RedisUnavailable:
            self.failures += 1
            return False
        self.beats += 1
        return True

    async def run(self) -> None:
        """Heartbeat until cancelled; then remove the entry (best effort)."""
        try:
            while True:
                await self.beat()
                await asyncio.sleep(self.interval)
        finally:
            try:
                await self.link.call(lambda r: r.delete(self.key))
            except RedisUnavailable:
                pass


class Resolver:
    """Transceiver id -> internal address for a relay, through its local :class:`Directory`."""

    def __init__(self, link: RedisLink, cluster: int, directory: Directory, *, refresh: float = 5.0) -> None:
        self.link = link
        self.cluster = cluster
        self.directory = directory
        self.refresh = refresh
        self.failures = 0
        self.loads: dict[int, int] = {}

    async def resolve(self, transceiver_id: int) -> Address | None:
        """The address of ``transceiver_id``: from Redis, else (Redis down) whatever is cached."""
        key = _tx_key(self.cluster, transceiver_id)
        try:
            raw = await self.link.call(lambda r: r.hget(key, "addr"))
        except RedisUnavailable:
            self.failures += 1
            return self.directory.get(transceiver_id)
        addr = parse_addr(raw) if raw is not None else None
        if addr is None:
            self.directory.remove(transceiver_id)
            return self.directory.get(transceiver_id)  # a pinned (static) entry survives
        self.directory.set(transceiver_id, addr)
        return addr

    async def refresh_all(self) -> int:
        """Load every registered transceiver; drop those whose entry expired. Returns how many."""
        prefix = f"voxwire:{self.cluster}:tx:"

        async def op(r: aioredis.Redis) -> dict[int, tuple[bytes | None, bytes | None]]:
            keys = [k async for k in r.scan_iter(match=prefix + "*", count=500)]
            if not keys:
                return {}
            pipe = r.pipeline(transaction=False)
            for k in keys:
                pipe.hmget(k, "addr", "load")
            values = await pipe.execute()
            out = {}
            for k, (addr, load) in zip(keys, values, strict=True):
                tail = k.decode("ascii", "replace")[len(prefix) :]
                if tail.isdigit():
                    out[int(tail)] = (addr, load)
            return out

        try:
            entries = await self.link.call(op)
        except RedisUnavailable:
            self.failures += 1
            return len(self.directory)
        seen = set()
        for tid, (raw, load) in entries.items():
            addr = parse_addr(raw) if raw is not None else None
            if addr is not None:
                self.directory.set(tid, addr)
                seen.add(tid)
                self.loads[tid] = int(load) if load is not None and load.isdigit() else 0
        for tid in self.directory.ids():
            if tid not in seen:
                self.directory.remove(tid)
                self.loads.pop(tid, None)
        return len(seen)

    async def run(self) -> None:
        while True:
            await self.refresh_all()
            await asyncio.sleep(self.refresh)


class FlowCache:
    """``client address -> transceiver id`` with a TTL, shared by every relay of the cluster."""

    def __init__(self, link: RedisLink, cluster: int, *, ttl: float = 1800.0) -> None:
        self.link = link
        self.cluster = cluster
        self.ttl_ms = int(ttl * 1000)
        self.failures = 0

    async def put_many(self, items: list[tuple[Address, int]]) -> bool:
        async def op(r: aioredis.Redis) -> Any:
            pipe = r.pipeline(transaction=False)
            for client, tid in items:
                pipe.set(_flow_key(self.cluster, client), str(tid), px=self.ttl_ms)
            return await pipe.execute()

        try:
            await self.link.call(op)
        except RedisUnavailable:
            self.failures += 1
            return False
        return True

    async def get(self, client: Address) -> int | None:
        """The transceiver id of ``client``; ``None`` if absent or malformed.

        Raises :class:`RedisUnavailable` so the caller can tell "not there" from "cannot know".
        """
        try:
            raw = await self.link.call(lambda r: r.get(_flow_key(self.cluster, client)))
        except RedisUnavailable:
            self.failures += 1
            raise
        if raw is None or not raw.isdigit():
            return None
        return int(raw)
