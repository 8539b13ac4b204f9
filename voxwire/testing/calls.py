"""Connected calls on virtual time: a transceiver and its clients, ready for media.

For tests and in-process benchmarks that need many calls past ICE and DTLS before they start.
"""

from __future__ import annotations

import random

from voxwire.proto.certificate import Certificate
from voxwire.proto.session import State
from voxwire.testing.client import TestClient
from voxwire.testing.link import Link, LinkConfig, Network
from voxwire.transceiver.call import Call
from voxwire.transceiver.service import Transceiver

__all__ = ["client_address", "connect_calls"]


def client_address(i: int) -> tuple[str, int]:
    """Where the ``i``-th client of :func:`connect_calls` sits."""
    return ("192.0.2.10", 50000 + i)


def connect_calls(
    transceiver: Transceiver, client_certificate: Certificate, n: int, *, delay: float = 0.005
) -> tuple[Network, list[tuple[TestClient, Call]]]:
    """``n`` clients (seeded 0..n-1) call ``transceiver``, whose endpoint sits at its first
    advertised address, over a lossless network with ``delay`` one way; returns once every call
    is connected and every client has its SRTP keys."""
    net = Network(Link(LinkConfig(delay=delay)))
    net.add(transceiver.config.advertised[0], transceiver.endpoint)
    pairs = []
    for i in range(n):
        client = TestClient(client_certificate, net.now, rng=random.Random(i))
        call, answer = transceiver.create_call(client.offer(), net.now)
        client.answer(answer, net.now)
        net.add(client_address(i), client)
        pairs.append((client, call))
    net.run_until(lambda: all(c.srtp is not None and call.session.state is State.CONNECTED for c, call in pairs))
    return net, pairs
