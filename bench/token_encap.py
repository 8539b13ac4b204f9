"""Per-call cost of the routing token and the relay encapsulation header.

Run: ``.venv/bin/python bench/token_encap.py [--rounds N]``. Prints a Markdown table of microseconds
per call: each sample times a batch of calls (so the timer's own cost is spread thin), and the table
gives the median and p90 over ``N`` samples, less the cost of an empty call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from voxwire.wire import encap
from voxwire.wire.token import TokenError, TokenKey, TokenMinter, TokenVerifier, peek_transceiver

BATCH = 100
NOW = 1_760_000_000.0


def measure(rounds: int, call: Callable[[], object]) -> tuple[float, float]:
    """Median and p90 in µs per call of ``call``, timed in batches of BATCH."""
    clock = time.perf_counter_ns
    samples = []
    for r in range(rounds + rounds // 10):
        t0 = clock()
        for _ in range(BATCH):
            call()
        if r >= rounds // 10:  # the first tenth warms up
            samples.append((clock() - t0) / BATCH / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500, help=f"samples of {BATCH} calls (default 500)")
    rounds = parser.parse_args().rounds

    key, old = TokenKey(2, os.urandom(32)), TokenKey(1, os.urandom(32))
    minter = TokenMinter(key, 3, 0x123456, os.urandom)
    verifier = TokenVerifier([old, key], max_age=86400)
    ufrag = minter.mint(NOW)
    ufrag_bytes = ufrag.encode()
    forged = ufrag[:-1] + ("A" if ufrag[-1] != "A" else "B")

    def verify_fail(u: str) -> None:
        try:
            verifier.verify(u, NOW)
        except TokenError:
            pass

    v4, v6 = ("203.0.113.7", 50123), ("2001:db8::1:2", 443)
    h4, h6 = encap.pack_addr(v4), encap.pack_addr(v6)
    srtp = os.urandom(172)  # 20 ms Opus in SRTP: a typical relayed datagram
    d4, d6 = encap.encode(v4, srtp), encap.encode(v6, srtp)

    empty = measure(rounds, lambda: None)[0]
    rows: list[tuple[str, Callable[[], object]]] = [
        ("token mint", lambda: minter.mint(NOW)),
        ("token verify (str, valid)", lambda: verifier.verify(ufrag, NOW)),
        ("token verify (bytes, valid)", lambda: verifier.verify(ufrag_bytes, NOW)),
        ("token verify (bad tag)", lambda: verify_fail(forged)),
        ("token verify (malformed length)", lambda: verify_fail("abcd")),
        ("token peek_transceiver", lambda: peek_transceiver(ufrag)),
        ("encap pack_addr v4 (cached)", lambda: encap.pack_addr(v4)),
        ("encap pack_addr v6 (uncached)", lambda: encap.pack_addr.__wrapped__(v6)),
        ("encap encode v4 (pack + concat)", lambda: encap.encode(v4, srtp)),
        ("encap header + payload (hot path)", lambda: h4 + srtp),
        ("encap encode_packed v6", lambda: encap.encode_packed(h6, srtp)),
        ("encap decode_offset v4", lambda: encap.decode_offset(d4)),
        ("encap decode_offset v6", lambda: encap.decode_offset(d6)),
        ("encap decode v4 (payload copied)", lambda: encap.decode(d4)),
        ("encap decode v6 (payload copied)", lambda: encap.decode(d6)),
    ]
    print(f"| operation ({BATCH}-call batches, {rounds} samples) | median µs | p90 µs |")
    print("|---|---:|---:|")
    for name, call in rows:
        median, p90 = measure(rounds, call)
        print(f"| {name} | {max(0.0, median - empty):.2f} | {max(0.0, p90 - empty):.2f} |")


if __name__ == "__main__":
    main()
