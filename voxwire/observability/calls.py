"""The call monitor: follows every call of one transceiver for the dashboard, metrics and traces.

Theory of operation
-------------------
The monitor reads what the call objects already keep and never changes them:

* **Which calls exist.** The signaling layer reports each call it creates (:meth:`CallMonitor.call_created`,
  with the offer request's duration); :meth:`CallMonitor.sync` also adopts any call it finds in
  ``transceiver.calls`` and finalizes tracked calls that closed or left. Tracked calls are held
  until finalized, so their counters and close reason are never lost between two looks.
* **Protocol state** (session state, selected address, SRTP profile, RTCP statistics, setup
  milestones) from ``call.session`` and ``call.timeline``, sampled once per tick
  (:meth:`CallMonitor.sample`, driven by the dashboard's timer): a bounded history per call for the
  charts, RTCP histograms, setup phase histograms once each milestone is seen.
* **The conversation** from the call's server events: the monitor adds one observer to
  ``call.observers`` (like a sideband connection) and follows voice activity
  (``input_audio_buffer.speech_started/stopped``), playback (``output_audio_buffer.started/stopped/
  cleared``), committed turns and the data channel greeting (``session.created``). Turn latency is
  measured from the end of speech as the VAD placed it (``audio_end_ms - silence_duration_ms``,
  mapped to the clock from the first inbound audio) to ``output_audio_buffer.started`` (which the
  voice layer emits when the first frame of the reply leaves); barge-in latency from the speech onset
  (``audio_start_ms + prefix_padding_ms``) to ``output_audio_buffer.cleared``. Events exist only once
  the call has an event channel (``oai-events``) or a sideband connection.

Time is the clock the monitor is given (the UDP shell's loop clock, the same as the calls' own).
Memory per call is bounded: the history keeps at most ``history`` points (float32 rows, 32 bytes
each) and halves its resolution when full, so a long call is still covered from start to end.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from voxwire.observability.metrics import Metrics, TrafficCounter, close_reason_label, is_drop
from voxwire.observability.series import Series
from voxwire.observability.tracing import AttributeValue, CallTrace, Tracer
from voxwire.realtime.session import vad_params
from voxwire.transceiver.call import Call
from voxwire.transceiver.service import Transceiver

__all__ = ["HISTORY_FIELDS", "CallMonitor", "CallRecord"]

#: How many of a call's latest turn and barge-in latencies its detail view keeps.
RECENT_LATENCIES = 20
#: What a call's history samples each tick (:meth:`CallRecord.sample`).
HISTORY_FIELDS = ("t", "pps_in", "pps_out", "loss_in", "jitter_in_ms", "rtt_ms", "loss_out", "jitter_out_ms")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class CallRecord:
    """What the monitor knows about one call."""

    __slots__ = (
        "monitor",
        "slot",
        "call",
        "call_id",
        "first_seen",
        "trace",
        "signaling",
        "requested",
        "datachannel_open",
        "vad_speaking",
        "assistant_playing",
        "user_turns",
        "replies",
        "barge_ins",
        "events",
        "last_turn",
        "last_response",
        "last_barge_in",
        "latencies",
        "history",
        "_pending_turn",
        "_onset",
        "_observed",
        "_last_block",
        "_prev",
    )

    def __init__(self, monitor: CallMonitor, call: Call, now: float, slot: int = 0) -> None:
        self.monitor = monitor
        #: Which slice of a sampling tick this call is in (:meth:`CallMonitor.sample`).
        self.slot = slot
        self.call = call
        self.call_id = call.call_id
        self.first_seen = now
        self.trace: CallTrace | None = monitor.tracer.call_trace(call.call_id, call.timeline.created)
        self.signaling: float | None = None
        #: When the offer request that made the call started (monotonic), if signaling said.
        self.requested: float | None = None
        self.datachannel_open: float | None = None
        self.vad_speaking = False
        self.assistant_playing = False
        self.user_turns = 0
        self.replies = 0
        self.barge_ins = 0
        self.events = 0
        self.last_turn: float | None = None
        self.last_response: float | None = None
        self.last_barge_in: float | None = None
        self.latencies: list[dict[str, Any]] = []  # the last RECENT_LATENCIES (a list: a deque is 760 bytes empty)
        self.history = Series(HISTORY_FIELDS, monitor.history)
        self._pending_turn: tuple[float, float] | None = None  # (VAD decision time, end of speech)
        self._onset: float | None = None  # speech onset while the assistant was playing
        self._observed: list[str] = []  # setup phases already observed (a list: an empty set is 216 bytes)
        self._last_block: object | None = None
        self._prev: tuple[float, int, int, int] | None = None  # (time, expected, received, sent)
        call.observers.append(self.on_event)

    # -- server events ----------------------------------------------------------------------------

    def on_event(self, text: str) -> None:
        """An observer of the call's server events (called inside the call's pump: must not raise)."""
        self.events += 1
        try:
            event = json.loads(text)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        now = self.monitor.clock()
        if kind == "input_audio_buffer.speech_started":
            self.vad_speaking = True
            onset = self._audio_time(event.get("audio_start_ms"), "prefix_padding_ms", +1)
            if self.assistant_playing and onset is not None:
                self._onset = onset
        elif kind == "input_audio_buffer.speech_stopped":
            self.vad_speaking = False
            end = self._audio_time(event.get("audio_end_ms"), "silence_duration_ms", -1)
            if end is not None:
                self._pending_turn = (now, end)
        elif kind == "input_audio_buffer.committed":
            self.user_turns += 1
        elif kind == "output_audio_buffer.started":
            self.assistant_playing = True
            self._reply_started(now)
        elif kind == "output_audio_buffer.stopped":
            self.assistant_playing = False
        elif kind == "output_audio_buffer.cleared":
            self.assistant_playing = False
            self._cleared(now)
        elif kind == "session.created" and self.datachannel_open is None:
            self.datachannel_open = now
            self._phases()

    def _audio_time(self, audio_ms: object, vad_knob: str, sign: int) -> float | None:
        """The clock time of an input-audio position (ms since the first inbound audio), moved by
        a VAD parameter (prefix padding forward, silence duration back)."""
        base = self.call.timeline.first_audio_in
        if base is None or not isinstance(audio_ms, int):
            return None
        vad = vad_params(self.call.voice.conversation.settings)
        knob = getattr(vad, vad_knob) if vad is not None else 0
        return base + (audio_ms + sign * knob) / 1000

    def _reply_started(self, now: float) -> None:
        pending, self._pending_turn = self._pending_turn, None
        if pending is None:
            return  # a reply nobody spoke to (response.create from the client)
        decided, end_of_speech = pending
        metrics = self.monitor.metrics
        self.replies += 1
        self.last_turn = max(0.0, now - end_of_speech)
        self.last_response = max(0.0, now - decided)
        metrics.turns.inc()
        metrics.turn_latency.observe(self.last_turn)
        metrics.response_latency.observe(self.last_response)
        self._latency({"kind": "turn", "at_s": round(now - self.call.timeline.created, 1),
                       "turn_ms": _ms(self.last_turn), "response_ms": _ms(self.last_response)})
        if self.trace is not None:
            self.trace.span("turn", end_of_speech, now, {
                "voxwire.turn": self.replies, "voxwire.response_latency_ms": _ms(self.last_response) or 0.0})

    def _latency(self, entry: dict[str, Any]) -> None:
        self.latencies.append(entry)
        del self.latencies[:-RECENT_LATENCIES]

    def _cleared(self, now: float) -> None:
        onset, self._onset = self._onset, None
        if onset is None:
            return
        self.barge_ins += 1
        self.last_barge_in = max(0.0, now - onset)
        self.monitor.metrics.barge_ins.inc()
        self.monitor.metrics.barge_in_latency.observe(self.last_barge_in)
        self._latency({"kind": "barge_in", "at_s": round(now - self.call.timeline.created, 1),
                       "barge_in_ms": _ms(self.last_barge_in)})
        if self.trace is not None:
            self.trace.span("barge_in", onset, now)

    # -- protocol state ---------------------------------------------------------------------------

    def _phases(self) -> None:
        """Observe each setup phase once, as soon as its milestones exist."""
        tl = self.call.timeline
        observe = self.monitor.metrics.setup_phase
        done = self._observed

        def phase(name: str, start: float | None, end: float | None) -> None:
            if name not in done and start is not None and end is not None:
                done.append(name)
                observe.labels(name).observe(max(0.0, end - start))
                if self.trace is not None and name in ("ice", "dtls", "datachannel"):
                    self.trace.span(name, start, end)

        if tl.connected is not None and "setup" not in done:
            self.monitor.metrics.calls_connected.inc()
        phase("ice", tl.created, tl.first_check)
        phase("dtls", tl.first_check, tl.connected)
        phase("setup", tl.created, tl.connected)
        phase("datachannel", tl.connected, self.datachannel_open)
        phase("first_audio_in", tl.connected, tl.first_audio_in)
        phase("first_audio_out", tl.connected, tl.first_audio_out)

    def sample(self, now: float) -> None:
        self._phases()
        session = self.call.session
        inbound, sent = session.inbound, session.outbound.stats
        metrics = self.monitor.metrics
        point: dict[str, Any] = {"t": round(now - self.call.timeline.created, 1)}
        expected = inbound.expected if inbound is not None else 0
        received = inbound.received if inbound is not None else 0
        if self._prev is not None:
            then, prev_expected, prev_received, prev_sent = self._prev
            dt = max(now - then, 1e-3)
            d_expected, d_received = expected - prev_expected, received - prev_received
            point["pps_in"] = round(d_received / dt, 1)
            point["pps_out"] = round((sent.packets_sent - prev_sent) / dt, 1)
            if d_expected > 0:
                loss = max(0, d_expected - d_received) / d_expected
                point["loss_in"] = round(loss, 4)
                metrics.loss.labels("inbound").observe(loss)
        self._prev = (now, expected, received, sent.packets_sent)
        if inbound is not None and received > 1:
            point["jitter_in_ms"] = _ms(inbound.jitter_seconds)
            metrics.jitter.labels("inbound").observe(inbound.jitter_seconds)
        block = sent.last_report
        if block is not None and block is not self._last_block:
            self._last_block = block
            metrics.loss.labels("outbound").observe(block.fraction_lost / 256)
            remote_jitter = sent.remote_jitter_seconds
            if remote_jitter is not None:
                metrics.jitter.labels("outbound").observe(remote_jitter)
            if sent.rtt is not None:
                metrics.rtt.observe(sent.rtt)
        if sent.rtt is not None:
            point["rtt_ms"] = _ms(sent.rtt)
        if block is not None:
            point["loss_out"] = round(block.fraction_lost / 256, 4)
            point["jitter_out_ms"] = _ms(sent.remote_jitter_seconds)
        self.history.add(point)

    # -- views ------------------------------------------------------------------------------------

    def counters(self) -> dict[tuple[str, str], int]:
        call = self.call
        session = call.session
        out: dict[tuple[str, str], int] = {}
        parts: list[tuple[str, dict[str, int]]] = [
            ("session", session.counters),
            ("ice", session.ice.counters),
            ("call", call.counters),
            ("voice", call.voice.counters),
        ]
        outbound, pacer = call.outbound, call.outbound.pacer.counters
        parts.append(("media", {"stream_trimmed": pacer.trimmed, "overflow": outbound.overflow_frames,
                                "late_ticks": pacer.late_ticks, "decode_errors": call.inbound.decode_errors}))
        dtls = session.dtls.counters
        parts.append(("dtls", {"malformed": dtls.malformed, "undecryptable": dtls.undecryptable,
                               "after_close": dtls.after_close, "retransmits": dtls.retransmits,
                               "verbatim_resends": dtls.verbatim_resends}))
        if call.channels is not None:
            parts.append(("datachannel", call.channels.counters))
            parts.append(("sctp", call.channels.association.stats))
        for layer, counts in parts:
            for name, value in counts.items():
                if value:
                    out[(layer, name)] = value
        return out

    def row(self, now: float, include_address: bool) -> dict[str, Any]:
        call = self.call
        session = call.session
        inbound, sent = session.inbound, session.outbound.stats
        block = sent.last_report
        vad = vad_params(call.voice.conversation.settings)
        remote = session.remote
        loss_in = None
        if inbound is not None and inbound.expected > 0:
            loss_in = round(max(0, inbound.cumulative_lost) / inbound.expected, 4)
        return {
            "id": call.call_id,
            "state": session.state.value,
            "age_s": round(now - call.timeline.created, 1),
            "client": (f"{remote[0]}:{remote[1]}" if remote else None) if include_address else "hidden",
            "transceiver": self.monitor.transceiver_name,
            "relay": self.monitor.relay_name,
            "agent": call.agent.name,
            "codec": f"opus/48000/2 (pt {session.params.opus_pt})",
            "srtp": session.srtp.profile.name if session.srtp is not None else None,
            "dtls_role": session.params.dtls_role.name.lower(),
            "datachannel": self.datachannel_open is not None,
            "rtt_ms": _ms(sent.rtt),
            "loss_in": loss_in,
            "loss_out": round(block.fraction_lost / 256, 4) if block is not None else None,
            "jitter_in_ms": _ms(inbound.jitter_seconds) if inbound is not None else None,
            "jitter_out_ms": _ms(sent.remote_jitter_seconds),
            "packets_in": inbound.received if inbound is not None else 0,
            "packets_out": sent.packets_sent,
            "vad": "off" if vad is None else "speaking" if self.vad_speaking else "silent",
            "assistant": "playing" if self.assistant_playing else "idle",
            "turns": self.user_turns,
            "replies": self.replies,
            "barge_ins": self.barge_ins,
            "last_turn_ms": _ms(self.last_turn),
            "last_response_ms": _ms(self.last_response),
            "last_barge_in_ms": _ms(self.last_barge_in),
        }

    def detail(self, now: float, include_address: bool) -> dict[str, Any]:
        tl = self.call.timeline
        created = tl.created

        def since(t: float | None) -> float | None:
            return None if t is None else _ms(t - created)

        counters: dict[str, dict[str, int]] = {}
        for (layer, name), value in sorted(self.counters().items()):
            counters.setdefault(layer, {})[name] = value
        return {
            **self.row(now, include_address),
            "timeline_ms": {
                "request": since(self.requested),  # the offer request's start: before the call, <= 0
                "signaling": _ms(self.signaling),
                "first_check": since(tl.first_check),
                "connected": since(tl.connected),
                "datachannel_open": since(self.datachannel_open),
                "first_audio_in": since(tl.first_audio_in),
                "first_audio_out": since(tl.first_audio_out),
                "closed": since(tl.closed),
            },
            "close_reason": self.call.close_reason,
            "counters": counters,
            "latencies": list(self.latencies),
            "history": {"step_s": self.history.step * self.monitor.interval, "points": self.history.points},
            "events": self.events,
        }


class CallMonitor:
    """Tracks the calls of ``transceiver``; see the module docstring."""

    def __init__(
        self,
        transceiver: Transceiver,
        clock: Callable[[], float],
        metrics: Metrics,
        tracer: Tracer,
        *,
        traffic: TrafficCounter | None = None,
        interval: float = 1.0,
        history: int = 300,
        recent: int = 20,
        transceiver_name: str = "local",
    ) -> None:
        self.transceiver = transceiver
        self.clock = clock
        self.metrics = metrics
        self.tracer = tracer
        self.traffic = traffic
        self.interval = interval
        self.history = history
        self.transceiver_name = transceiver_name
        #: The embedded relay worker (``stats()``), when there is one.
        self.relay: Any = None
        self.relay_name: str | None = None
        #: Other driver-shaped wrappers with ``counters`` (the RelayedEndpoint), by layer name.
        self.extra_counters: dict[str, Callable[[], dict[str, int]]] = {}
        self.records: dict[str, CallRecord] = {}
        self._tracked = 0  # calls ever tracked: each one's sampling slot
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.ended_counters: dict[tuple[str, str], int] = {}
        self.started = clock()
        self._cpu: tuple[float, float] | None = None
        self.cpu_percent: float | None = None

    # -- following calls --------------------------------------------------------------------------

    def call_created(self, call_id: str, request_started: float | None = None) -> CallRecord | None:
        """Signaling created ``call_id`` (the offer request started at ``request_started``)."""
        call = self.transceiver.calls.get(call_id)
        if call is None:
            return None
        record = self._track(call)
        if request_started is not None and record.signaling is None:
            now = self.clock()
            record.requested = request_started
            record.signaling = max(0.0, now - request_started)
            self.metrics.setup_phase.labels("signaling").observe(record.signaling)
            if record.trace is not None:
                record.trace.span("signaling", request_started, now)
        return record

    def _track(self, call: Call) -> CallRecord:
        record = self.records.get(call.call_id)
        if record is None:
            record = self.records[call.call_id] = CallRecord(self, call, self.clock(), self._tracked)
            self._tracked += 1
            self.metrics.calls_created.inc()
        return record

    def sync(self) -> None:
        """Adopt calls we have not seen; finalize those that closed or left the transceiver; observe
        the setup phases reached since the last look."""
        self._adopt_and_finalize()
        for record in self.records.values():
            record._phases()

    def _adopt_and_finalize(self) -> None:
        calls = self.transceiver.calls
        for call_id, call in calls.items():
            if call_id not in self.records and not call.is_closed:
                self._track(call)
        for call_id, record in list(self.records.items()):
            if record.call.is_closed or calls.get(call_id) is not record.call:
                self._finalize(record)

    def sample(self, part: int = 0, parts: int = 1) -> None:
        """Sample the live calls (history, RTCP histograms, setup phases): all of them, or the
        ``part``-th of ``parts`` slices (each call is in one slice; one tick is ``parts`` calls of
        this method, ``part`` 0 first, which also adopts new calls and finalizes ended ones).

        Slicing is for the loop's sake: sampling costs ~35 µs a call, so 200 calls sampled at once
        held the loop for 7 ms (measured), in the way of every packet and handshake due meanwhile.
        """
        if part == 0:  # once a tick, not once a slice: it looks at every call
            self._adopt_and_finalize()
            self._sample_cpu()
        now = self.clock()
        for record in self.records.values():
            if record.slot % parts == part:
                record.sample(now)

    def _finalize(self, record: CallRecord) -> None:
        del self.records[record.call_id]
        call = record.call
        now = self.clock()
        record._phases()
        for key, value in record.counters().items():
            self.ended_counters[key] = self.ended_counters.get(key, 0) + value
        if record.on_event in call.observers:
            call.observers.remove(record.on_event)
        reason = call.close_reason or call.session.closed_reason
        label = close_reason_label(reason)
        self.metrics.calls_ended.labels(label).inc()
        end = call.timeline.closed if call.timeline.closed is not None else now
        if record.trace is not None:
            failed = label in ("connect_timeout", "dtls") or call.timeline.connected is None
            attrs: dict[str, AttributeValue] = {"voxwire.close_reason": label, "voxwire.turns": record.replies,
                                           "voxwire.agent": call.agent.name}
            if call.session.srtp is not None:
                attrs["voxwire.srtp_profile"] = call.session.srtp.profile.name
            record.trace.finish(end, attrs, error=(reason or "closed") if failed else None)
        self.recent.appendleft({
            "id": call.call_id,
            "ended_s_ago": 0.0,
            "ended_at": end,
            "duration_s": round(end - call.timeline.created, 1),
            "reason": reason,
            "connected": call.timeline.connected is not None,
            "turns": record.user_turns,
            "replies": record.replies,
        })

    def _sample_cpu(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        now = time.monotonic()
        cpu = usage.ru_utime + usage.ru_stime
        if self._cpu is not None:
            then, before = self._cpu
            if now > then:
                self.cpu_percent = round(100 * (cpu - before) / (now - then), 1)
        self._cpu = (now, cpu)

    # -- views ------------------------------------------------------------------------------------

    def counters(self) -> dict[tuple[str, str], int]:
        """Every counter, live and ended calls and process-wide parts, keyed (layer, name)."""
        out = dict(self.ended_counters)
        for record in self.records.values():
            for key, value in record.counters().items():
                out[key] = out.get(key, 0) + value
        for name, value in self.transceiver.endpoint.counters.items():
            out[("endpoint", name)] = value
        for layer, read in self.extra_counters.items():
            for name, value in read().items():
                out[(layer, name)] = value
        return out

    def sessions_by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for record in self.records.values():
            state = record.call.session.state.value
            out[state] = out.get(state, 0) + 1
        return out

    def live_state(self) -> dict[str, Any]:
        """What :class:`~voxwire.observability.metrics.LiveCollector` reads at scrape time."""
        self.sync()
        return {
            "sessions": self.sessions_by_state(),
            "max_sessions": self.transceiver.config.max_calls,
            "counters": self.counters(),
            "traffic": self.traffic,
            "relay": self.relay.stats() if self.relay is not None else None,
            "media": self.media_state(),
        }

    def media_state(self) -> dict[str, int]:
        """The transceiver's load-following encoder and shared VAD batch."""
        complexity, batch = self.transceiver.complexity, self.transceiver.vad_batch
        return {
            "opus_complexity": complexity.complexity,
            "opus_step_downs": complexity.step_downs,
            "vad_runs": batch.runs if batch is not None else 0,
            "vad_windows": batch.windows if batch is not None else 0,
        }

    def overview(self, include_addresses: bool, max_rows: int = 200) -> dict[str, Any]:
        self.sync()
        now = self.clock()
        records = sorted(self.records.values(), key=lambda r: r.call.timeline.created)
        drops: dict[str, dict[str, int]] = {}
        for (layer, name), value in sorted(self.counters().items()):
            if is_drop(layer, name):
                drops.setdefault(layer, {})[name.removeprefix("drop_")] = value
        relay = None
        if self.relay is not None:
            stats = self.relay.stats()
            relay = {
                "name": self.relay_name,
                "flows": stats.get("flows", 0),
                "parked": stats.get("parked", 0),
                "counters": {k: v for k, v in sorted(stats.items()) if k not in ("flows", "parked")},
            }
        recent = []
        for item in self.recent:
            recent.append({**{k: v for k, v in item.items() if k != "ended_at"},
                           "ended_s_ago": round(now - item["ended_at"], 1)})
        return {
            "uptime_s": round(now - self.started, 1),
            "sessions": [r.row(now, include_addresses) for r in records[:max_rows]],
            "total_sessions": len(records),
            "by_state": self.sessions_by_state(),
            "load": {
                "calls": len(self.transceiver.calls),
                "max_calls": self.transceiver.config.max_calls,
                "agent": self.transceiver.agent.name,
                "cpu_percent": self.cpu_percent,
                "rss_mb": _rss_mb(),
            },
            "traffic": self.traffic.totals() if self.traffic is not None else None,
            "drops": drops,
            "relay": relay,
            "recent": recent,
        }

    def detail(self, call_id: str, include_addresses: bool) -> dict[str, Any] | None:
        self.sync()
        record = self.records.get(call_id)
        return None if record is None else record.detail(self.clock(), include_addresses)


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
