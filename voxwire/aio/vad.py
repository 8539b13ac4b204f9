"""Scores every session's voice activity windows together, off the event loop's thread.

The turn detectors of a transceiver share one :class:`~voxwire.agent.vad.VadBatch`. The first
window queued into an empty batch schedules a round: after the datagrams the loop read in this
iteration were handled, the loop thread gathers the oldest window of every stream that has one,
one worker thread runs Silero on all of them at once (onnxruntime releases the GIL, so the loop
goes on sending and receiving meanwhile), and back on the loop thread the probabilities reach
their detectors, the calls whose turns changed are pumped and the socket is drained. Whatever
was queued during the run goes in the next round, so one round is in flight at a time and every
stream's windows stay in order.

With one active session that is the work of a single run plus a thread hand-off; with fifty,
one run where there were fifty, none of it blocking the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging

from voxwire.agent.vad import VadBatch, VadRound
from voxwire.aio.udp import UdpShell
from voxwire.transceiver.service import Transceiver
from voxwire.voice.session import server_vad_detector

log = logging.getLogger(__name__)


def attach_vad_batch(
    transceiver: Transceiver,
    shell: UdpShell,
    batch: VadBatch | None = None,
    *,
    executor: concurrent.futures.Executor | None = None,
) -> VadBatch:
    """Give ``transceiver``'s server_vad sessions one shared batch, scored on ``executor`` (a
    thread of its own by default) and delivered on ``shell``'s loop."""
    batch = batch or VadBatch()
    loop = asyncio.get_running_loop()
    pool = executor or concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="voxwire-vad")
    in_flight = False

    def start() -> None:
        nonlocal in_flight
        if in_flight:
            return  # finished() starts the next round
        scored = batch.take_round()
        if scored is None:
            return
        in_flight = True
        loop.run_in_executor(pool, batch.score, scored).add_done_callback(functools.partial(finished, scored))

    def finished(scored: VadRound, future: asyncio.Future[None]) -> None:
        nonlocal in_flight
        in_flight = False
        if future.cancelled():
            return  # the loop is shutting down
        if (error := future.exception()) is not None:
            log.error("VAD inference failed; these windows are dropped", exc_info=error)
            batch.abandon(scored)
        else:
            batch.finish(scored)
        if transceiver.wake(shell.now()):
            shell.drain()
        if batch.pending:
            start()

    def schedule() -> None:
        loop.call_soon(start)

    batch.on_pending = schedule
    transceiver.vad_batch = batch
    transceiver.turn_detector = functools.partial(server_vad_detector, batch=batch)
    return batch
