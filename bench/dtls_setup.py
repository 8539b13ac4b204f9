"""Micro-benchmarks for the DTLS-SRTP core: server CPU per handshake, SRTP cost per packet.

Run: ``.venv/bin/python bench/dtls_setup.py [--handshakes N] [--realtime]``

* Handshake: a voxwire client and server in memory; ``time.process_time`` brackets only the
  server's calls (construction, start, handle_datagram, draining). Baselines measured in the same
  run: the same handshake with a fresh ``SSL.Context`` per session (what per-call setup would cost),
  and the bare public-key operations a server cannot avoid (ECDSA P-256 sign + verify, X25519
  keygen + exchange) done with ``cryptography``.
* SRTP: µs per protect/unprotect of a 12 + 120 byte RTP packet (a 20 ms Opus frame), each
  profile, against a bare ``pylibsrtp.Session`` call as the baseline.
* ``--realtime``: drops each flight once and lets the handshake recover on the real monotonic
  clock (sleeps ~1 s per case) to show that production retransmissions come from OpenSSL (fresh
  record numbers), not from the verbatim fallback the virtual-time tests exercise.

Machines here are shared and noisy: read medians and ratios, not single figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import pylibsrtp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from voxwire.proto import dtls_context
from voxwire.proto.certificate import Certificate
from voxwire.proto.dtls import DtlsRole, DtlsTransport
from voxwire.proto.srtp import SrtpProfile, SrtpSession


def server_handshake_cpu(ccert: Certificate, scert: Certificate, *, fresh_context: bool) -> float:
    """Server-side CPU seconds for one complete handshake."""
    client = DtlsTransport(ccert, DtlsRole.CLIENT, [scert.fingerprint])
    cpu = 0.0
    t = time.process_time()
    if fresh_context:
        dtls_context._contexts.clear()
    server = DtlsTransport(scert, DtlsRole.SERVER, [ccert.fingerprint])
    server.start(0.0)
    cpu += time.process_time() - t
    client.start(0.0)
    while True:
        moved = False
        while (d := client.poll_transmit()) is not None:
            t = time.process_time()
            server.handle_datagram(d, 0.0)
            cpu += time.process_time() - t
            moved = True
        t = time.process_time()
        out = list(iter(server.poll_transmit, None))
        while server.poll_event() is not None:
            pass
        cpu += time.process_time() - t
        for d in out:
            client.handle_datagram(d, 0.0)
            moved = True
        if not moved:
            break
    assert server.is_connected and client.is_connected
    return cpu


def crypto_floor() -> float:
    """ECDSA P-256 sign + verify and X25519 keygen + exchange: the server's unavoidable work."""
    key = ec.generate_private_key(ec.SECP256R1())
    peer = ec.generate_private_key(ec.SECP256R1())
    message = b"transcript" * 20
    signature = peer.sign(message, ec.ECDSA(hashes.SHA256()))
    remote = x25519.X25519PrivateKey.generate().public_key()
    t = time.process_time()
    key.sign(message, ec.ECDSA(hashes.SHA256()))
    peer.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
    x25519.X25519PrivateKey.generate().exchange(remote)
    return time.process_time() - t


def per_call_us(fn: Callable[[], object], n: int) -> float:
    """Median over 5 rounds of n calls, in µs per call."""
    best = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(best)


def bench_handshake(n: int) -> None:
    ccert, scert = Certificate.generate(), Certificate.generate()
    for _ in range(20):  # warm up (and build the shared contexts once)
        server_handshake_cpu(ccert, scert, fresh_context=False)
    rows: list[tuple[str, float, float]] = []
    cases: list[tuple[str, Callable[[], float]]] = [
        ("voxwire server (shared context)", lambda: server_handshake_cpu(ccert, scert, fresh_context=False)),
        (
            "baseline: fresh context per session",
            lambda: server_handshake_cpu(ccert, scert, fresh_context=True),
        ),
        ("floor: sign+verify+x25519", crypto_floor),
    ]
    for name, fn in cases:
        xs = sorted(fn() for _ in range(n))
        rows.append((name, statistics.median(xs), xs[int(0.9 * (len(xs) - 1))]))
    ours = rows[0][1]
    print(f"\nserver CPU per DTLS handshake ({n} runs)")
    print(f"{'':40} {'median ms':>10} {'p90 ms':>10} {'ratio':>7}")
    for name, med, p90 in rows:
        print(f"{name:40} {med * 1e3:10.3f} {p90 * 1e3:10.3f} {med / ours:7.2f}")


