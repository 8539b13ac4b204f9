"""Prometheus metrics of one server (``GET /metrics``), with prometheus_client.

Two kinds of series:

* **Observed** as things happen, by the call monitor (:mod:`voxwire.observability.calls`): calls
  created and ended (by a bounded set of reasons), setup phase durations, RTCP round-trip time,
  jitter and loss (per report block, or once per sampling tick for our own receiver statistics),
  turn, response and barge-in latencies.
* **Collected** when scraped, by :class:`LiveCollector`, from state the server already keeps: sessions
  by state, datagrams and bytes by direction and kind (:class:`TrafficCounter`), drops and other
  events by layer and reason (the protocol cores' ``counters`` dicts, summed over live and ended
  calls), the embedded relay's flows, drops and Redis errors.

Conventions: every name starts with ``voxwire_``; counters end in ``_total``, durations are
``_seconds``, fractions ``_ratio``; labels take values from small fixed sets (state, phase,
direction, kind, layer, reason): no per-call or per-address label, so the number of series does not
grow with traffic. Reasons are the code's own counter names, a bounded set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from voxwire.wire.types import Address

__all__ = [
    "CONTENT_TYPE",
    "CountingCore",
    "LiveCollector",
    "Metrics",
    "TrafficCounter",
    "close_reason_label",
    "relay_registry",
]

# The *_created series (one per labelled child) double the output for no use here.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

#: The classic text exposition format (0.0.4), which every Prometheus version scrapes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_PHASE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_RTT_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)
_JITTER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25)
_LOSS_BUCKETS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
_TURN_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_BARGE_IN_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)

#: Setup phases (label values of voxwire_call_setup_phase_seconds).
PHASES = ("signaling", "ice", "dtls", "setup", "datachannel", "first_audio_in", "first_audio_out")
#: Reasons a call ended (label values of voxwire_calls_ended_total).
CLOSE_REASONS = ("hung_up", "connect_timeout", "consent_expired", "dtls", "application", "unknown")


def close_reason_label(reason: str | None) -> str:
    """The bounded label for a session's free-text close reason."""
    if not reason:
        return "unknown"
    if reason == "hung up":
        return "hung_up"
    if reason == "connect timeout":
        return "connect_timeout"
    if reason == "ICE consent expired":
        return "consent_expired"
    if reason.startswith("DTLS"):
        return "dtls"
    return "application"


