#!/usr/bin/env bash
# Install the Debian packages voxwire needs. Idempotent: skips apt when everything is present.
# Runtime: libopus0 (Opus codec, loaded with ctypes).
# Tests:   chromium (a real browser peer), espeak-ng + sox (fake microphone speech),
#          iproute2 + util-linux (private network namespaces), redis-server (registry tests).
set -euo pipefail
want=(libopus0 chromium espeak-ng sox iproute2 util-linux redis-server)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
