"""Runs agent responses as asyncio tasks next to the sans-IO calls.

The voice layer asks for work with commands (:class:`~voxwire.voice.session.StartResponse`,
:class:`~voxwire.voice.session.CancelResponse`); this runner turns each start into a task that
iterates the agent's ``respond(turn)`` generator and feeds every output back into the call, then
wakes the call (pump its events, re-arm the socket's timer). A cancel cancels the task at its next
``await``: on barge-in nothing more of that response reaches the pacer.

An agent is user code: an exception in its generator ends that response as ``failed`` with an
``error`` event to the client and a logged traceback; it never reaches the event loop.
"""

from __future__ import annotations

import asyncio
import logging

from voxwire.agent.base import AgentError
from voxwire.aio.udp import UdpShell
from voxwire.transceiver.call import Call
from voxwire.transceiver.service import Transceiver
from voxwire.voice.session import CancelResponse, StartResponse

log = logging.getLogger(__name__)


class AgentRunner:
    def __init__(self, transceiver: Transceiver, shell: UdpShell) -> None:
        self.transceiver = transceiver
        self.shell = shell
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def after_drain(self) -> None:
        """Hook for the UDP shell: collect ended calls, start and cancel responses."""
        transceiver = self.transceiver
        for call in transceiver.collect():
            self._cancel_call(call)
        for call in transceiver.take_pending():
            while (command := call.poll_command()) is not None:
                key = (call.call_id, command.response_id)
                if isinstance(command, StartResponse):
                    task = asyncio.get_running_loop().create_task(self._respond(call, command))
                    self._tasks[key] = task
                    task.add_done_callback(self._forget)
                elif isinstance(command, CancelResponse) and key in self._tasks:
                    self._tasks.pop(key).cancel()

    def _forget(self, task: asyncio.Task[None]) -> None:
        for key, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[key]

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def _respond(self, call: Call, command: StartResponse) -> None:
        error: str | None = None
        try:
            async for output in call.agent_session.respond(command.turn):
                if call.is_closed:
                    return
                call.voice.on_agent_output(command.response_id, output)
                self._wake(call)
        except asyncio.CancelledError:
            return  # barge-in or hang-up: the voice layer already closed the response
        except AgentError as exc:
            log.warning("call %s: agent error in response %s: %s", call.call_id, command.response_id, exc)
            error = str(exc)
        except Exception as exc:  # user code: report it on the call, keep the gateway up
            log.exception("call %s: agent failed in response %s", call.call_id, command.response_id)
            error = f"the agent failed: {type(exc).__name__}"
        if not call.is_closed:
            call.voice.on_agent_done(command.response_id, error)
            self._wake(call)

    def _wake(self, call: Call) -> None:
        self.transceiver.wake_call(call, self.shell.now())
        self.shell.drain()

    def _cancel_call(self, call: Call) -> None:
        for key in [k for k in self._tasks if k[0] == call.call_id]:
            self._tasks.pop(key).cancel()
