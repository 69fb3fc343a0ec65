#!/usr/bin/env bash
# Runs DISSEC's own simulator beside ours: given a checkout of Cozy's dissec_cozy repository
# that you provide, runs its simulator (simulation/, the code behind DISSEC's published
# figures) at the published points -- S&P (its ONESHOT building blocks), HighCmpl (EAGER) and
# HyBlock (HYBRID_BLOCK), at 0, 0.25 and 1 %/s (its failure windows 0, 400 and 100 s), depth 4,
# fan-out 8, groups of 5, a 1,024 kB model, its default costs and fixed 33 ms latency -- over
# SEEDS seeds (its seeds "0", "1", ...), then prints one table with its figures next to ours
# (`grove-sim compare --table dissec --dissec-own`).
#
#   scripts/dissec-own-sim.sh ~/src/dissec_cozy          # SEEDS=20 JOBS=2 OUT=sim-results
#
# COMPARE=0 stops after DISSEC's runs (OUT/dissec-own.csv); `grove-sim compare --table dissec
# --dissec-own OUT/dissec-own.csv` prints the table later.
#
# It installs DISSEC's declared dependencies into the checkout with npm (from the npm
# registry, as DISSEC's README says) and writes a small driver of ours into
# <checkout>/simulation/grove-driver/; nothing of DISSEC's is copied into this repository.
# Needs node and npm. DISSEC's simulator takes 10 to 20 s per run on one core.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -f "$1/simulation/src/experimentRunner.ts" ]; then
    echo "usage: $0 PATH/TO/dissec_cozy (a checkout with simulation/src/experimentRunner.ts)" >&2
    exit 2
fi
DISSEC="$(cd "$1" && pwd)"
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
SEEDS="${SEEDS:-20}"
JOBS="${JOBS:-2}"
OUT="${OUT:-sim-results}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
SIMDIR="$DISSEC/simulation"

if [ ! -d "$SIMDIR/node_modules/ts-node" ]; then
    echo "== npm install in $SIMDIR (DISSEC's declared dependencies)"
    (cd "$SIMDIR" && npm install --no-audit --no-fund)
fi

# Our driver: one process per strategy and failure window, looping over the seeds (as DISSEC's
# experiment runner runs its configurations one after the other in one process). Each run is
# DISSEC's ExperimentRunner.singleRun on its defaultConfig() with the strategy, the failure
# window and the seed set; DISSEC's own log lines are silenced, one CSV line per run printed.
mkdir -p "$SIMDIR/grove-driver"
cat >"$SIMDIR/grove-driver/run.ts" <<'EOF'
import { ExperimentRunner, STRATEGIES, defaultConfig } from '../src/experimentRunner'

const [strategy, window, seeds] = process.argv.slice(2)
const blocks = (STRATEGIES as { [name: string]: any })[strategy]
if (!blocks) throw new Error(`unknown strategy ${strategy}`)
const runner = new ExperimentRunner([], {})
const print = console.log
console.log = () => {}
for (let seed = 0; seed < Number(seeds); seed++) {
  const r = runner.singleRun({ ...defaultConfig(), buildingBlocks: blocks, failureRate: Number(window), seed: `${seed}` })!
  print([strategy, window, seed, r.status, r.completeness, r.latency].join(','))
}
EOF

CSV="$OUT/dissec-own.csv"
echo "strategy,failure_rate,seed,status,completeness,latency" >"$CSV"
echo "== DISSEC's simulator: 3 strategies x 3 failure windows x $SEEDS seeds, $JOBS at a time"
run_part() {
    (cd "$SIMDIR" && TS_NODE_TRANSPILE_ONLY=true npx ts-node grove-driver/run.ts "$1" "$2" "$SEEDS") \
        >"$OUT/dissec-own-$1-$2.part" 2>"$OUT/dissec-own-$1-$2.log"
    echo "   $1, failure window $2 s: $(wc -l <"$OUT/dissec-own-$1-$2.part") runs"
}
running=0
for strategy in ONESHOT EAGER HYBRID_BLOCK; do
    for window in 0 400 100; do
        run_part "$strategy" "$window" &
        running=$((running + 1))
        if [ "$running" -ge "$JOBS" ]; then
            wait -n || true
            running=$((running - 1))
        fi
    done
done
wait
for strategy in ONESHOT EAGER HYBRID_BLOCK; do
    for window in 0 400 100; do
        part="$OUT/dissec-own-$strategy-$window.part"
        if [ ! -s "$part" ]; then
            echo "no output for $strategy at window $window: see ${part%.part}.log" >&2
            exit 1
        fi
        cat "$part" >>"$CSV"
        rm -f "$part" "${part%.part}.log"
    done
done
echo "== $CSV: $(($(wc -l <"$CSV") - 1)) runs of DISSEC's simulator"
if [ "${COMPARE:-1}" = 0 ]; then
    exit 0
fi

cargo build --release -p grove-sim
"$ROOT/target/release/grove-sim" compare --table dissec --seeds "$SEEDS" --dissec-own "$CSV" \
    --csv "$OUT/compare-dissec.csv" | tee "$OUT/compare-dissec.md"
