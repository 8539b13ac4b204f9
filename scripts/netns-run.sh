#!/bin/sh
# Run a command in a private network namespace that has only loopback (up), so nothing it does
# can leave the machine and every ICE candidate is 127.0.0.1. Needs root (or unprivileged user
# namespaces; then the caller is mapped to root inside). Usage:
#
#   scripts/netns-run.sh .venv/bin/pytest tests/e2e
#
# A private mount namespace with a fresh sysfs comes along, so /sys/class/net lists only "lo"
# (sysfs otherwise keeps showing the namespace that mounted it). Already in a loopback-only
# namespace: runs the command as is.
set -eu
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }

if [ "$(ip -o link show | wc -l)" -eq 1 ]; then
  ip link set lo up
  exec "$@"
fi

inside='mount -t sysfs sysfs /sys && ip link set lo up && exec "$@"'
if [ "$(id -u)" -eq 0 ]; then
  exec unshare --net --mount sh -c "$inside" sh "$@"
fi
exec unshare --map-root-user --net --mount sh -c "$inside" sh "$@"
