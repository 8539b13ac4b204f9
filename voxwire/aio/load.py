"""Follows how busy the event loop's thread is and tells the transceiver's encoder policy.

The share is CPU time of the loop's own thread (``time.thread_time``) over wall time, sampled
once per interval from a task on that loop: what the calls' packet and codec work costs, not the
speech models' worker threads, which do not delay packets unless they hold the GIL.
"""

from __future__ import annotations

import asyncio
import logging
import time

from voxwire.media.complexity import ComplexityPolicy

log = logging.getLogger(__name__)

#: Seconds between samples: long enough to average out bursts, short enough to act within a few.
INTERVAL = 1.0


async def follow_loop_load(policy: ComplexityPolicy, interval: float = INTERVAL) -> None:
    """Run forever (cancel to stop): feed ``policy`` the loop thread's busy share."""
    wall, cpu = time.monotonic(), time.thread_time()
    while True:
        await asyncio.sleep(interval)
        now, used = time.monotonic(), time.thread_time()
        busy = (used - cpu) / max(now - wall, 1e-6)
        wall, cpu = now, used
        before = policy.complexity
        after = policy.update(busy)
        if after != before:
            log.info("event loop %.0f%% busy: Opus encoder complexity %d -> %d", 100 * busy, before, after)


def start_load_follower(policy: ComplexityPolicy) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(follow_loop_load(policy), name="loop-load")
    task.add_done_callback(_report_crash)
    return task


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the loop load follower stopped", exc_info=task.exception())
