"""What a transceiver needs to sit behind relays, sans-IO.

Theory of operation
-------------------
:class:`RelayedEndpoint` wraps the transceiver's :class:`~voxwire.proto.endpoint.Endpoint` (which it
does not change) and has the same driver shape, so the one :class:`~voxwire.aio.udp.UdpShell` of the
transceiver's socket drives it instead:

* A datagram from a relay's internal address whose first byte is in the encapsulation range
  (:func:`voxwire.wire.encap.is_encapsulated`) is decoded: the endpoint sees the payload from the
  client's true public address, and the wrapper remembers which relay address that client came
  through (the latest one wins, so a client whose flow moved to another relay worker follows it).
* A transmit to such a client is encapsulated and sent to that relay address instead; the relay
  strips the header and sends it from the public address the client used.
* Anything else is direct (single-node mode): passed through unchanged, both ways. An encapsulated
  datagram from an address that is not a relay is dropped and counted: the header is not
  authenticated (see :mod:`voxwire.wire.encap`), so only the relays may claim a client address.

Relays are given as addresses; port 0 means any port of that host (one relay host runs several
workers, each with its own internal port). The client -> relay map is bounded by ``max_clients``;
when full the oldest entry goes (counted): its client's replies would then go direct, so keep the
bound above the transceiver's ``max_calls`` times the addresses a call may use.

:class:`TokenUfragSource` mints each session's server ufrag as a routing token (the relay reads the
transceiver id from it); plug it into ``Transceiver(ufrag_factory=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from voxwire.proto.endpoint import Endpoint
from voxwire.wire.encap import decode_offset, is_encapsulated, pack_addr
from voxwire.wire.errors import ParseError
from voxwire.wire.token import TokenMinter
from voxwire.wire.types import Address

__all__ = ["RelayedEndpoint", "TokenUfragSource"]


class RelayedEndpoint:
    """Driver-shaped wrapper: decapsulates datagrams from relays, encapsulates replies to them."""

    def __init__(
        self,
        endpoint: Endpoint,  # type: ignore[type-arg]
        relay_addresses: Iterable[Address],
        *,
        max_clients: int = 65536,
    ) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.endpoint = endpoint
        self._relays: set[Address] = set()
        self._relay_hosts: set[str] = set()
        for host, port in relay_addresses:
            if port == 0:
                self._relay_hosts.add(host)
            else:
                self._relays.add((host, port))
        self.max_clients = max_clients
        #: client address -> the relay address its datagrams last came through.
        self._via: dict[Address, Address] = {}
        self.counters: dict[str, int] = {}

    def is_relay(self, addr: Address) -> bool:
        return addr in self._relays or addr[0] in self._relay_hosts

    # -- driver shape -----------------------------------------------------------------------------

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None:
        if is_encapsulated(data):
            if not self.is_relay(addr):
                self._count("drop_encapsulated_from_non_relay")
                return
            try:
                client, offset = decode_offset(data)
            except ParseError:
                self._count("drop_bad_encapsulation")
                return
            via = self._via
            if via.get(client) != addr:
                via.pop(client, None)
                if len(via) >= self.max_clients:
                    del via[next(iter(via))]
                    self._count("via_evicted")
                via[client] = addr
            self.endpoint.handle_datagram(data[offset:], client, now)
            return
        if addr in self._relays:  # a relay never sends unencapsulated datagrams
            self._count("drop_plain_from_relay")
            return
        self.endpoint.handle_datagram(data, addr, now)

    def handle_timeout(self, now: float) -> None:
        self.endpoint.handle_timeout(now)

    def poll_timeout(self) -> float | None:
        return self.endpoint.poll_timeout()

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        out = self.endpoint.poll_transmit()
        if out is None:
            return None
        relay = self._via.get(out[1])
        if relay is None:
            return out
        return pack_addr(out[1]) + out[0], relay

    def forget(self, client: Address) -> None:
        """Drop a client's relay route (the application saw its session end)."""
        self._via.pop(client, None)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1


class TokenUfragSource:
    """``ufrag_factory`` for :class:`~voxwire.transceiver.service.Transceiver`: each call mints a
    fresh routing-token ufrag. ``wallclock`` returns Unix seconds (``time.time`` in the service)."""

    def __init__(self, minter: TokenMinter, wallclock: Callable[[], float]) -> None:
        self.minter = minter
        self.wallclock = wallclock

    def __call__(self) -> str:
        return self.minter.mint(self.wallclock())
