#!/usr/bin/env bash
# Set up a fresh Debian machine (as root) and run `voxwire serve` with the default agent.
# Extra arguments go to `voxwire serve` (see `voxwire serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system.sh
bash scripts/install-python.sh
exec .venv/bin/voxwire serve "$@"