def bench_srtp(n: int) -> None:
    packet = bytes.fromhex("80780001000000a0deadbeef") + bytes(120)
    print(f"\nSRTP per packet, 12+120 byte RTP ({n} calls x 5, median)")
    print(f"{'':40} {'protect us':>10} {'unprotect us':>12}")
    # Every call needs a new sequence number: libsrtp refuses to protect one twice (two-time pad).
    packets = [packet[:2] + (i & 0xFFFF).to_bytes(2, "big") + packet[4:] for i in range(5 * n)]
    for profile in (SrtpProfile.AEAD_AES_128_GCM, SrtpProfile.AES_CM_128_HMAC_SHA1_80):
        key = bytes(range(profile.keying_len))
        tx, rx = SrtpSession(profile, key, key), SrtpSession(profile, key, key)
        bare_tx = pylibsrtp.Session(
            pylibsrtp.Policy(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile.libsrtp_profile)
        )
        src = iter(packets)
        protected: list[bytes] = []
        p_us = per_call_us(lambda: protected.append(tx.protect_rtp(next(src))), n)  # noqa: B023
        dst = iter(protected)
        u_us = per_call_us(lambda: rx.unprotect_rtp(next(dst)), n)  # noqa: B023
        raw = iter(packets)
        b_us = per_call_us(lambda: bare_tx.protect(next(raw)), n)  # noqa: B023
        print(f"{profile.name:40} {p_us:10.2f} {u_us:12.2f}")
        print(f"{'  baseline: bare pylibsrtp protect':40} {b_us:10.2f}")


def realtime_retransmissions() -> None:
    """Drop datagram k once; recover on the real clock; report who re-sent what."""
    ccert, scert = Certificate.generate(), Certificate.generate()
    print("\nreal-time loss recovery (OpenSSL's own timer; sleeps)")
    print(f"{'dropped':>8} {'done s':>7}  client rtx/verbatim  server rtx/verbatim")
    for drop in range(4):
        client = DtlsTransport(ccert, DtlsRole.CLIENT, [scert.fingerprint])
        server = DtlsTransport(scert, DtlsRole.SERVER, [ccert.fingerprint])
        t0 = time.monotonic()
        server.start(t0)
        client.start(t0)
        sent = 0
        while not (client.is_connected and server.is_connected) and time.monotonic() - t0 < 10:
            moved = False
            for a, b in ((client, server), (server, client)):
                while (d := a.poll_transmit()) is not None:
                    moved = True
                    sent += 1
                    if sent - 1 != drop:
                        b.handle_datagram(d, time.monotonic())
            while client.poll_event() is not None or server.poll_event() is not None:
                pass
            if not moved:
                deadlines = [x for x in (client.poll_timeout(), server.poll_timeout()) if x is not None]
                if not deadlines:
                    break
                time.sleep(max(0.0, min(deadlines) - time.monotonic()))
                for t in (client, server):
                    if (x := t.poll_timeout()) is not None and x <= time.monotonic():
                        t.handle_timeout(time.monotonic())
        c, s = client.counters, server.counters
        print(
            f"{drop:8} {time.monotonic() - t0:7.3f}  {c.retransmits:>10}/{c.verbatim_resends:<8}"
            f"  {s.retransmits:>10}/{s.verbatim_resends:<8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--handshakes", type=int, default=300)
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--realtime", action="store_true", help="also run the real-time retransmission check")
    args = parser.parse_args()
    bench_handshake(args.handshakes)
    bench_srtp(args.packets)
    if args.realtime:
        realtime_retransmissions()


if __name__ == "__main__":
    main()
