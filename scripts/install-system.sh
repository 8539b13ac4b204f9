#!/usr/bin/env bash
# Install the Debian packages voxwire needs. Idempotent: skips apt when everything is present.
# Runtime: libopus0 (Opus codec, ctypes), espeak-ng + libespeak-ng1 (phonemes for the Piper
#          voice, ctypes; the fallback voice), redis-server (registry and flow cache).
# Tests:   chromium (a real browser peer), sox (fake microphone speech),
#          iproute2 + util-linux (private network namespaces).
set -euo pipefail
want=(libopus0 libespeak-ng1 espeak-ng chromium sox iproute2 util-linux redis-server)
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
