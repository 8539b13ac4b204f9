"""The codebase's own rules, checked like any other behaviour: ruff (including the sans-IO import ban
in voxwire/wire and voxwire/proto) and mypy --strict on the protocol layers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    result = run(str(BIN / "ruff"), "check", "voxwire", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_sans_io_layers_cannot_import_io(tmp_path):
    probe = ROOT / "voxwire" / "proto" / "_sans_io_probe.py"
    probe.write_text("import asyncio\nimport time\n\nprint(asyncio, time)\n")
    try:
        result = run(str(BIN / "ruff"), "check", "--select", "TID251", str(probe))
    finally:
        probe.unlink()
    assert result.returncode == 1 and "`asyncio` is banned" in result.stdout and "`time` is banned" in result.stdout


def test_mypy_strict_on_wire_and_proto():
    result = run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr
