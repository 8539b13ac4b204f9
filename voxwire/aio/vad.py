"""Scores every session's voice activity windows together, once per event-loop iteration.

The turn detectors of a transceiver share one :class:`~voxwire.agent.vad.VadBatch`. The first
window queued in an iteration schedules one ``call_soon``: it runs after the datagrams the loop
read in this iteration were handled, scores all their windows with one onnxruntime run per round,
pumps the calls whose detectors produced turn events, and drains the socket. With one active
session that is the same work as before, a few microseconds later; with fifty it is one run
where there were up to fifty.
"""

from __future__ import annotations

import asyncio
import functools

from voxwire.agent.vad import VadBatch
from voxwire.aio.udp import UdpShell
from voxwire.transceiver.service import Transceiver
from voxwire.voice.session import server_vad_detector


def attach_vad_batch(transceiver: Transceiver, shell: UdpShell, batch: VadBatch | None = None) -> VadBatch:
    """Give ``transceiver``'s server_vad sessions one shared batch, run from ``shell``'s loop."""
    batch = batch or VadBatch()
    loop = asyncio.get_running_loop()

    def run() -> None:
        batch.run()
        if transceiver.wake(shell.now()):
            shell.drain()

    def schedule() -> None:
        loop.call_soon(run)

    batch.on_pending = schedule
    transceiver.turn_detector = functools.partial(server_vad_detector, batch=batch)
    return batch
