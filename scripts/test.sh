#!/usr/bin/env bash
# Set up a fresh Debian machine (as root) and run the whole test suite.
# The suite runs inside a private network namespace that has only loopback, so the end-to-end
# tests with Chromium and aiortc cannot reach, or be reached from, any other network.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system.sh
bash scripts/install-python.sh test
exec bash scripts/netns-run.sh .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
