"""A relay fleet on loopback for end-to-end tests and benchmarks: an optional ``redis-server``, one
``voxwire relay`` and N ``voxwire transceiver`` processes, each in its own process with its own log.

    with RelayFleet(2, redis=redis_server) as fleet:
        page = new_page(fleet.transceivers[0].url, "?raw=1")   # the page POSTs its offer there
        ...
        fleet.restart_relay()            # same public and internal ports, flow table lost
        fleet.transceivers[0].log()      # "call rtc_... connected", "client address ..."

Layout: the relay's public address is ``127.0.0.1:<relay_port>`` and every transceiver advertises it
in its answers; the relay's internal socket has a fixed port too, so a restarted relay sits exactly
where the old one was (as a restarted relay host would). With ``redis`` the relay finds the
transceivers through the Redis registry (they heartbeat into it) and keeps the flow cache there;
``static=True`` also (or, without Redis, only) gives it the transceivers on its command line.

``learn_from_transceiver`` / ``flow_cache`` other than the defaults of ``voxwire relay`` run the
relay through this file's ``__main__`` instead (``voxwire relay``'s own option parsing, then the
:class:`~voxwire.relay.core.RelayConfig` changed): the benchmark of relay restarts compares them.

Redis: pass the ``redis_server`` fixture of tests/conftest.py (the session's server), or, outside
pytest, :func:`start_redis` (the same class, loaded from tests/conftest.py). Its ``stop()`` and
``start()`` simulate an outage; the server comes back empty on the same port.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ != "__main__":  # run as a script it only launches a relay (below), without the harness
    from .browser import REPO, free_port, wait_for_port

VOXWIRE = str(Path(sys.executable).with_name("voxwire"))  # the console script next to this Python
READY = re.compile(r"voxwire relay worker 0 \(pid \d+\)")


def _conftest() -> Any:
    """tests/conftest.py as a module (its RedisServer class), whether or not pytest loaded it."""
    path = REPO / "tests" / "conftest.py"
    loaded = sys.modules.get("conftest")
    if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == path:
        return loaded
    spec = importlib.util.spec_from_file_location("voxwire_tests_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start_redis() -> Any:
    """A running ``redis-server`` on a free loopback port (tests/conftest.py's RedisServer); the
    caller stops it with ``.stop()``."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed: run scripts/install-system.sh")
    conftest = _conftest()
    server = conftest.RedisServer(conftest._free_port())
    server.start()
    return server


def token_key(key_id: int = 1) -> str:
    """A fresh ``id:hexsecret`` routing-token key for ``--token-keys``."""
    return f"{key_id}:{os.urandom(32).hex()}"


