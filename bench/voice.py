"""The voice layer's own latency and cost: turns, barge-in, pacing, CPU per session (issue 5).

Run: ``.venv/bin/python bench/voice.py [--sessions 1,50] [--seconds 40] [--loop uvloop|asyncio]
[--vad batched,single] [--arrivals burst,spread] [--work sliced,inline]`` (needs espeak-ng). ``--vad``: the turn detectors share one VAD batch per
loop iteration as in ``voxwire serve`` (``batched``), or run Silero once per window (``single``);
give both to compare them in one run. ``--arrivals``: the callers send every session's frame at the
same instant (``burst``, one shared timer: the worst case for the gateway) or with their phases
spread over the 20 ms in ten groups (``spread``, as independent clients' clocks are). ``--work``:
input audio is decoded and output frames are encoded ahead in loop callbacks of a few calls
between pacer ticks (``sliced``, as ``voxwire serve`` runs it), or inside each datagram's handling
and at each tick (``inline``). Prints a Markdown
table and writes ``bench/out/voice.json``.

Set-up, per configuration (1 and 50 concurrent sessions by default):

* **The gateway** runs in this process, as ``voxwire serve`` does: a :class:`Transceiver` on one
  real UDP socket (uvloop by default), the Silero ``server_vad`` turn detector, the asyncio
  :class:`AgentRunner` and the HTTP signaling app (offers are POSTed to ``/v1/realtime/calls``).
  The agent is a trivial instant one: its ``respond()`` yields 3 s of a tone at once, so every
  millisecond measured is the gateway's.
* **The callers** run in a child process (``--client``): ``TestClient`` peers (ICE, DTLS, SRTP) on
  their own sockets, each sending 20 ms Opus frames in real time from a loop of two espeak-ng
  phrases with 1 s of silence after each. Each phrase ends a turn (committed 500 ms later, and
  answered), and the next phrase starts while that answer is playing: a barge-in. Each caller
  starts at a random point of the loop. RTP timestamps count frames of the loop, so the gateway
  knows when the first packet of each phrase arrives.

Measured in the gateway (``time.monotonic``; the first ``--warmup`` seconds are dropped), by
wrapping the objects of each call (the wrappers cost well under a microsecond per frame):

* **gateway share of the response time**, per turn: (a) from the VAD's end-of-turn decision (the
  turn detector's ``feed()`` returning ``TurnCommitted``) to the agent's ``respond()`` starting
  (through the voice layer's command, the runner's ``after_drain`` and its task); (b) from the
  agent yielding its first audio to the ``sendto`` of the response's first RTP packet (voice
  layer, pacer, Opus encode, SRTP, socket). Target: (a) + (b) under 5 ms at p99.
* **barge-in**: from the VAD's decision (``SpeechStarted`` while the assistant's audio plays) to
  the last assistant RTP packet sent. A negative value means nothing left after the decision (the
  last packet went out at the tick before it). Target: under 25 ms. For context, also from the
  arrival of the interrupting phrase's first packet to the decision (the VAD's own reaction time,
  dominated by its 32 ms windows and Silero's onset delay) and to the last assistant packet.
* **egress pacing**: each RTP packet's ``sendto`` time minus its tick on the pacer's 20 ms grid
  (``PacedFrame.due``): p50, p99 and max. Target: p99 under 2 ms.
* **CPU per session** (``time.thread_time``, the event loop's thread): the turn detector (24 ->
  16 kHz resampling, Silero VAD, energy placement; with a batch, its runs, on the VAD worker
  thread, shared out over the sessions) and Opus decode per 20 ms of input, and Opus
  encode (with the pacer) per frame sent; as microseconds per frame and as the share of one core a
  session costs (input 50 frames/s; output while the assistant talks). Also the whole gateway
  process (``time.process_time``: SRTP, ICE, HTTP, the runner, everything) per session.

On 2 shared cores the 50-session figures include queueing behind the other sessions' packets on
the single event loop, which is the point; the callers' process competes for the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
import wave
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FRAME_SECONDS = 0.02
OPUS_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at the RTP clock (48 kHz)
OPUS_PT = 111
PHRASES = ("Tell me about the weather in Paris today.", "Wait, one more thing about that.")
GAP_SECONDS = 1.0
REPLY_SECONDS = 3.0
AGENT_RATE = 24_000
OUT = Path(__file__).resolve().parent / "out" / "voice.json"

TARGETS = {"gateway_share_p99_ms": 5.0, "barge_in_p99_ms": 25.0, "pacing_jitter_p99_ms": 2.0}


# ---- the callers' script ---------------------------------------------------------------------------


def espeak(text: str) -> np.ndarray:
    """`text` spoken by espeak-ng, 48 kHz int16, leading and trailing silence trimmed."""
    import soxr

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32)
    pcm = soxr.resample(pcm, rate, OPUS_RATE)
    loud = np.flatnonzero(np.abs(pcm) > 0.01 * np.abs(pcm).max())
    return np.clip(pcm[loud[0] : loud[-1] + 1], -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class Script:
    payloads: list[bytes]  # one Opus frame per 20 ms of the loop
    onsets: tuple[int, ...]  # frame index of each phrase's first sample
    phrase_frames: tuple[int, ...]

    @property
    def frames(self) -> int:
        return len(self.payloads)


def build_script() -> Script:
    from voxwire.media.opus import OpusEncoder

    pieces, onsets, lengths = [], [], []
    at = 0
    gap = np.zeros(int(GAP_SECONDS * OPUS_RATE), np.int16)
    for text in PHRASES:
        speech = espeak(text)
        speech = np.concatenate([speech, np.zeros(-len(speech) % FRAME_SAMPLES, np.int16)])
        onsets.append(at // FRAME_SAMPLES)
        lengths.append(len(speech) // FRAME_SAMPLES)
        pieces += [speech, gap]
        at += len(speech) + len(gap)
    pcm = np.concatenate(pieces)
    encoder = OpusEncoder(OPUS_RATE, 1)
    payloads = [
        encoder.encode(pcm[i : i + FRAME_SAMPLES], FRAME_SAMPLES) for i in range(0, len(pcm), FRAME_SAMPLES)
    ]
    return Script(payloads, tuple(onsets), tuple(lengths))


# ---- the callers (child process) -------------------------------------------------------------------


#: With ``--arrivals spread``, sessions send in this many groups, evenly spaced within each 20 ms.
SPREAD_GROUPS = 10


async def run_callers(
    url: str, sessions: int, seconds: float, script_path: str, arrivals: str = "burst"
) -> dict[str, Any]:
    import aiohttp

    from voxwire.proto.certificate import Certificate
    from voxwire.testing.client import TestClient
    from voxwire.testing.sockets import udp

    class Caller(TestClient):
        """Counts the gateway's RTP instead of decrypting it (the callers' CPU goes to sending)."""

        rtp_in = 0

        def handle_datagram(self, data: bytes, addr: Any, now: float) -> None:
            if self.srtp is not None and len(data) >= 12 and data[0] >> 6 == 2 and data[1] & 0x7F == OPUS_PT:
                self.rtp_in += 1
                return
            super().handle_datagram(data, addr, now)

    script: Script = pickle.loads(Path(script_path).read_bytes())
    loop = asyncio.get_running_loop()
    certificate = Certificate.generate()
    rng = random.Random(5)
    callers = []
    async with aiohttp.ClientSession() as http:
        for i in range(sessions):
            client = Caller(certificate, loop.time(), rng=random.Random(i), ssrc=0x5000 + i)
            shell = await udp(client)
            offer = client.offer()
            async with http.post(
                url + "/v1/realtime/calls", data=offer, headers={"Content-Type": "application/sdp"}
            ) as response:
                if response.status != 201:
                    raise RuntimeError(f"offer {i}: HTTP {response.status}: {await response.text()}")
                answer = await response.text()
            client.answer(answer, shell.now())
            shell.drain()
            callers.append((client, shell, rng.randrange(script.frames)))
    deadline = loop.time() + 30
    while not all(c.srtp is not None for c, _, _ in callers):
        if loop.time() > deadline:
            raise RuntimeError("not every caller connected within 30 s")
        await asyncio.sleep(0.01)

    start = loop.time() + 0.05
    started_at = time.monotonic() + 0.05
    total = int(seconds / FRAME_SECONDS)
    # burst: every session's frame at the same instant (one shared timer: the worst case for the
    # gateway); spread: independent clients' phases, as real callers' clocks are, in 10 groups.
    groups = SPREAD_GROUPS if arrivals == "spread" else 1
    offsets = {}
    for i, (_, shell, _) in enumerate(callers):
        offsets[shell.transport.get_extra_info("sockname")[1]] = (i % groups) * FRAME_SECONDS / groups
    late = []
    for k in range(total):
        for g in range(groups):
            at = start + k * FRAME_SECONDS + g * FRAME_SECONDS / groups
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            late.append(loop.time() - at)
            for client, shell, phase in callers[g::groups]:
                position = k + phase
                client.send_rtp(
                    script.payloads[position % script.frames], (position * FRAME_SAMPLES) & 0xFFFFFFFF, k == 0
                )
                shell.drain()
    ended_at = time.monotonic()
    received = sum(c.rtp_in for c, _, _ in callers)
    for _, shell, _ in callers:
        shell.transport.close()
    return {
        "started_at": started_at,
        "ended_at": ended_at,
        "arrivals": arrivals,
        "offsets": offsets,
        "frames_sent_per_session": total,
        "rtp_received": received,
        "send_late_p99_ms": 1000 * float(np.percentile(late, 99)),
    }


# ---- the gateway, instrumented ---------------------------------------------------------------------


@dataclass
class CallCpu:
    vad_ns: int = 0
    decode_ns: int = 0
    encode_ns: int = 0
    samples_in: int = 0  # at the agent rate
    frames_out: int = 0


@dataclass
class Probe:
    script: Script
    decisions: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    all_decisions: list[float] = field(default_factory=list)
    responses: list[float] = field(default_factory=list)
    pending_audio: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    by_response: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    first_frames: dict[tuple[int, int], str] = field(default_factory=dict)
    tags_seen: set[str] = field(default_factory=set)
    due: dict[tuple[int, int], float] = field(default_factory=dict)
    #: (decision time, to respond, first audio to first packet)
    turns: list[tuple[float, float, float]] = field(default_factory=list)
    #: (send time, lateness)
    pacing: list[tuple[float, float]] = field(default_factory=list)
    sent: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))  # ssrc -> sendto times
    barges: list[tuple[Any, float]] = field(default_factory=list)  # (call, decision time)
    arrivals: dict[tuple[str, int], list[float]] = field(default_factory=lambda: defaultdict(list))
    #: The callers' first frame (position in their script) per address, and every 10th frame read.
    first_position: dict[tuple[str, int], int] = field(default_factory=dict)
    reads: list[tuple[float, int, int]] = field(default_factory=list)  # (time, position - first)
    cpu: dict[str, CallCpu] = field(default_factory=lambda: defaultdict(CallCpu))
    batch_ns: int = 0  # CPU of the shared VAD batch (worker thread's runs + the loop's deliveries)
    onset_positions: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        self.onset_positions = frozenset(self.script.onsets)

    # -- wrappers ---------------------------------------------------------------------------------

    def instrument(self, call: Any) -> None:
        probe = self
        cpu = self.cpu[call.call_id]
        ssrc = call.session.params.local_ssrc
        detector = call.voice._detector
        assert isinstance(detector, TimedDetector), "the bench's turn detector factory is in place"
        detector.call = call

        inbound_pop = call.inbound.pop_pcm

        def pop_pcm():
            c0 = time.thread_time_ns()
            pcm = inbound_pop()
            cpu.decode_ns += time.thread_time_ns() - c0
            return pcm

        call.inbound.pop_pcm = pop_pcm

        outbound_due = call.outbound.due

        def due(now: float):
            c0 = time.thread_time_ns()
            frames = outbound_due(now)
            cpu.encode_ns += time.thread_time_ns() - c0
            cpu.frames_out += len(frames)
            return frames

        call.outbound.due = due

        outbound_prepare = call.outbound.prepare

        def prepare() -> bool:  # the encode ahead of the tick (sliced work)
            c0 = time.thread_time_ns()
            encoded = outbound_prepare()
            cpu.encode_ns += time.thread_time_ns() - c0
            return encoded

        call.outbound.prepare = prepare

        pacer_tick = call.outbound.pacer.handle_timeout

        def handle_timeout(now: float):
            frames = pacer_tick(now)
            for f in frames:
                key = (ssrc, f.timestamp & 0xFFFFFFFF)
                probe.due[key] = f.due
                tag = f.frame[1]
                if tag is not None and tag not in probe.tags_seen:
                    probe.tags_seen.add(tag)
                    probe.first_frames[key] = tag
            return frames

        call.outbound.pacer.handle_timeout = handle_timeout

        on_agent_output = call.voice.on_agent_output

        def agent_output(response_id: str, output: Any) -> None:
            if response_id not in probe.by_response and call.call_id in probe.pending_audio:
                probe.by_response[response_id] = probe.pending_audio.pop(call.call_id)
            on_agent_output(response_id, output)

        call.voice.on_agent_output = agent_output

    def wrap_socket(self, shell: Any) -> None:
        probe = self
        transport = shell.transport

        class Transport:
            def __getattr__(self, name: str) -> Any:
                return getattr(transport, name)

            def sendto(self, data: bytes, addr: Any = None) -> None:
                if len(data) >= 12 and data[0] >> 6 == 2 and data[1] & 0x7F == OPUS_PT:
                    t = time.monotonic()
                    key = (int.from_bytes(data[8:12], "big"), int.from_bytes(data[4:8], "big"))
                    probe.sent[key[0]].append(t)
                    due = probe.due.pop(key, None)
                    if due is not None:
                        probe.pacing.append((t, t - due))
                    response_id = probe.first_frames.pop(key, None)
                    if response_id is not None and response_id in probe.by_response:
                        decided, responded, audio = probe.by_response.pop(response_id)
                        probe.turns.append((decided, responded - decided, t - audio))
                transport.sendto(data, addr)

        shell.transport = Transport()
        received = shell.datagram_received
        frames = self.script.frames

        def datagram_received(data: bytes, addr: tuple[str, int]) -> None:
            if len(data) >= 12 and data[0] >> 6 == 2 and data[1] & 0x7F == OPUS_PT:
                t = time.monotonic()
                where = (addr[0], addr[1])
                absolute = int.from_bytes(data[4:8], "big") // FRAME_SAMPLES
                if absolute % frames in probe.onset_positions:
                    probe.arrivals[where].append(t)
                first = probe.first_position.setdefault(where, absolute)
                if absolute % 10 == 0:
                    probe.reads.append((t, absolute - first, addr[1]))
            received(data, addr)

        shell.datagram_received = datagram_received


class TimedDetector:
    """The Silero turn detector, timed, reporting its decisions to the probe."""

    def __init__(self, inner: Any, probe: Probe) -> None:
        self.inner = inner
        self.probe = probe
        self.call: Any = None

    def feed(self, pcm: Any) -> list[Any]:
        call = self.call
        c0 = time.thread_time_ns()
        events = self.inner.feed(pcm)
        spent = time.thread_time_ns() - c0
        if call is not None:
            cpu = self.probe.cpu[call.call_id]
            cpu.vad_ns += spent
            cpu.samples_in += len(pcm)
            self._decided(events)
        return events

    # A batched VAD (the gateway's default) delivers its decisions after feed(), through these.

    @property
    def on_events(self) -> Any:
        return self.inner.on_events

    @on_events.setter
    def on_events(self, callback: Any) -> None:
        self.inner.on_events = callback

    def poll_event(self) -> Any:
        event = self.inner.poll_event()
        if event is not None:
            self._decided([event])
        return event

    def _decided(self, events: list[Any]) -> None:
        from voxwire.agent.turns import SpeechStarted, TurnCommitted

        call = self.call
        if call is None or not events:
            return
        playing = bool(call.voice._responses)
        t = time.monotonic()
        for event in events:
            if isinstance(event, TurnCommitted):
                self.probe.decisions[call.call_id].append(t)
                self.probe.all_decisions.append(t)
            elif isinstance(event, SpeechStarted) and playing:
                self.probe.barges.append((call, t))

    def commit(self) -> Any:
        return self.inner.commit()

    def clear(self) -> None:
        self.inner.clear()

    def start_idle_timer(self) -> None:
        self.inner.start_idle_timer()


class InstantAgent:
    """Answers every turn at once with REPLY_SECONDS of a tone; tells the probe when."""

    name = "bench-instant"
    sample_rate = AGENT_RATE

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        t = np.arange(int(REPLY_SECONDS * AGENT_RATE)) / AGENT_RATE
        self.reply = (6000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)

    def start(self, ctx: Any) -> InstantSession:
        return InstantSession(self, ctx)


class InstantSession:
    def __init__(self, agent: InstantAgent, call: Any) -> None:
        self.agent = agent
        self.call = call

    def on_audio(self, pcm: Any, now: float) -> None:
        pass

    async def respond(self, turn: Any) -> AsyncIterator[Any]:
        from voxwire.agent.base import AudioOut

        responded = time.monotonic()
        probe = self.agent.probe
        probe.responses.append(responded)
        decisions = probe.decisions[self.call.call_id]
        if decisions:
            probe.pending_audio[self.call.call_id] = (decisions.popleft(), responded, time.monotonic())
        yield AudioOut(self.agent.reply)

    def close(self) -> None:
        pass


async def measure(
    sessions: int,
    seconds: float,
    warmup: float,
    script: Script,
    script_path: str,
    vad_mode: str = "batched",
    arrivals: str = "burst",
    work_mode: str = "sliced",
) -> dict[str, Any]:
    from aiohttp import web

    from voxwire.agent.vad import VadBatch, load_session
    from voxwire.aio.agents import AgentRunner
    from voxwire.aio.vad import attach_vad_batch
    from voxwire.aio.work import attach_work_slices
    from voxwire.cli import freeze_startup_objects
    from voxwire.signaling.http import make_app
    from voxwire.testing.sockets import sockname, udp
    from voxwire.transceiver.service import Transceiver, TransceiverConfig
    from voxwire.voice.session import server_vad_detector

    load_session()
    probe = Probe(script)
    agent = InstantAgent(probe)
    transceiver = Transceiver(TransceiverConfig(advertised=(("127.0.0.1", 1),)), agent)
    shell = await udp(transceiver.endpoint)
    runner = AgentRunner(transceiver, shell)
    shell.after_drain = runner.after_drain
    if work_mode == "sliced":  # as voxwire serve runs it
        attach_work_slices(transceiver, shell)
    batch: VadBatch | None = None
    if vad_mode == "batched":  # as voxwire serve runs it: rounds scored on a worker thread
        batch = attach_vad_batch(transceiver, shell)
        score, finish = batch.score, batch.finish

        def timed(step: Callable[[Any], int | None]) -> Callable[[Any], int | None]:
            def run(scored: Any) -> int | None:
                c0 = time.thread_time_ns()  # per thread: the worker's for score, the loop's for finish
                try:
                    return step(scored)
                finally:
                    probe.batch_ns += time.thread_time_ns() - c0

            return run

        batch.score = timed(score)  # type: ignore[method-assign,assignment]
        batch.finish = timed(finish)  # type: ignore[method-assign,assignment]
    transceiver.turn_detector = lambda params, rate: TimedDetector(
        server_vad_detector(params, rate, batch=batch), probe
    )
    transceiver.config = TransceiverConfig(advertised=(sockname(shell),), max_calls=sessions + 10)
    create_call = transceiver.create_call

    def instrumented_create_call(*args: Any, **kwargs: Any) -> Any:
        call, answer = create_call(*args, **kwargs)
        probe.instrument(call)
        return call, answer

    transceiver.create_call = instrumented_create_call  # type: ignore[method-assign]
    probe.wrap_socket(shell)
    app_runner = web.AppRunner(make_app(transceiver, shell), access_log=None)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = app_runner.addresses[0][1]

    cpu_samples: list[tuple[float, float, float]] = []

    async def sample_cpu() -> None:
        while True:
            cpu_samples.append((time.monotonic(), time.process_time(), runqueue_wait()))
            await asyncio.sleep(0.25)

    freeze_startup_objects()  # as voxwire serve does before its port opens
    sampler = asyncio.get_running_loop().create_task(sample_cpu())
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        f"http://127.0.0.1:{port}",
        str(sessions),
        str(seconds),
        script_path,
        arrivals,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    sampler.cancel()
    if child.returncode != 0:
        raise RuntimeError(f"the callers' process failed ({child.returncode})")
    callers = json.loads(out.decode().strip().splitlines()[-1])
    await app_runner.cleanup()
    shell.transport.close()
    calls = list(transceiver.calls.values())
    result = analyse(probe, calls, callers, cpu_samples, sessions, warmup)
    result["vad_mode"] = vad_mode
    result["arrivals"] = arrivals
    result["work_mode"] = work_mode
    if batch is not None:
        result["cpu"]["vad_windows_per_run"] = batch.windows / max(batch.runs, 1)
    return result


def runqueue_wait() -> float:
    """Seconds this thread (the event loop's) has spent runnable but waiting for a CPU."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


# ---- analysis ---------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summary(values_s: list[float]) -> dict[str, Any]:
    ms = [1000 * v for v in values_s]
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": max(ms) if ms else None}


def analyse(
    probe: Probe,
    calls: list[Any],
    callers: dict[str, Any],
    cpu_samples: list[tuple[float, float, float]],
    sessions: int,
    warmup: float,
) -> dict[str, Any]:
    begin = callers["started_at"] + warmup
    end = callers["ended_at"]
    turns = [t for t in probe.turns if begin <= t[0] <= end]

    barge_in, reaction, onset_to_last, after = [], [], [], []
    not_playing = 0
    for call, decided in probe.barges:
        if not begin <= decided <= end - 0.5:
            continue
        sent = probe.sent.get(call.session.params.local_ssrc, [])
        recent = [t for t in sent if decided - 0.045 <= t <= decided + 0.4]
        if not any(t <= decided for t in recent):  # no assistant packet in the last two ticks
            not_playing += 1
            continue
        last = max(recent)
        barge_in.append(last - decided)
        after.append(sum(1 for t in recent if t > decided))
        remote = call.session.remote
        onsets = [t for t in probe.arrivals.get((remote[0], remote[1]), []) if decided - 1.0 < t <= decided]
        if onsets:
            reaction.append(decided - onsets[-1])
            onset_to_last.append(last - onsets[-1])

    lateness = [late for t, late in probe.pacing if begin <= t <= end]
    offsets = callers.get("offsets", {})  # JSON: port (as a string) -> send offset in seconds
    # How long after its caller sent it (on the callers' schedule) the gateway read each packet.
    input_lag = [
        t - (callers["started_at"] + offsets.get(str(port), 0.0) + k * FRAME_SECONDS)
        for t, k, port in probe.reads
        if begin <= t <= end
    ]
    median_late = pct(lateness, 50) or 0.0

    per_call = [probe.cpu[c.call_id] for c in calls if c.call_id in probe.cpu]
    in_frames = sum(c.samples_in for c in per_call) / (AGENT_RATE * FRAME_SECONDS)
    out_frames = sum(c.frames_out for c in per_call)
    vad_us = (sum(c.vad_ns for c in per_call) + probe.batch_ns) / 1000 / max(in_frames, 1)
    decode_us = sum(c.decode_ns for c in per_call) / 1000 / max(in_frames, 1)
    encode_us = sum(c.encode_ns for c in per_call) / 1000 / max(out_frames, 1)
    # Output frames per second of session: the share of the time the assistant was talking.
    talk_share = out_frames / max(in_frames, 1)
    window = [sample for sample in cpu_samples if begin <= sample[0] <= end]
    span = window[-1][0] - window[0][0] if len(window) > 1 else None
    process_core = (window[-1][1] - window[0][1]) / span if span else None
    waiting = (window[-1][2] - window[0][2]) / span if span else None

    return {
        "sessions": sessions,
        "measured_seconds": end - begin,
        "turns_per_session": len(turns) / sessions,
        "turns_committed_per_session": sum(1 for t in probe.all_decisions if begin <= t <= end) / sessions,
        "responses_per_session": sum(1 for t in probe.responses if begin <= t <= end) / sessions,
        "gateway_share": {
            "decision_to_respond": summary([t[1] for t in turns]),
            "first_audio_to_first_rtp": summary([t[2] for t in turns]),
            "total": summary([t[1] + t[2] for t in turns]),
        },
        "barge_in": {
            "decision_to_last_packet": summary(barge_in),
            "packets_after_decision_max": max(after) if after else None,
            "first_packet_in_to_decision": summary(reaction),
            "first_packet_in_to_last_packet": summary(onset_to_last),
            "skipped_not_playing": not_playing,
        },
        "pacing": {
            "lateness": summary(lateness),
            "jitter_p99_ms": 1000 * pct([abs(x - median_late) for x in lateness], 99) if lateness else None,
            "frames": len(lateness),
        },
        "cpu": {
            "vad_us_per_frame": vad_us,
            "decode_us_per_frame": decode_us,
            "encode_us_per_frame": encode_us,
            "vad_core_per_session": vad_us * 50 / 1e6,
            "decode_core_per_session": decode_us * 50 / 1e6,
            "encode_core_per_session": encode_us * 50 * talk_share / 1e6,
            "assistant_talk_share": talk_share,
            "process_core_per_session": process_core / sessions if process_core is not None else None,
            "process_core": process_core,
            "loop_thread_runqueue_wait_ms_per_s": 1000 * waiting if waiting is not None else None,
        },
        "input_lag": summary(input_lag),
        "load_average": os.getloadavg()[0],
        "callers": callers,
    }


# ---- report -----------------------------------------------------------------------------------------


def fmt(s: dict[str, Any], key: str = "p99_ms") -> str:
    return "-" if s[key] is None else f"{s[key]:.2f}"


def pair(s: dict[str, Any]) -> str:
    return f"{fmt(s, 'p50_ms')} / {fmt(s)} (n={s['n']})"


#: A configuration's label names what differs from how ``voxwire serve`` runs.
DEFAULT_MODES = {"vad_mode": ("batched", "VAD"), "arrivals": ("burst", "arrivals"), "work_mode": ("sliced", "work")}


def label(r: dict[str, Any]) -> str:
    modes = "".join(
        f" ({r[key]} {what})" for key, (default, what) in DEFAULT_MODES.items() if r.get(key, default) != default
    )
    return f"{r['sessions']} session{'s' if r['sessions'] > 1 else ''}{modes}"


def report(results: list[dict[str, Any]]) -> str:
    head = " | ".join(label(r) for r in results)
    lines = [
        f"| per session, ms (p50 / p99) | {head} | target |",
        "|---|" + "---|" * len(results) + "---|",
    ]

    def row(label: str, cell: Callable[[dict[str, Any]], str], target: str = "") -> None:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in results) + f" | {target} |")

    row(
        "gateway share: VAD end-of-turn decision -> agent respond()",
        lambda r: pair(r["gateway_share"]["decision_to_respond"]),
    )
    row(
        "gateway share: agent's first audio -> first RTP packet out",
        lambda r: pair(r["gateway_share"]["first_audio_to_first_rtp"]),
    )
    row(
        "**gateway share, total per turn**",
        lambda r: pair(r["gateway_share"]["total"]),
        f"p99 < {TARGETS['gateway_share_p99_ms']:g}",
    )
    row(
        "**barge-in: VAD decision -> last assistant packet**",
        lambda r: pair(r["barge_in"]["decision_to_last_packet"]),
        f"p99 < {TARGETS['barge_in_p99_ms']:g}",
    )
    row(
        "barge-in: assistant packets sent after the decision (max)",
        lambda r: str(r["barge_in"]["packets_after_decision_max"]),
    )
    row(
        "(context) interrupting speech's first packet in -> VAD decision",
        lambda r: pair(r["barge_in"]["first_packet_in_to_decision"]),
    )
    row(
        "(context) interrupting speech's first packet in -> last assistant packet",
        lambda r: pair(r["barge_in"]["first_packet_in_to_last_packet"]),
    )
    row("egress pacing: sendto - 20 ms grid tick", lambda r: pair(r["pacing"]["lateness"]))
    row(
        "**egress pacing jitter p99** (abs deviation from the median)",
        lambda r: f"{r['pacing']['jitter_p99_ms']:.2f}",
        f"< {TARGETS['pacing_jitter_p99_ms']:g}",
    )
    row(
        "(context) input lag: caller's send schedule -> gateway reads the packet",
        lambda r: pair(r["input_lag"]),
    )
    row(
        "CPU: turn detection (resample + Silero VAD), µs per 20 ms in",
        lambda r: f"{r['cpu']['vad_us_per_frame']:.0f} ({100 * r['cpu']['vad_core_per_session']:.2f} % core)",
    )
    row(
        "CPU: Opus decode, µs per 20 ms in",
        lambda r: (
            f"{r['cpu']['decode_us_per_frame']:.0f} ({100 * r['cpu']['decode_core_per_session']:.2f} % core)"
        ),
    )
    row(
        "CPU: Opus encode + pacer, µs per frame out",
        lambda r: (
            f"{r['cpu']['encode_us_per_frame']:.0f} ({100 * r['cpu']['encode_core_per_session']:.2f} % core at {100 * r['cpu']['assistant_talk_share']:.0f} % talk)"
        ),
    )
    row(
        "CPU: whole gateway process per session",
        lambda r: (
            "-"
            if r["cpu"]["process_core_per_session"] is None
            else f"{100 * r['cpu']['process_core_per_session']:.2f} % core"
        ),
    )
    row(
        "(context) event loop thread waiting for a CPU, ms per s",
        lambda r: (
            "-"
            if r["cpu"]["loop_thread_runqueue_wait_ms_per_s"] is None
            else f"{r['cpu']['loop_thread_runqueue_wait_ms_per_s']:.0f} (load average {r['load_average']:.1f})"
        ),
    )
    row(
        "turns per session: committed / answered / measured",
        lambda r: (
            f"{r['turns_committed_per_session']:.1f} / {r['responses_per_session']:.1f} / "
            f"{r['turns_per_session']:.1f} in {r['measured_seconds']:.0f} s"
        ),
    )
    return "\n".join(lines)


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in results:
        checks = {
            "gateway share p99": (r["gateway_share"]["total"]["p99_ms"], TARGETS["gateway_share_p99_ms"]),
            "barge-in p99": (r["barge_in"]["decision_to_last_packet"]["p99_ms"], TARGETS["barge_in_p99_ms"]),
            "pacing jitter p99": (r["pacing"]["jitter_p99_ms"], TARGETS["pacing_jitter_p99_ms"]),
        }
        for name, (value, target) in checks.items():
            verdict = "n/a" if value is None else ("MET" if value < target else "MISSED")
            out.append(
                f"{label(r)}: {name} {'-' if value is None else f'{value:.2f}'} ms (target < {target:g}): {verdict}"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,50", help="comma-separated concurrent session counts")
    parser.add_argument("--seconds", type=float, default=40.0, help="speaking time per configuration")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds dropped at the start")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--vad", default="batched", help="comma-separated: batched (as voxwire serve runs), single (one run per window)"
    )
    parser.add_argument(
        "--arrivals",
        default="burst",
        help="comma-separated: burst (every caller's frame at the same instant, the worst case), "
        "spread (callers' phases spread over the 20 ms, as independent clients are)",
    )
    parser.add_argument(
        "--work",
        default="sliced",
        help="comma-separated: sliced (decoding and encoding in loop callbacks of a few calls, as "
        "voxwire serve runs), inline (decoded inside each datagram's handling, encoded at each tick)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--client", nargs=5, metavar=("URL", "SESSIONS", "SECONDS", "SCRIPT", "ARRIVALS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    run = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        run = uvloop.run
    if args.client:
        os.nice(5)  # the gateway, not the callers, gets the CPU first
        url, sessions, seconds, script_path, arrivals = args.client
        print(json.dumps(run(run_callers(url, int(sessions), float(seconds), script_path, arrivals))), flush=True)
        return 0

    script = build_script()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        script_path = os.path.join(tmp, "script.pickle")
        Path(script_path).write_bytes(pickle.dumps(script))
        for sessions in (int(s) for s in args.sessions.split(",")):
            for vad_mode, arrivals, work_mode in itertools.product(
                args.vad.split(","), args.arrivals.split(",") if sessions > 1 else ["burst"], args.work.split(",")
            ):
                print(f"measuring {sessions} session(s), {vad_mode} VAD, {arrivals} arrivals, {work_mode} work, "
                      f"for {args.seconds:g} s ...", file=sys.stderr, flush=True)
                results.append(
                    run(measure(sessions, args.seconds, args.warmup, script, script_path, vad_mode, arrivals, work_mode))
                )
    loop_period = script.frames * FRAME_SECONDS
    print(
        f"\nbench/voice.py: {args.loop}, instant agent ({REPLY_SECONDS:g} s replies), callers loop "
        f"{loop_period:.1f} s: two phrases of {', '.join(f'{n * FRAME_SECONDS:.2f}' for n in script.phrase_frames)} s, "
        f"{GAP_SECONDS:g} s silence after each (every turn answered, every answer interrupted)\n"
    )
    print(report(results))
    print()
    for line in verdicts(results):
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "loop": args.loop,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "targets": TARGETS,
        "cpus": os.cpu_count(),
    }
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
