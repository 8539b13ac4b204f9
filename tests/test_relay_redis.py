"""The relay's Redis side against a real redis-server: registry, resolver, flow cache, outages."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from voxwire.relay.core import Directory, LookupFlow, RelayConfig, RelayCore, StoreFlow
from voxwire.relay.loop import RelayServices, RelaySettings
from voxwire.relay.registry import FlowCache, RedisLink, Resolver, TransceiverRegistration, parse_addr
from voxwire.wire import stun
from voxwire.wire.encap import pack_addr
from voxwire.wire.token import TokenKey, TokenMinter, TokenVerifier

KEY = TokenKey(1, bytes(range(32)))
CLIENT = ("198.51.100.7", 50000)
TX = ("10.0.0.2", 4000)
RTP = b"\x80\x6f" + bytes(100)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def check(tid: int, now: float) -> bytes:
    ufrag = TokenMinter(KEY, 0, tid, random.Random(tid).randbytes).mint(now)
    msg = stun.StunMessage(stun.BINDING, stun.StunClass.REQUEST, b"x" * 12, username=ufrag.encode() + b":c")
    return stun.serialize(msg, integrity_key=b"k" * 22)


def make_core(directory: Directory, loop: asyncio.AbstractEventLoop) -> RelayCore:
    return RelayCore(RelayConfig(), TokenVerifier([KEY], 3600), directory, loop.time(),
                     wallclock_offset=time.time() - loop.time())


async def until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.002)


def services_for(core: RelayCore, link: RedisLink) -> RelayServices:
    resolver = Resolver(link, 0, core.directory, refresh=0.2)
    return RelayServices(core, link, resolver, FlowCache(link, 0), RelaySettings(public=(), internal=("", 0), keys=[KEY]))


def pump(core: RelayCore, services: RelayServices) -> list[object]:
    """What the worker does after each batch: hand the core's requests to the Redis services."""
    loop = asyncio.get_running_loop()
    out: list[object] = []
    while (request := core.poll_request()) is not None:
        out.append(request)
        services.submit(request, loop.time())
    return out


def test_parse_addr_rejects_garbage():
    assert parse_addr(b"10.0.0.2|4000") == ("10.0.0.2", 4000)
    assert parse_addr("fd00::1|5") == ("fd00::1", 5)
    for bad in (b"", b"10.0.0.2", b"|4000", b"h|0", b"h|70000", b"h|x", "h|-1"):
        assert parse_addr(bad) is None


def test_registration_resolve_and_expiry(redis_url):
    async def main() -> None:
        link = RedisLink(redis_url)
        loads = iter(range(100))
        reg = TransceiverRegistration(link, 0, 7, TX, load=lambda: next(loads), interval=0.05, ttl=0.3)
        other = TransceiverRegistration(link, 0, 8, ("10.0.0.3", 4001), interval=0.05, ttl=0.3)
        task = asyncio.create_task(reg.run())
        assert await other.beat()
        directory = Directory()
        resolver = Resolver(link, 0, directory)
        await until(lambda: reg.beats >= 2)
        assert await resolver.resolve(7) == TX
        assert await resolver.refresh_all() == 2
        assert directory.get(8) == ("10.0.0.3", 4001) and TX in directory.addresses
        assert resolver.loads[7] >= 1
        assert await resolver.resolve(99) is None
        # 8 stops beating: its entry expires and the next refresh forgets it; 7 lives on.
        await asyncio.sleep(0.4)
        assert await resolver.refresh_all() == 1
        assert directory.get(8) is None and directory.get(7) == TX
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # deregisters on the way out
        assert await resolver.refresh_all() == 0 and directory.get(7) is None
        await link.close()

    run(main())


def test_static_transceivers_survive_the_registry(redis_url):
    async def main() -> None:
        link = RedisLink(redis_url)
        directory = Directory([(5, ("10.0.0.5", 4000))])
        resolver = Resolver(link, 0, directory)
        assert await resolver.refresh_all() == 0
        assert await resolver.resolve(5) == ("10.0.0.5", 4000)
        await link.close()

    run(main())


