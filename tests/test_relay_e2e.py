"""The relay tier end to end, in one process, on real sockets on 127.0.0.1 (run it inside
scripts/netns-run.sh like the rest of the suite): a relay worker, two transceivers (each its own
UdpShell + RelayedEndpoint, registered in a real Redis), and two TestClients that only know the
relay's public address. Each session lands on the transceiver that answered its offer, media echoes,
and a relay restart in the middle of the calls loses nothing for long.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from voxwire.agent.echo import EchoAgent
from voxwire.aio.udp import UdpShell
from voxwire.proto.certificate import Certificate
from voxwire.proto.session import SessionConfig, State
from voxwire.relay.core import RelayConfig
from voxwire.relay.loop import RelaySettings, RelayWorker, start_worker
from voxwire.relay.registry import RedisLink, TransceiverRegistration
from voxwire.relay.transceiver_side import RelayedEndpoint, TokenUfragSource
from voxwire.testing.client import TestClient
from voxwire.testing.sockets import sockname, udp, until
from voxwire.transceiver.call import Call
from voxwire.transceiver.service import Transceiver, TransceiverConfig
from voxwire.wire.token import TokenKey, TokenMinter
from voxwire.wire.types import Address

KEY = TokenKey(3, os.urandom(32))
OPUS_FRAME = b"\xf8\xff\xfe"  # one 20 ms CELT frame


class Node:
    """One transceiver behind the relay."""

    def __init__(self, tid: int, relay_public: Address, relay_internal: Address, cert: Certificate) -> None:
        self.tid = tid
        config = TransceiverConfig(advertised=(relay_public,), session=SessionConfig(connect_timeout=10))
        source = TokenUfragSource(TokenMinter(KEY, 0, tid, os.urandom), time.time)
        self.transceiver = Transceiver(config, EchoAgent(), certificate=cert, ufrag_factory=source)
        self.relayed = RelayedEndpoint(self.transceiver.endpoint, [relay_internal])

    async def start(self) -> None:
        self.shell = await udp(self.relayed, after_drain=self.transceiver.collect)
        self.addr = sockname(self.shell)

    def close(self) -> None:
        assert self.shell.transport is not None
        self.shell.transport.close()


async def call(node: Node, cert: Certificate, seed: int) -> tuple[TestClient, UdpShell, Call]:
    loop = asyncio.get_running_loop()
    client = TestClient(cert, loop.time(), rng=random.Random(seed))
    shell = await udp(client)
    the_call, answer = node.transceiver.create_call(client.offer(), node.shell.now())
    node.shell.drain()
    client.answer(answer, shell.now())
    shell.drain()
    return client, shell, the_call


async def talk(clients: list[tuple[TestClient, UdpShell]], packets: int, start_ts: int = 0) -> None:
    for i in range(packets):
        for client, shell in clients:
            client.send_rtp(OPUS_FRAME, start_ts + i * 960)
            shell.drain()
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


def test_two_transceivers_behind_one_relay(redis_url, certs):
    async def main() -> None:
        link = RedisLink(redis_url)
        # Reserve the relay's ports first so the transceivers can be told the internal address.
        settings = RelaySettings(public=[("127.0.0.1", 0)], internal=("127.0.0.1", 0), keys=[KEY],
                                 redis_url=redis_url, config=RelayConfig())
        worker: RelayWorker = await start_worker(settings)
        public, internal = worker.public_addresses()[0], worker.internal_address
        nodes = [Node(tid, public, internal, certs[0]) for tid in (11, 12)]
        for node in nodes:
            await node.start()
        # 11 registers before the relay looks; 12 only after: the relay resolves it on demand.
        await TransceiverRegistration(link, 0, 11, nodes[0].addr).beat()
        await worker.services.resolver.refresh_all()  # type: ignore[union-attr]
        await TransceiverRegistration(link, 0, 12, nodes[1].addr).beat()

        (c1, s1, call1), (c2, s2, call2) = await call(nodes[0], certs[1], 1), await call(nodes[1], certs[1], 2)
        await until(lambda: c1.srtp is not None and c2.srtp is not None
                    and call1.session.state is State.CONNECTED and call2.session.state is State.CONNECTED)
        # Each session is on the transceiver that answered it, which sees the client's true address.
        assert call1.session.accepts(sockname(s1)) and call2.session.accepts(sockname(s2))
        assert call1.call_id in nodes[0].transceiver.calls and call2.call_id in nodes[1].transceiver.calls
        flows = worker.core.table
        f1, f2 = flows.get(sockname(s1)), flows.get(sockname(s2))
        assert f1 is not None and f1.transceiver == nodes[0].addr and f1.transceiver_id == 11
        assert f2 is not None and f2.transceiver == nodes[1].addr and f2.transceiver_id == 12
        await talk([(c1, s1), (c2, s2)], 25)
        await until(lambda: len(c1.received) >= 15 and len(c2.received) >= 15)
        assert worker.core.stats().get("parked_for_transceiver") == 1  # 12 was resolved on demand

        # Relay restart mid-call: the new worker binds the same addresses and recovers each flow
        # from the Redis flow cache (client side) or from the transceiver's next reply.
        await worker.stop()
        received = len(c1.received), len(c2.received)
        restarted = RelaySettings(public=[public], internal=internal, keys=[KEY], redis_url=redis_url)
        worker = await start_worker(restarted)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await talk([(c1, s1), (c2, s2)], 25, start_ts=25 * 960)
        await until(lambda: len(c1.received) > received[0] + 10 and len(c2.received) > received[1] + 10)
        stats = worker.core.stats()
        assert stats.get("flows_recovered", 0) + stats.get("flows_learned", 0) >= 2, stats
        assert loop.time() - t0 < 2.0
        assert worker.core.table.get(sockname(s1)) is not None

        await worker.stop()
        for node in nodes:
            node.close()
        for shell in (s1, s2):
            assert shell.transport is not None
            shell.transport.close()
        await link.close()

    asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_worker_forwards_both_ways_over_ipv4_and_ipv6(host):
    """A raw socket as the transceiver: the worker encapsulates a token check and strips replies."""
    import socket

    from voxwire.wire import stun
    from voxwire.wire.encap import pack_addr

    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tx = socket.socket(family, socket.SOCK_DGRAM)
        tx.bind((host, 0))
        tx.setblocking(False)
        settings = RelaySettings(public=[(host, 0)], internal=(host, 0), keys=[KEY],
                                 static_transceivers=[(21, tx.getsockname()[:2])])
        worker = await start_worker(settings)
        public = worker.public_addresses()[0]
        client = socket.socket(family, socket.SOCK_DGRAM)
        client.bind((host, 0))
        client.setblocking(False)
        me = client.getsockname()[:2]
        ufrag = TokenMinter(KEY, 0, 21, os.urandom).mint(time.time())
        check = stun.serialize(stun.StunMessage(stun.BINDING, stun.StunClass.REQUEST, b"q" * 12,
                                                username=ufrag.encode() + b":c"))
        await loop.sock_sendto(client, check, public)
        data, relay_addr = await asyncio.wait_for(loop.sock_recvfrom(tx, 2048), 2)
        assert data == pack_addr(me) + check and relay_addr[:2] == worker.internal_address
        await loop.sock_sendto(tx, pack_addr(me) + b"\x80reply", relay_addr)
        reply, src = await asyncio.wait_for(loop.sock_recvfrom(client, 2048), 2)
        assert reply == b"\x80reply" and src[:2] == public
        await loop.sock_sendto(client, b"\x80media", public)
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(tx, 2048), 2)
        assert data == pack_addr(me) + b"\x80media"
        await worker.stop()
        tx.close()
        client.close()

    asyncio.run(asyncio.wait_for(main(), 10))
