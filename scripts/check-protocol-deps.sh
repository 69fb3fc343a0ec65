#!/usr/bin/env bash
# Fails if grove-protocol's normal dependency tree contains an IO crate: the protocol core
# must stay sans-IO (no async runtime, no networking, no storage).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree -p grove-protocol -e normal --prefix none --format '{p}')
status=0
for bad in tokio libp2p redb sled mio; do
  if printf '%s\n' "$tree" | grep -qE "^${bad}( |$)"; then
    echo "grove-protocol depends on ${bad}: the protocol core must stay sans-IO" >&2
    status=1
  fi
done
if [ "$status" -eq 0 ]; then
  echo "grove-protocol dependency check: no tokio, libp2p, redb, sled or mio"
fi
exit "$status"
