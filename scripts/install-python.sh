#!/usr/bin/env bash
# Create .venv and install voxwire (with test extras when $1 == test).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$py" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
# The Silero VAD model file, without the torch dependency the package declares (we use onnxruntime).
.venv/bin/pip install -q --no-deps silero-vad==6.2.3
if [ "${1:-}" = test ]; then
  .venv/bin/pip install -q -e ".[test]"
else
  .venv/bin/pip install -q -e .
fi
