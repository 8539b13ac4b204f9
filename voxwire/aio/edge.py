"""Everything asyncio adds around a transceiver's sans-IO calls, wired the one way ``voxwire
serve`` and ``voxwire transceiver`` both run it."""

from __future__ import annotations

from voxwire.aio.agents import AgentRunner
from voxwire.aio.udp import UdpShell
from voxwire.aio.vad import attach_vad_batch
from voxwire.aio.work import attach_work_slices
from voxwire.transceiver.service import Transceiver


def attach_call_edge(transceiver: Transceiver, shell: UdpShell) -> AgentRunner:
    """Agent responses as tasks, one shared VAD batch on a worker thread, decoding and
    encoding in slices between pacer ticks. Call before the first call is created."""
    runner = AgentRunner(transceiver, shell)
    shell.after_drain = runner.after_drain
    attach_vad_batch(transceiver, shell)
    attach_work_slices(transceiver, shell)
    return runner
