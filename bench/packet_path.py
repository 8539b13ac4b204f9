"""The transport's own cost per media packet, in process: no sockets, no event loop, no HTTP.

Run: ``.venv/bin/python bench/packet_path.py [--agent passthrough|echo] [--calls 200] [--seconds 4]
[--rounds 5] [--complexity 1] [--profile]``.

What ``bench/capacity.py`` measures as CPU per pass-through call is this path plus what no Python
change can remove: uvloop's receive and dispatch and the kernel's ``sendto`` (on loopback it
also delivers each packet to the load generator, ~10 us in the server's time). This bench times
only the Python side, the part a fast path would shrink, and so can tell apart changes a few
percent big that the capacity ramp's run-to-run noise (~15%) hides.

``--calls`` pass-through calls are connected on virtual time (:class:`~voxwire.testing.link.Network`).
Each client's SRTP packets for ``--seconds`` of 20 ms Opus frames are built and protected up
front, then fed to the server core in real-time order -- the calls' phases spread over the 20
ms as the load generator spreads them -- with the production drain rule after each datagram
(:class:`~voxwire.aio.udp.UdpShell`: transmits, the agent runner's hook, transmits again, the next
deadline) and the traffic counter in front, as ``voxwire serve`` has them. Timers fire when due.
The shell drains once per read batch, so under load the server pays the drain's share less often
than this bench does: the figure is an upper bound, and comparable across commits.
Reported: CPU (``thread_time``) per inbound packet, which for pass-through is one packet in and
one out (``--agent echo``: also an Opus decode and encode at ``--complexity``, by default 1 as in a
loaded server, frames encoded in the datagram's turn as with no work slices), median and best of
``--rounds`` fresh rounds (the best is the steadiest on a shared machine), with the packets sent
per packet received (should be 1.0) as a check; ``--profile`` adds cProfile's function calls per
packet.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voxwire.agent.echo import EchoAgent  # noqa: E402
from voxwire.agent.passthrough import PassthroughAgent  # noqa: E402
from voxwire.loadgen.audio import load_frames  # noqa: E402
from voxwire.media.pipeline import MediaConfig  # noqa: E402
from voxwire.observability.metrics import TrafficCounter  # noqa: E402
from voxwire.proto.certificate import Certificate  # noqa: E402
from voxwire.testing.calls import client_address, connect_calls  # noqa: E402
from voxwire.testing.client import TestClient  # noqa: E402
from voxwire.transceiver.service import Transceiver, TransceiverConfig  # noqa: E402

SERVER = ("192.0.2.1", 3478)
FRAME = 0.02
AGENTS = {"passthrough": PassthroughAgent, "echo": EchoAgent}


def connected(
    agent: str, calls: int, certs: tuple[Certificate, Certificate], complexity: int
) -> tuple[Transceiver, list[TestClient], float]:
    """The server and its connected clients, and the virtual time they got there."""
    media = MediaConfig(opus_complexity=complexity, opus_complexity_under_load=complexity)
    config = TransceiverConfig(advertised=(SERVER,), max_calls=calls + 10, media=media)
    server = Transceiver(config, AGENTS[agent](), certificate=certs[0])
    net, pairs = connect_calls(server, certs[1], calls, delay=0.001)
    return server, [client for client, _ in pairs], net.now


def schedule(
    clients: list[TestClient], frames: list[bytes], start: float, seconds: float
) -> list[tuple[float, bytes, tuple[str, int]]]:
    """Every client's packets for ``seconds`` of ``frames`` (Opus), protected now, in arrival order."""
    count = round(seconds / FRAME)
    out = []
    for i, client in enumerate(clients):
        phase = (i * 0.618033988749895) % 1.0 * FRAME  # spread as the load generator does
        for k in range(count):
            client.send_rtp(frames[(i + k) % len(frames)], 960 * k, marker=k == 0)
            packet, _ = client.poll_transmit()  # type: ignore[misc]
            out.append((start + phase + k * FRAME, packet, client_address(i)))
    out.sort(key=lambda item: item[0])
    return out


def run(server: Transceiver, packets: list[tuple[float, bytes, tuple[str, int]]]) -> tuple[float, int]:
    """Feed ``packets`` with the drain rule; returns (CPU seconds, packets sent)."""
    core = TrafficCounter().wrap(server.endpoint)
    collect, take_pending = server.collect, server.take_pending
    sent = 0
    timers: list[float] = []
    armed = None

    def drain() -> None:
        nonlocal sent, armed
        while core.poll_transmit() is not None:
            sent += 1
        collect()  # what AgentRunner.after_drain does when no response is asked for
        take_pending()
        while core.poll_transmit() is not None:
            sent += 1
        at = core.poll_timeout()
        if at is not None and at != armed:
            armed = at
            heapq.heappush(timers, at)

    t0 = time.thread_time()
    for at, packet, addr in packets:
        while timers and timers[0] <= at:
            due = heapq.heappop(timers)
            if due == armed:
                armed = None
                core.handle_timeout(due)
                drain()
        core.handle_datagram(packet, addr, at)
        drain()
    return time.thread_time() - t0, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", choices=sorted(AGENTS), default="passthrough")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--complexity", type=int, default=1,
                        help="Opus encoder complexity for --agent echo (1: what a loaded server steps down to)")
    parser.add_argument("--profile", action="store_true", help="also count function calls per packet (cProfile)")
    args = parser.parse_args()
    certs = Certificate.generate(), Certificate.generate()
    frames, _ = load_frames("synthetic")  # speech-like Opus at ~32 kbit/s, as the load generator sends
    per_packet, ratios = [], []
    for _ in range(args.rounds):
        server, clients, now = connected(args.agent, args.calls, certs, args.complexity)
        packets = schedule(clients, frames, now + 0.1, args.seconds)
        gc.collect()
        cpu, sent = run(server, packets)
        per_packet.append(cpu / len(packets) * 1e6)
        ratios.append(sent / len(packets))
    print(f"{args.agent} (Opus complexity {args.complexity}), {args.calls} calls, {len(packets)} packets a round, {args.rounds} rounds")
    print(f"| CPU per packet in (and its packet out), median / best | {statistics.median(per_packet):.1f} / "
          f"{min(per_packet):.1f} us (rounds: {', '.join(f'{x:.1f}' for x in per_packet)}) |")
    print(f"| packets out per packet in | {statistics.median(ratios):.3f} |")
    if args.profile:
        server, clients, now = connected(args.agent, args.calls, certs, args.complexity)
        packets = schedule(clients, frames, now + 0.1, args.seconds)
        profile = cProfile.Profile()
        profile.enable()
        run(server, packets)
        profile.disable()
        stats = pstats.Stats(profile)
        calls = sum(nc for (_, _, _), (_, nc, _, _, _) in stats.stats.items())  # type: ignore[attr-defined]
        print(f"| Python function calls per packet (cProfile) | {calls / len(packets):.0f} |")


if __name__ == "__main__":
    main()
