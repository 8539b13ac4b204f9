"""Runs the calls' deferrable work in slices between the loop's other work.

uvloop hands the socket's datagrams to the transceiver in batches of up to 32. Decoding each
packet, resampling it and running the turn detector costs a few hundred microseconds, so with
fifty callers whose packets arrive together one batch held the loop for ~10 ms: every pacer tick
and response task due meanwhile waited for it (measured: pacing p99 8 ms late at 50 sessions).
And a timer that found several calls' ticks due encoded all their frames before sending any.

With this edge, receiving a datagram only decrypts and queues it, and a tick only encrypts and
sends a frame encoded earlier; decoding and encoding run as loop callbacks of
``calls_per_slice`` calls each (:meth:`Transceiver.run_work`). Between two slices the loop fires its due timers
(pacer ticks), runs ready tasks (agent responses, VAD deliveries) and reads the socket again, so
none of them waits behind more than one slice. One active call costs one callback hop.
"""

from __future__ import annotations

import asyncio

from voxwire.aio.udp import UdpShell
from voxwire.transceiver.service import Transceiver

#: Calls worked on per loop callback: ~2 x 250 us, half a millisecond of loop time. bench/voice.py
#: at 50 sessions, same machine: 4 per slice left pacing jitter p99 at 2.7 ms and the gateway
#: share p99 at 7.2 ms; 1 or 2 per slice, 1.9 ms and 4.4 ms, for the same CPU.
CALLS_PER_SLICE = 2


def attach_work_slices(transceiver: Transceiver, shell: UdpShell, calls_per_slice: int = CALLS_PER_SLICE) -> None:
    """Run ``transceiver``'s deferrable work in loop callbacks of ``calls_per_slice`` calls
    each; attach before the first call is created."""
    if calls_per_slice < 1:
        raise ValueError("calls_per_slice must be at least 1")
    loop = asyncio.get_running_loop()

    def run_slice() -> None:
        waiting = transceiver.run_work(shell.now(), calls_per_slice)
        shell.drain()
        if waiting:
            loop.call_soon(run_slice)

    def schedule() -> None:
        loop.call_soon(run_slice)

    transceiver.on_work = schedule
