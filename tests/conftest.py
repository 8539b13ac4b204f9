"""Shared fixtures: a real ``redis-server`` for the relay tier's tests (TESTING.md: the real thing),
and, in every test, a check that the endpoint's kept deadlines stay true (``Endpoint`` skips
the question after media that moved nothing, so a missed touch must fail somewhere).

``redis_server`` starts one server per test session on a free loopback port, without persistence,
and stops it at the end. Outage tests call :meth:`RedisServer.stop` and :meth:`RedisServer.start`;
the server comes back on the same port, empty.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A ``redis-server`` subprocess on 127.0.0.1:``port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> None:
        assert self.proc is None, "redis-server already running"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--bind", "127.0.0.1", "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"FLUSHALL\r\n")
            s.recv(16)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/install-system.sh", pytrace=False)
    server = RedisServer(_free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A running, empty server's URL (restarted if an outage test left it stopped)."""
    if not redis_server.running:
        redis_server.start()
    redis_server.flush()
    yield redis_server.url
    if not redis_server.running:
        redis_server.start()


@pytest.fixture(autouse=True)
def _endpoint_deadlines_stay_true(monkeypatch: pytest.MonkeyPatch) -> None:
    """In every test that drives an :class:`~voxwire.proto.endpoint.Endpoint`: once it has settled
    (``poll_timeout``), the deadline it keeps for each live session is the one the session gives
    now. The endpoint only asks sessions that were touched; a change that does not touch its call
    would leave the call's timer unarmed, and this fails where that happens."""
    from voxwire.proto.endpoint import Endpoint

    settle = Endpoint.poll_timeout

    def checked(self: Endpoint) -> float | None:  # type: ignore[type-arg]
        deadline = settle(self)
        for ufrag, session in self._by_ufrag.items():
            if not session.is_closed:
                assert self._deadline.get(ufrag) == session.poll_timeout(), f"stale deadline for {ufrag}"
        return deadline

    monkeypatch.setattr(Endpoint, "poll_timeout", checked)
