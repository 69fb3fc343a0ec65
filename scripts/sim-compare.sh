#!/usr/bin/env bash
# The comparison tables with DISSEC (sim/README.md, "Comparison with DISSEC"), each written as
# Markdown (and one CSV row per run) into OUT (default sim-results/): DISSEC's settings and
# costs, this machine's measured costs, a heavy-tailed latency, equal budgets, and the detection
# delay swept at DISSEC's costs and at measured costs. SEEDS seeds per point (default 20, seeds
# 1 to 20; the timeouts were fitted on seeds 1001 and up). DISSEC_OWN=path/dissec-own.csv adds
# the figures of DISSEC's own simulator (scripts/dissec-own-sim.sh) to the first table. Several
# hours on two cores at 20 seeds; SEEDS=2 for a quick pass.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${SEEDS:-20}"
OUT="${OUT:-sim-results}"
mkdir -p "$OUT"
cargo build --release -p grove-sim
SIM=target/release/grove-sim
table() {
    local name="$1"
    shift
    echo "== $name"
    "$SIM" compare --seeds "$SEEDS" --csv "$OUT/compare-$name.csv" "$@" | tee "$OUT/compare-$name.md"
}
table dissec --table dissec ${DISSEC_OWN:+--dissec-own "$DISSEC_OWN"}
table measured --table measured
table heavy-tail --table heavy-tail
table budget --table budget
table detection-dissec --table detection --costs dissec
table detection-measured --table detection --costs measured
