#!/usr/bin/env bash
# Re-generates every comparison table with DISSEC (sim/README.md, "Comparison with DISSEC"),
# each written as Markdown (and one CSV row per run) into OUT (default sim-results/), at the
# configs' detection rule (the daemon's: net::message_deadline) and the current engine:
#   dissec             DISSEC's settings and cost constants, every protocol (the README headline)
#   measured           the same with this machine's measured costs
#   heavy-tail         measured costs, log-normal latency (median 33 ms, sigma 1)
#   budget             equal nodes, Grove at several (g, t) beside the baselines, exposure
#   detection-dissec   the fixed part of the detection rule swept from 660 ms to 10 s (the
#                      daemon's is 2 s; its size and vector terms kept), at DISSEC's costs
# TABLES="dissec budget" runs a subset (default: all five, in that order). SEEDS seeds per point
# (default 20: seeds 1 to 20; every window was fitted on seeds 1001 and up). PROFILE=test uses
# the `test` profile (opt-level 2, shares the debug build's dependencies; the figures are the
# same, only slower) instead of release. DISSEC_OWN=path/dissec-own.csv adds the figures of
# DISSEC's own simulator (scripts/dissec-own-sim.sh) to the first table. Prints each table's
# wall time. 1,780 runs at 20 seeds, about 30 to 45 min on an idle 2-core machine (sim/README.md,
# "Re-generating the tables"); SEEDS=2 for a quick pass.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${SEEDS:-20}"
OUT="${OUT:-sim-results}"
PROFILE="${PROFILE:-release}"
TABLES="${TABLES:-dissec measured heavy-tail budget detection-dissec}"
THREADS="${THREADS:-2}"
mkdir -p "$OUT"
cargo build --profile "$PROFILE" -p grove-sim --bin grove-sim
if [ "$PROFILE" = release ]; then SIM=target/release/grove-sim; else SIM=target/debug/grove-sim; fi
table() {
    local name="$1"
    shift
    echo "== $name"
    local start=$SECONDS
    "$SIM" compare --seeds "$SEEDS" --threads "$THREADS" --csv "$OUT/compare-$name.csv" "$@" \
        | tee "$OUT/compare-$name.md"
    echo "== $name: $((SECONDS - start)) s"
}
for t in $TABLES; do
    case "$t" in
        dissec) table dissec --table dissec ${DISSEC_OWN:+--dissec-own "$DISSEC_OWN"} ;;
        measured) table measured --table measured ;;
        heavy-tail) table heavy-tail --table heavy-tail ;;
        budget) table budget --table budget ;;
        detection-dissec) table detection-dissec --table detection --costs dissec ;;
        detection-measured) table detection-measured --table detection --costs measured ;;
        *) echo "unknown table $t" >&2; exit 2 ;;
    esac
done
