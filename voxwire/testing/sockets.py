"""Small helpers for tests that drive sans-IO peers over real loopback sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from voxwire.aio.udp import Core, UdpShell
from voxwire.wire.types import Address


async def until(cond: Callable[[], bool], timeout: float = 5.0, step: float = 0.005) -> None:
    """Wait (real time) until ``cond()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(step)


async def udp(core: Core, host: str = "127.0.0.1", **kw: Callable[[], None]) -> UdpShell:
    """A UDP shell on an ephemeral port driving ``core``."""
    loop = asyncio.get_running_loop()
    _, shell = await loop.create_datagram_endpoint(lambda: UdpShell(core, **kw), local_addr=(host, 0))
    return shell


def sockname(shell: UdpShell) -> Address:
    assert shell.transport is not None
    host, port = shell.transport.get_extra_info("sockname")[:2]
    return host, port
