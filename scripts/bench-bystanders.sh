#!/usr/bin/env bash
# A control for the machine: scripts/bench-e2e.sh run while BYSTANDERS (default 150) further
# daemons, a network of their own that computes nothing, idle alongside. A 50-node
# computation among 150 bystanders, against the same computation alone and the 200-node one,
# tells how much of the CPU per node that grows with N is the mere presence of 200 processes
# on this machine (scheduling, memory, their background) rather than work a node does.
#
#   BYSTANDERS=150 GROVE=target/release/grove DIM=1000 SHARE_WINDOW_MS=15000 \
#       scripts/bench-bystanders.sh 50
#
# The bystanders start first and the benchmark waits until each of their directories holds
# all of them (their joining is over); the bench's own figures count only its daemons. Every
# bystander and its directory is removed when the script ends. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-daemons.sh
. scripts/lib-daemons.sh

K=${BYSTANDERS:-150}
if [ -z "${GROVE:-}" ]; then
    cargo build --release -q --workspace --bins
    GROVE=$(pwd)/target/release/grove
fi
ROOT=$(mktemp -d -t grove-bystanders-XXXXXX)
cleanup() {
    kill_daemons
    rm -rf "$ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for i in $(seq 0 $((K - 1))); do "$GROVE" init --data-dir "$ROOT/$i" >/dev/null; done
start_daemon "$ROOT" 0 ""
BOOT=$(listen_address "$ROOT/0")
[ -n "$BOOT" ] || { echo "bystander 0 did not start" >&2; exit 1; }
T0=$(date +%s)
for i in $(seq 1 $((K - 1))); do start_daemon "$ROOT" "$i" "$BOOT"; done
await_directories "$ROOT" "$K"
B0=$(pid_ticks "${PIDS[@]}" | tr ' ' '+' | bc)
sleep 5
B1=$(pid_ticks "${PIDS[@]}" | tr ' ' '+' | bc)
echo "bystanders: $K daemons, directories converged in $(($(date +%s) - T0 - 5)) s, idle" \
    "$(python3 -c "print(round(($B1 - $B0) * 1000 / $(getconf CLK_TCK) / $K / 5, 2))") ms/node/s"
GROVE="$GROVE" scripts/bench-e2e.sh "$@"
B2=$(pid_ticks "${PIDS[@]}" | tr ' ' '+' | bc)
echo "bystanders: $(python3 -c "print(round(($B2 - $B1) * 1000 / $(getconf CLK_TCK) / $K, 1))") ms of CPU per bystander during the benchmark"