class Metrics:
    """The registry of one server and the series the call monitor observes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls_created = Counter(
            "voxwire_calls_created", "Calls created (SDP offers answered).", registry=r
        )
        self.calls_ended = Counter("voxwire_calls_ended", "Calls ended, by reason.", ["reason"], registry=r)
        self.calls_connected = Counter(
            "voxwire_calls_connected", "Calls whose DTLS-SRTP setup completed.", registry=r
        )
        self.setup_phase = Histogram(
            "voxwire_call_setup_phase_seconds",
            "Call setup phases: signaling (offer request), ice (answer to first check), dtls (first check to "
            "keys), setup (answer to keys), datachannel (keys to oai-events open), first_audio_in/out (keys to "
            "the first RTP packet in / out).",
            ["phase"],
            buckets=_PHASE_BUCKETS,
            registry=r,
        )
        self.rtt = Histogram(
            "voxwire_rtcp_round_trip_time_seconds",
            "Round-trip time from the client's RTCP report blocks (RFC 3550 6.4.1), one per new block.",
            buckets=_RTT_BUCKETS,
            registry=r,
        )
        self.jitter = Histogram(
            "voxwire_rtcp_jitter_seconds",
            "Interarrival jitter (RFC 3550 A.8): inbound = of the client's stream as we measure it (sampled "
            "each monitor tick), outbound = of our stream as the client reports it (per report block).",
            ["direction"],
            buckets=_JITTER_BUCKETS,
            registry=r,
        )
        self.loss = Histogram(
            "voxwire_rtcp_fraction_lost_ratio",
            "Fraction of RTP packets lost: inbound = per monitor tick from our receiver statistics, "
            "outbound = the client's report blocks (fraction lost / 256).",
            ["direction"],
            buckets=_LOSS_BUCKETS,
            registry=r,
        )
        self.turns = Counter(
            "voxwire_turns", "Assistant replies that started playing after a user turn.", registry=r
        )
        self.turn_latency = Histogram(
            "voxwire_turn_latency_seconds",
            "End of the user's speech (as placed by the VAD) to the first audio frame of the reply sent.",
            buckets=_TURN_BUCKETS,
            registry=r,
        )
        self.response_latency = Histogram(
            "voxwire_response_latency_seconds",
            "The VAD's end-of-turn decision (speech_stopped) to the first audio frame of the reply sent.",
            buckets=_TURN_BUCKETS,
            registry=r,
        )
        self.barge_ins = Counter("voxwire_barge_ins", "Replies interrupted by the user speaking.", registry=r)
        self.barge_in_latency = Histogram(
            "voxwire_barge_in_latency_seconds",
            "Onset of the user's speech (as placed by the VAD) to the reply's audio being cleared.",
            buckets=_BARGE_IN_BUCKETS,
            registry=r,
        )
        self.trace_export_errors = Counter(
            "voxwire_trace_export_errors", "Trace batches the exporter failed to deliver.", registry=r
        )
        for phase in PHASES:  # every phase shows up, with zero counts, before its first call
            self.setup_phase.labels(phase)
        for reason in CLOSE_REASONS:
            self.calls_ended.labels(reason)
        for direction in ("inbound", "outbound"):
            self.jitter.labels(direction)
            self.loss.labels(direction)

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)


# -- datagrams by direction and kind ---------------------------------------------------------------

KINDS = ("stun", "dtls", "rtp", "rtcp", "other")
_STUN, _DTLS, _RTP, _RTCP, _OTHER = range(5)
# RFC 7983 §7 first-byte ranges; RTP vs RTCP by the second byte (RFC 5761 §4: RTCP packet types
# 192-223 occupy that byte).
_FIRST_BYTE = tuple(
    _STUN if b <= 3 else _DTLS if 20 <= b <= 63 else _RTP if 128 <= b <= 191 else _OTHER for b in range(256)
)


def _kind(data: bytes) -> int:
    if not data:
        return _OTHER
    kind = _FIRST_BYTE[data[0]]
    if kind == _RTP and len(data) > 1 and 192 <= data[1] <= 223:
        return _RTCP
    return kind


class Core(Protocol):
    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None: ...

    def handle_timeout(self, now: float) -> None: ...

    def poll_transmit(self) -> tuple[bytes, Address] | None: ...

    def poll_timeout(self) -> float | None: ...


class TrafficCounter:
    """Datagrams and bytes by direction (``in``/``out``) and kind (STUN, DTLS, RTP, RTCP, other)."""

    def __init__(self) -> None:
        self.packets = {"in": [0] * len(KINDS), "out": [0] * len(KINDS)}
        self.bytes = {"in": [0] * len(KINDS), "out": [0] * len(KINDS)}

    def wrap(self, core: Core) -> CountingCore:
        return CountingCore(core, self)

    def totals(self) -> dict[str, dict[str, dict[str, int]]]:
        """{"packets"|"bytes": {"in"|"out": {kind: n}}}"""
        return {
            what: {d: dict(zip(KINDS, counts[d], strict=True)) for d in ("in", "out")}
            for what, counts in (("packets", self.packets), ("bytes", self.bytes))
        }


class CountingCore:
    """A driver-shaped proxy that counts what passes between the UDP shell and its core (one table
    lookup and two additions per datagram, ~0.15 us). The wrapped core is :attr:`core`; no
    ``__getattr__`` forwarding, which would slow every attribute access on the hot path."""

    __slots__ = ("core", "counter", "_in_p", "_in_b", "_out_p", "_out_b")

    def __init__(self, core: Core, counter: TrafficCounter) -> None:
        self.core = core
        self.counter = counter
        self._in_p, self._in_b = counter.packets["in"], counter.bytes["in"]
        self._out_p, self._out_b = counter.packets["out"], counter.bytes["out"]

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None:
        kind = _FIRST_BYTE[data[0]] if data else _OTHER  # _kind(), inlined: this runs per datagram
        if kind == _RTP and len(data) > 1 and 192 <= data[1] <= 223:
            kind = _RTCP
        self._in_p[kind] += 1
        self._in_b[kind] += len(data)
        self.core.handle_datagram(data, addr, now)

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        out = self.core.poll_transmit()
        if out is not None:
            data = out[0]
            kind = _FIRST_BYTE[data[0]] if data else _OTHER
            if kind == _RTP and len(data) > 1 and 192 <= data[1] <= 223:
                kind = _RTCP
            self._out_p[kind] += 1
            self._out_b[kind] += len(data)
        return out

    def handle_timeout(self, now: float) -> None:
        self.core.handle_timeout(now)

    def poll_timeout(self) -> float | None:
        return self.core.poll_timeout()


def install_traffic_counter(shell: Any) -> TrafficCounter:
    """Put a :class:`CountingCore` in front of the core that ``shell`` (a UdpShell) drives. Behind
    relays (a core with ``endpoint`` and ``is_relay``, the RelayedEndpoint) it goes between the
    decapsulation and the endpoint, so datagrams are classified by their own first byte."""
    core = shell.core
    relayed = hasattr(core, "is_relay") and hasattr(core, "endpoint")
    inner = core.endpoint if relayed else core
    if isinstance(inner, CountingCore):  # a second app on the same shell shares the counter
        return inner.counter
    counter = TrafficCounter()
    if relayed:
        core.endpoint = counter.wrap(inner)
    else:
        shell.core = counter.wrap(inner)
    return counter


# -- collected when scraped ------------------------------------------------------------------------

#: Counter names that are not drops, per layer (everything else a core counts is a drop or an error).
_NOT_DROPS = {
    "ice": {"valid_check"},
    "dtls": {"retransmits", "verbatim_resends"},
    "sctp": {"heartbeats_sent", "retransmitted", "fast_retransmits", "t3_expiries"},
    "voice": {"interruptions"},
    "relay": {"flows_recovered"},
}


def is_drop(layer: str, name: str) -> bool:
    return name not in _NOT_DROPS.get(layer, set())


class LiveCollector:
    """Reads live state at scrape time. ``source`` returns a :class:`LiveState`-shaped dict:

    * ``sessions``: {state: count}; ``max_sessions``: int
    * ``counters``: {(layer, name): count} (drops and other events, live and ended calls)
    * ``traffic``: a :class:`TrafficCounter` or None
    * ``relay``: the relay worker's ``stats()`` dict or None
    * ``media``: {"opus_complexity", "opus_step_downs", "vad_runs", "vad_windows"} (ints; the VAD
      figures are 0 while no session has used the batch)
    """

    def __init__(self, source: Callable[[], dict[str, Any]]) -> None:
        self.source = source

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on live state; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        state = self.source()
        sessions = GaugeMetricFamily("voxwire_sessions", "Live calls by session state.", labels=["state"])
        for name in ("new", "connecting", "connected"):
            sessions.add_metric([name], state["sessions"].get(name, 0))
        yield sessions
        yield GaugeMetricFamily(
            "voxwire_sessions_max", "Most concurrent calls allowed.", value=state["max_sessions"]
        )
        traffic: TrafficCounter | None = state.get("traffic")
        if traffic is not None:
            packets = CounterMetricFamily(
                "voxwire_udp_datagrams",
                "Datagrams on the media socket by direction and kind (RFC 7983).",
                labels=["direction", "kind"],
            )
            octets = CounterMetricFamily(
                "voxwire_udp_bytes",
                "UDP payload bytes on the media socket by direction and kind.",
                labels=["direction", "kind"],
            )
            for direction in ("in", "out"):
                for i, kind in enumerate(KINDS):
                    packets.add_metric([direction, kind], traffic.packets[direction][i])
                    octets.add_metric([direction, kind], traffic.bytes[direction][i])
            yield packets
            yield octets
        drops = CounterMetricFamily(
            "voxwire_drops",
            "Datagrams, messages or events dropped, by layer and reason.",
            labels=["layer", "reason"],
        )
        events = CounterMetricFamily(
            "voxwire_protocol_events",
            "Other protocol events the cores count, by layer and event.",
            labels=["layer", "event"],
        )
        for (layer, name), value in sorted(state["counters"].items()):
            (drops if is_drop(layer, name) else events).add_metric([layer, name.removeprefix("drop_")], value)
        yield drops
        yield events
        media = state.get("media")
        if media is not None:
            yield from _media_families(media)
        relay = state.get("relay")
        if relay is not None:
            yield from _relay_families(relay)


def _media_families(media: dict[str, int]) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "voxwire_opus_encoder_complexity",
        "Opus complexity the encoders use now (lower while the event loop is loaded).",
        value=media["opus_complexity"],
    )
    yield CounterMetricFamily(
        "voxwire_opus_complexity_step_downs",
        "Times the encoders stepped down because the event loop was loaded.",
        value=media["opus_step_downs"],
    )
    yield CounterMetricFamily(
        "voxwire_vad_runs",
        "Silero runs of the shared VAD batch (windows / runs = sessions per run).",
        value=media["vad_runs"],
    )
    yield CounterMetricFamily(
        "voxwire_vad_windows", "32 ms windows the shared VAD batch scored.", value=media["vad_windows"]
    )


_RELAY_GAUGES = {
    "flows": "Client flows in the relay's table.",
    "parked": "Datagrams parked awaiting a lookup.",
}
_RELAY_FLOW_EVENTS = (
    "flows_created",
    "flows_expired",
    "flows_evicted",
    "flows_full_refused",
    "flows_recovered",
)


def _relay_families(stats: dict[str, int]) -> Iterator[Metric]:
    for name, help_ in _RELAY_GAUGES.items():
        yield GaugeMetricFamily(f"voxwire_relay_{name}", help_, value=stats.get(name, 0))
    flows = CounterMetricFamily("voxwire_relay_flow_events", "Relay flow table events.", labels=["event"])
    for name in _RELAY_FLOW_EVENTS:
        flows.add_metric([name.removeprefix("flows_")], stats.get(name, 0))
    yield flows
    drops = CounterMetricFamily(
        "voxwire_relay_drops", "Datagrams the relay dropped, by reason.", labels=["reason"]
    )
    for name, value in sorted(stats.items()):
        if name.startswith("drop_"):
            drops.add_metric([name.removeprefix("drop_")], value)
    yield drops
    errors = CounterMetricFamily("voxwire_relay_socket_errors", "Relay socket errors.", labels=["direction"])
    errors.add_metric(["send"], stats.get("send_errors", 0))
    errors.add_metric(["recv"], stats.get("recv_errors", 0))
    yield errors
    redis = CounterMetricFamily(
        "voxwire_redis_errors", "Redis commands that failed or timed out.", labels=["component"]
    )
    redis.add_metric(["relay"], stats.get("redis_failures", 0))
    yield redis
    skipped = CounterMetricFamily(
        "voxwire_redis_skipped",
        "Redis commands not sent while backing off after a failure.",
        labels=["component"],
    )
    skipped.add_metric(["relay"], stats.get("redis_skipped", 0))
    yield skipped
    yield CounterMetricFamily(
        "voxwire_relay_redis_queue_dropped",
        "Relay Redis requests dropped on a full queue.",
        value=stats.get("redis_queue_dropped", 0),
    )


class _RelayCollector:
    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self.stats = stats

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from _relay_families(self.stats())


def relay_registry(stats: Callable[[], dict[str, int]]) -> CollectorRegistry:
    """A registry with the relay families only, for a standalone ``voxwire relay`` worker (which has
    no signaling app): serve ``prometheus_client.generate_latest(registry)`` on its metrics port."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_RelayCollector(stats))
    return registry