def test_restarted_relay_recovers_an_established_flow_from_the_flow_cache(redis_url):
    async def main() -> None:
        loop = asyncio.get_running_loop()
        link = RedisLink(redis_url)
        await TransceiverRegistration(link, 0, 7, TX).beat()
        # The first relay opens the flow from the token and writes it to the flow cache.
        first = make_core(Directory(), loop)
        services = services_for(first, link)
        services.start()
        await until(lambda: first.directory.get(7) == TX)  # the registry was loaded
        assert first.from_client(check(7, loop.time() + first.wallclock_offset), CLIENT, loop.time()) is not None
        assert pump(first, services) == [StoreFlow(CLIENT, 7)]
        cache = FlowCache(link, 0)
        for _ in range(500):
            if await cache.get(CLIENT) == 7:
                break
            await asyncio.sleep(0.005)
        assert await cache.get(CLIENT) == 7
        await services.stop()

        # A new relay (restart, or another instance behind the address): the first media datagram
        # is parked while the flow cache answers, then released; the next ones flow at once.
        link2 = RedisLink(redis_url)
        second = make_core(Directory(), loop)
        services2 = services_for(second, link2)
        services2.start()
        assert second.from_client(RTP, CLIENT, loop.time()) is None
        pump(second, services2)
        released: list[tuple[bytes, tuple[str, int]]] = []

        def got() -> bool:
            out = second.poll_transmit()
            if out is not None:
                released.append(out)
            return bool(released)

        await until(got)
        assert released == [(pack_addr(CLIENT) + RTP, TX)]
        assert second.from_client(RTP, CLIENT, loop.time()) == (pack_addr(CLIENT) + RTP, TX)
        assert second.counters["flows_recovered"] == 1
        await services2.stop()

    run(main())


def test_redis_outage_keeps_calls_and_new_token_flows_working(redis_server, redis_url):
    async def main() -> None:
        loop = asyncio.get_running_loop()
        link = RedisLink(redis_url, timeout=0.2, backoff_min=0.1, backoff_max=0.4)
        await TransceiverRegistration(link, 0, 7, TX).beat()
        core = make_core(Directory(), loop)
        services = services_for(core, link)
        services.start()
        await until(lambda: core.directory.get(7) == TX)
        offset = core.wallclock_offset
        assert core.from_client(check(7, loop.time() + offset), CLIENT, loop.time()) is not None
        pump(core, services)

        redis_server.stop()
        # Established flows forward without Redis.
        for _ in range(50):
            assert core.from_client(RTP, CLIENT, loop.time()) is not None
            assert core.from_transceiver(pack_addr(CLIENT) + RTP, TX, loop.time()) == (RTP, CLIENT)
        # A new call still connects: its token names a transceiver the resolver has cached.
        other = ("198.51.100.8", 40000)
        assert core.from_client(check(7, loop.time() + offset), other, loop.time()) is not None
        assert pump(core, services) == [StoreFlow(other, 7)]  # the write fails, counted
        # An unknown address's media cannot be recovered: answered "not found", not hung.
        assert core.from_client(RTP, ("198.51.100.9", 1), loop.time()) is None
        assert pump(core, services) == [LookupFlow(("198.51.100.9", 1))]
        await until(lambda: core.counters.get("drop_flow_not_found", 0) == 1)
        await until(lambda: link.failures >= 1 and link.is_down)
        await asyncio.sleep(0.3)  # the registry refresh keeps failing; the cache keeps 7
        assert core.directory.get(7) == TX

        redis_server.start()
        await until(lambda: not link.is_down, timeout=5)  # reconnected after the backoff
        assert core.from_client(RTP, CLIENT, loop.time()) is not None
        await services.stop()

    run(main())
