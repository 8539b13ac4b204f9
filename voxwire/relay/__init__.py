"""The relay tier: one public UDP address for the fleet, routing new flows by the ICE ufrag token.

* :mod:`voxwire.relay.flows` — the bounded flow table (sans-IO).
* :mod:`voxwire.relay.core` — :class:`RelayCore`, the per-datagram forwarding decisions (sans-IO).
* :mod:`voxwire.relay.transceiver_side` — :class:`RelayedEndpoint` and :class:`TokenUfragSource`,
  what a transceiver needs to sit behind relays (sans-IO).
* :mod:`voxwire.relay.registry` — Redis: transceiver registry, resolver cache, flow cache (asyncio).
* :mod:`voxwire.relay.loop` — the relay worker process: sockets, the hot loop, Redis off the hot path.
* :mod:`voxwire.relay.cli` — ``voxwire relay`` and ``voxwire transceiver``.
"""
