"""Relay throughput and added latency on loopback, against the direct path and a bare Python loop.

Run: ``.venv/bin/python bench/relay.py [--seconds S] [--rounds N]`` (inside scripts/netns-run.sh to
keep it off any real network). Prints Markdown tables.

What is measured, each in its own worker process, fed by a generator process that floods 16 flows
(each opened by a STUN check with a valid routing token, then 172-byte RTP-sized datagrams):

* **loops** — packets forwarded per second of the worker's own CPU (user + system, which includes
  the kernel's loopback delivery) for: ``bare`` (a blocking ``recvfrom``/``sendto`` loop that does no
  work: this machine's limit for Python), ``blocking+core`` (the same loop calling
  ``RelayCore.from_client``), ``protocol+core`` (a uvloop ``DatagramProtocol`` calling the core per
  datagram) and ``relay`` (the real worker of :mod:`voxwire.relay.loop`: uvloop readers draining
  batches). CPU-normalised rates are what survive a noisy 2-core machine shared with the generator.
  By default the generator offers all it can, so every loop works in its loaded regime (below
  saturation each datagram costs a wakeup and the comparison measures the scheduler instead; try
  ``--rate``). The median of ``--rounds`` runs is shown, the loops interleaved.
* **workers** — the same real worker with 1 and 2 processes sharing the port (SO_REUSEPORT), offered
  as much as the generator can send: forwarded packets per wall-clock second, and per CPU second.
* **latency** — one-way time of single probes, sender and receiver in this process (one clock):
  direct to the receiver vs through the relay, while the generator offers half of the measured
  single-worker capacity on other flows. Added latency = relay - direct, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import resource
import socket
import statistics
import time
from typing import Any

from voxwire.relay.core import Directory, RelayConfig, RelayCore
from voxwire.relay.loop import RelaySettings, start_worker
from voxwire.wire import stun
from voxwire.wire.token import TokenKey, TokenMinter, TokenVerifier

KEY = TokenKey(1, bytes(range(32)))
PAYLOAD = b"\x80\x6f" + bytes(170)
FLOWS = 16


def _check(tid: int, rng: random.Random) -> bytes:
    ufrag = TokenMinter(KEY, 0, tid, rng.randbytes).mint(time.time())
    msg = stun.StunMessage(stun.BINDING, stun.StunClass.REQUEST, rng.randbytes(12), username=ufrag.encode() + b":b")
    return stun.serialize(msg, integrity_key=b"k" * 22)


def _sock(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("127.0.0.1", port))
    return s


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- generator --------------------------------------------------------------------------------------


def generator(dst: tuple[str, int], rate: float, seconds: float, tid: int, flows: int, q: Any) -> None:
    """Open ``flows`` flows with token checks, then send at ``rate`` pps (0: as fast as possible)."""
    rng = random.Random(os.getpid())
    socks = []
    for _ in range(flows):
        s = _sock()
        s.connect(dst)
        s.send(_check(tid, rng))
        socks.append(s)
    time.sleep(0.2)  # the flows exist before the flood
    sends = [s.send for s in socks]
    n, start = 0, time.monotonic()
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * rate) if rate else n + 256
        while n < due:
            try:
                sends[n % flows](PAYLOAD)
            except OSError:
                pass
            n += 1
        if rate:  # short sleeps: bursts of about rate x 0.25 ms, not a spinning core
            time.sleep(0.0002)
    q.put(n)


# -- the loops compared ------------------------------------------------------------------------------


def _core(sink: tuple[str, int]) -> RelayCore:
    return RelayCore(RelayConfig(flow_cache=False), TokenVerifier([KEY], 3600), Directory([(1, sink)]), 0.0,
                     wallclock_offset=time.time() - time.monotonic())


def loop_bare(port: int, sink: tuple[str, int], seconds: float, q: Any) -> None:
    sock = _sock(port)
    recvfrom, sendto = sock.recvfrom, sock.sendto
    q.put("ready")
    sock.settimeout(seconds + 2)
    n, c0, end = 0, _cpu(), time.monotonic() + seconds + 0.2
    try:
        while True:
            data, _addr = recvfrom(65535)
            sendto(data, sink)
            n += 1
            if not n & 255 and time.monotonic() > end:
                break
    except TimeoutError:
        pass
    q.put((n, _cpu() - c0))


def loop_blocking_core(port: int, sink: tuple[str, int], seconds: float, q: Any) -> None:
    sock = _sock(port)
    core = _core(sink)
    recvfrom, sendto, from_client, clock = sock.recvfrom, sock.sendto, core.from_client, time.monotonic
    q.put("ready")
    sock.settimeout(seconds + 2)
    n, c0, end = 0, _cpu(), clock() + seconds + 0.2
    try:
        while True:
            data, addr = recvfrom(65535)
            now = clock()
            out = from_client(data, addr, now)
            if out is not None:
                sendto(out[0], out[1])
                n += 1
            if now > end:
                break
    except TimeoutError:
        pass
    q.put((n, _cpu() - c0))


def loop_protocol_core(port: int, sink: tuple[str, int], seconds: float, q: Any) -> None:
    import uvloop

    class Proto(asyncio.DatagramProtocol):
        n = 0

        def connection_made(self, transport: Any) -> None:
            self.sendto = transport.sendto
            self.time = asyncio.get_running_loop().time

        def datagram_received(self, data: bytes, addr: Any) -> None:
            out = core.from_client(data, addr, self.time())
            if out is not None:
                self.sendto(out[0], out[1])
                self.n += 1

    core = _core(sink)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(Proto, sock=_sock(port))
        q.put("ready")
        c0 = _cpu()
        await asyncio.sleep(seconds + 0.5)
        q.put((proto.n, _cpu() - c0))
        transport.close()

    uvloop.run(main())


def loop_relay(port: int, sink: tuple[str, int], seconds: float, q: Any, index: int = 0,
               probe: tuple[str, int] | None = None) -> None:
    import uvloop

    async def main() -> None:
        static = [(1, sink)] + ([(2, probe)] if probe else [])
        settings = RelaySettings(public=[("127.0.0.1", port)], internal=("127.0.0.1", 0), keys=[KEY],
                                 config=RelayConfig(flow_cache=False), static_transceivers=static)
        worker = await start_worker(settings, index)
        q.put("ready")
        c0 = _cpu()
        await asyncio.sleep(seconds + 0.5)
        q.put((sum(f.packets_in for f in worker.core.table), _cpu() - c0))
        await worker.stop()

    uvloop.run(main())


LOOPS = {"bare": loop_bare, "blocking+core": loop_blocking_core, "protocol+core": loop_protocol_core,
         "relay": loop_relay}


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_loop(name: str, seconds: float, rate: float, workers: int = 1) -> tuple[float, float]:
    """(forwarded per wall second, forwarded per worker CPU second) of ``workers`` processes."""
    ctx = mp.get_context("spawn")
    port = _free_udp_port()
    sink = _sock()  # bound, never read: the kernel drops what does not fit
    q = ctx.Queue()
    procs = []
    for i in range(workers):
        args: tuple[Any, ...] = (port, sink.getsockname(), seconds, q) + ((i,) if name == "relay" else ())
        p = ctx.Process(target=LOOPS[name], args=args)
        p.start()
        procs.append(p)
    for _ in procs:
        assert q.get(timeout=20) == "ready"
    gq = ctx.Queue()
    gen = ctx.Process(target=generator, args=(("127.0.0.1", port), rate, seconds, 1, FLOWS, gq))
    gen.start()
    gq.get(timeout=seconds + 20)
    gen.join()
    results = [q.get(timeout=20) for _ in procs]
    for p in procs:
        p.join(5)
    sink.close()
    forwarded = sum(r[0] for r in results)
    cpu = sum(r[1] for r in results)
    return forwarded / seconds, forwarded / cpu if cpu else 0.0


# -- latency -----------------------------------------------------------------------------------------


def _probe_latencies(target: tuple[str, int], receiver: socket.socket, sender: socket.socket, n: int) -> list[float]:
    out = []
    receiver.settimeout(0.5)
    for _ in range(n):
        t0 = time.perf_counter_ns()
        sender.sendto(PAYLOAD, target)
        try:
            receiver.recv(2048)
        except TimeoutError:
            continue
        out.append((time.perf_counter_ns() - t0) / 1000)
        time.sleep(0.0005)
    return out


def latency(seconds: float, load: float, probes: int) -> dict[str, tuple[float, float]]:
    ctx = mp.get_context("spawn")
    port = _free_udp_port()
    sink, receiver, sender = _sock(), _sock(), _sock()
    q = ctx.Queue()
    worker = ctx.Process(target=loop_relay, args=(port, sink.getsockname(), seconds + 5, q, 0, receiver.getsockname()))
    worker.start()
    assert q.get(timeout=20) == "ready"
    sender.sendto(_check(2, random.Random(9)), ("127.0.0.1", port))
    receiver.settimeout(2)
    receiver.recv(2048)  # the check, forwarded: the probe flow exists
    gq = ctx.Queue()
    gen = None
    if load:
        gen = ctx.Process(target=generator, args=(("127.0.0.1", port), load, seconds + 2, 1, FLOWS, gq))
        gen.start()
        time.sleep(0.5)
    result = {}
    relay = _probe_latencies(("127.0.0.1", port), receiver, sender, probes)
    direct = _probe_latencies(receiver.getsockname(), receiver, sender, probes)
    for name, xs in (("direct", direct), ("relay", relay)):
        xs.sort()
        result[name] = (statistics.median(xs), xs[int(len(xs) * 0.99)])
    if gen is not None:
        gen.join()
    worker.join(seconds + 10)
    for s in (sink, receiver, sender):
        s.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per run (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per loop, median shown (default 3)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered pps for the loop comparison (default 0: as fast as the generator can)")
    args = parser.parse_args()

    offered = f"{args.rate:.0f} pps" if args.rate else "the generator's full rate"
    print(f"## Loops: forwarded packets per CPU second of the worker, offered {offered}, median of {args.rounds}\n")
    print("| loop | kpps per CPU s | vs bare |")
    print("|---|---:|---:|")
    per_cpu: dict[str, float] = {}
    samples: dict[str, list[float]] = {name: [] for name in LOOPS}
    for _ in range(args.rounds):
        for name in LOOPS:  # interleaved, so drift in the machine's load hits every loop alike
            samples[name].append(run_loop(name, args.seconds, args.rate)[1])
    for name in LOOPS:
        per_cpu[name] = statistics.median(samples[name])
        print(f"| {name} | {per_cpu[name] / 1000:.0f} | {per_cpu[name] / per_cpu['bare']:.2f} |")

    print("\n## Workers: the real relay worker at the generator's full rate (SO_REUSEPORT)\n")
    print("| workers | forwarded kpps (wall) | kpps per CPU s |")
    print("|---:|---:|---:|")
    walls = {}
    for workers in (1, 2):
        wall, cpu = zip(*(run_loop("relay", args.seconds, 0, workers) for _ in range(args.rounds)), strict=True)
        walls[workers] = statistics.median(wall)
        print(f"| {workers} | {walls[workers] / 1000:.0f} | {statistics.median(cpu) / 1000:.0f} |")
    print(f"\n2 workers / 1 worker (wall): {walls[2] / walls[1]:.2f}x (on {os.cpu_count()} cores, "
          "the generator needs one of them)")

    half = per_cpu["relay"] / 2
    print("\n## One-way latency, µs (sender and receiver in one process, one clock)\n")
    print("| other traffic through the relay | direct p50 | direct p99 | relay p50 | relay p99 "
          "| added p50 | added p99 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, load in (("none", 0.0), (f"half load ({half / 1000:.0f} kpps)", half)):
        res = latency(args.seconds, load, 2000)
        (dp50, dp99), (rp50, rp99) = res["direct"], res["relay"]
        print(f"| {label} | {dp50:.1f} | {dp99:.1f} | {rp50:.1f} | {rp99:.1f} | {rp50 - dp50:.1f} | {rp99 - dp99:.1f} |")


if __name__ == "__main__":
    main()