@dataclass
class Process:
    """One child process with its log file."""

    name: str
    cmd: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        with open(self.log_path, "ab") as log:
            log.write(f"---- {' '.join(self.cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class TransceiverProcess(Process):
    tid: int = 0
    http_port: int = 0
    udp_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.udp_port


@dataclass
class RelayFleet:
    """One relay and ``count`` transceivers on 127.0.0.1."""

    count: int = 2
    first_id: int = 1  # transceiver ids are first_id..first_id+count-1 (fleets sharing one Redis differ)
    redis: Any = None  # a RedisServer (url, start(), stop(), running) or None
    static: bool | None = None  # give the relay the transceivers on its command line (default: no Redis)
    learn_from_transceiver: bool = True
    flow_cache: bool = True
    log_level: str = "debug"
    log_dir: Path | None = None
    relay_extra: tuple[str, ...] = ()
    transceiver_extra: tuple[str, ...] = ()
    keys: str = field(default_factory=token_key)
    relay_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    internal_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    transceivers: list[TransceiverProcess] = field(default_factory=list)
    relay: Process | None = None

    def __post_init__(self) -> None:
        self.log_dir = Path(self.log_dir or tempfile.mkdtemp(prefix="voxwire-fleet-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.static is None:
            self.static = self.redis is None
        if self.redis is None and not self.static:
            raise ValueError("without Redis the relay needs static transceivers")
        for tid in range(self.first_id, self.first_id + self.count):
            http_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
            cmd = [
                VOXWIRE, "transceiver", "--http-port", str(http_port), "--udp-port", str(udp_port),
                "--transceiver-id", str(tid), "--token-keys", self.keys,
                "--advertise-address", f"127.0.0.1:{self.relay_port}", "--relay-addresses", "127.0.0.1",
                "--heartbeat", "1", "--log-level", self.log_level, "--agent", "echo", *self.transceiver_extra,
            ]
            if self.redis is not None:
                cmd += ["--redis-url", self.redis.url]
            self.transceivers.append(TransceiverProcess(
                f"transceiver-{tid}", cmd, self.log_dir / f"transceiver-{tid}.log",
                tid=tid, http_port=http_port, udp_port=udp_port,
            ))
        relay_args = [
            "--public", f"127.0.0.1:{self.relay_port}", "--internal", f"127.0.0.1:{self.internal_port}",
            "--token-keys", self.keys, "--log-level", self.log_level, *self.relay_extra,
        ]
        if self.redis is not None:
            relay_args += ["--redis-url", self.redis.url]
        if self.static:
            relay_args += ["--transceivers", ",".join(f"{t.tid}=127.0.0.1:{t.udp_port}" for t in self.transceivers)]
        if self.learn_from_transceiver and self.flow_cache:
            cmd = [VOXWIRE, "relay", *relay_args]
        else:
            cmd = [sys.executable, str(Path(__file__).resolve()), "relay"]
            cmd += [] if self.learn_from_transceiver else ["--no-learn"]
            cmd += [] if self.flow_cache else ["--no-flow-cache"]
            cmd += ["--", *relay_args]
        self.relay = Process("relay", cmd, self.log_dir / "relay.log")

    # -- the public address ----------------------------------------------------------------------

    @property
    def public(self) -> tuple[str, int]:
        return "127.0.0.1", self.relay_port

    @property
    def internal(self) -> tuple[str, int]:
        return "127.0.0.1", self.internal_port

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> RelayFleet:
        for t in self.transceivers:
            t.start()
        for t in self.transceivers:
            assert t.proc is not None
            wait_for_port(t.http_port, timeout=timeout, proc=t.proc)
        if self.redis is not None:
            self.wait_registered(timeout)
        self.start_relay(timeout)
        return self

    def stop(self) -> None:
        for p in (self.relay, *self.transceivers):
            if p is not None:
                p.stop()

    def __enter__(self) -> RelayFleet:
        try:
            return self.start()
        except BaseException:
            self.dump_logs()
            self.stop()
            raise

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.dump_logs()
        self.stop()

    def start_relay(self, timeout: float = 15.0) -> float:
        """Start the relay and wait until its worker is listening; returns the seconds it took."""
        assert self.relay is not None
        t0 = time.monotonic()
        offset = self.relay.log_path.stat().st_size if self.relay.log_path.exists() else 0
        self.relay.start()
        deadline = t0 + timeout
        while True:
            with open(self.relay.log_path, "rb") as f:
                f.seek(offset)
                if READY.search(f.read().decode(errors="replace")):
                    return time.monotonic() - t0
            if not self.relay.running:
                raise RuntimeError(f"relay exited before listening:\n{self.relay.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"relay not ready after {timeout} s:\n{self.relay.log()}")
            time.sleep(0.01)

    def stop_relay(self) -> None:
        assert self.relay is not None
        self.relay.stop()

    def restart_relay(self, down: float = 0.0) -> tuple[float, float]:
        """Stop the relay, wait ``down`` seconds, start it on the same ports. Returns (seconds from
        the stop to the new worker listening, seconds the start took)."""
        t0 = time.monotonic()
        self.stop_relay()
        if down:
            time.sleep(down)
        startup = self.start_relay()
        return time.monotonic() - t0, startup

    def stop_redis(self) -> None:
        assert self.redis is not None
        self.redis.stop()

    def start_redis(self) -> None:
        assert self.redis is not None
        if not self.redis.running:
            self.redis.start()

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Wait until every transceiver's registry entry is in Redis."""
        wanted = {f"voxwire:0:tx:{t.tid}" for t in self.transceivers}
        deadline = time.monotonic() + timeout
        while True:
            if wanted <= set(self._redis_keys("voxwire:0:tx:*")):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"transceivers not registered in Redis after {timeout} s")
            time.sleep(0.05)

    def _redis_keys(self, pattern: str) -> list[str]:
        import redis

        client = redis.Redis.from_url(self.redis.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return sorted(k.decode() for k in client.keys(pattern))
        finally:
            client.close()

    def flow_keys(self) -> list[str]:
        """The flow cache's keys in Redis (``voxwire:0:flow:host|port``)."""
        return self._redis_keys("voxwire:0:flow:*")

    # -- logs ------------------------------------------------------------------------------------

    def dump_logs(self) -> None:
        for p in (self.relay, *self.transceivers):
            if p is not None:
                print(f"---- {p.name} ({p.log_path}) ----\n{p.log()[-6000:]}")


# ---- `python tests/e2e/relay_fleet.py relay [--no-learn] [--no-flow-cache] -- <voxwire relay options>`


def _relay_main(argv: list[str]) -> int:
    """``voxwire relay`` with RelayConfig.learn_from_transceiver / flow_cache turned off."""
    import argparse
    import asyncio
    import dataclasses
    import logging

    import uvloop

    from voxwire.cli import build_parser
    from voxwire.relay.cli import relay_settings
    from voxwire.relay.loop import start_worker

    own = argparse.ArgumentParser(prog="relay_fleet.py relay")
    own.add_argument("--no-learn", action="store_true")
    own.add_argument("--no-flow-cache", action="store_true")
    own.add_argument("rest", nargs=argparse.REMAINDER)
    args = own.parse_args(argv)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    opts = build_parser().parse_args(["relay", *rest])
    logging.basicConfig(level=opts.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        stream=sys.stderr)
    settings = relay_settings(opts)
    config = settings.config
    if args.no_learn:
        config = dataclasses.replace(config, learn_from_transceiver=False)
    if args.no_flow_cache:
        config = dataclasses.replace(config, flow_cache=False)
    settings.config = config

    async def run() -> None:
        worker = await start_worker(settings, 0)
        print(f"voxwire relay worker 0 (pid {os.getpid()}): public {worker.public_addresses()}, "
              f"internal {worker.internal_address[0]}:{worker.internal_address[1]} "
              f"(learn_from_transceiver={config.learn_from_transceiver}, flow_cache={config.flow_cache})",
              flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await worker.stop()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run())
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["relay"]:
        sys.exit("usage: relay_fleet.py relay [--no-learn] [--no-flow-cache] -- VOXWIRE_RELAY_OPTIONS...")
    sys.exit(_relay_main(sys.argv[2:]))
