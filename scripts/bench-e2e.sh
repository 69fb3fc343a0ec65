#!/usr/bin/env bash
# End-to-end benchmark: N real `grove` daemons on 127.0.0.1, each contributing one vector of
# DIM elements (a `sum_vector` over collection `vec`), g = 5, t = 3. For each N it prints the
# wall time from `compute` to the result (as the CLI sees it, and as the commissioner's daemon
# measures it from launch to release), the contributors included, the bytes of protocol
# messages each node sent on average (shares, partial sums, agreement, release), and the bytes
# of shares one contributor uploaded per coordinate (from the daemons' status counters), and the
# CPU time the daemons used during the computation, per node (user + system, from /proc), the
# CPU time an idle daemon uses per second (over IDLE_SECS, 5, just before the computation:
# what every node pays for the network's background, gossip heartbeats, announcements, pulls),
# and the connections each daemon holds right after the computation and again once its
# connections are past their linger (`connections::CONNECTION_LINGER`, 10 s; mean and max over
# the nodes), with the connections closed as unneeded, the sends cut by a closing connection and
# the connections the daemons dialed by cause (a send, a Kademlia query, Kademlia's liveness
# check of a full bucket, other), of them the re-dials of peers whose connection had closed
# within a minute, and the Kademlia-query dials by the kind of query in progress (bootstrap,
# request lookup, snapshot fetch, record put, other, mixed when several kinds). It checks two elements of the result against the plaintext sum.
#
#   scripts/bench-e2e.sh                 # N = 50 100 200
#   scripts/bench-e2e.sh 20 50           # other sizes
#   DIM=10000 SHARE_WINDOW_MS=500 scripts/bench-e2e.sh   # a share window shorter than the default 2000 ms
#   GROVE=target/debug/grove-e2e-node scripts/bench-e2e.sh 50   # a binary already built
#   KEEP_LOGS=DIR scripts/bench-e2e.sh 50   # keep every daemon's log in DIR/nN/
#   PERF_OUT=DIR scripts/bench-e2e.sh 100   # `perf record -a -g` during the computation only
#   CONNECTION_TARGET=100000 scripts/bench-e2e.sh 50   # the daemons' `connection_target`
#                                         # (default 48; a huge one turns the closing of
#                                         # unneeded connections off)
#
# The last lines compare the CPU per node of the largest size with the smallest's (issue 15's
# goal: within 1.3 times) and give the connections per node at the largest (goal: at most 64).
#
# Every process (each daemon in its own process group) and every temporary directory is
# removed when the script ends, fails or is interrupted. Not a test: figures depend on the load.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-daemons.sh
. scripts/lib-daemons.sh

DIM=${DIM:-10000}
G=${G:-5}
T=${T:-3}
SHARE_WINDOW_MS=${SHARE_WINDOW_MS:-2000}
IDLE_SECS=${IDLE_SECS:-5}
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(50 100 200)

ROOT=$(mktemp -d -t grove-bench-XXXXXX)
CPU_PER_NODE=()
CONN_AT=()
PERF_PID=""
cleanup() {
    # A failed computation exits before `perf record` is stopped.
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=""
    fi
    kill_daemons
    rm -rf "$ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# GROVE=path uses an already built grove CLI (any binary running grove_node::cli::main).
if [ -z "${GROVE:-}" ]; then
    echo "building grove (release)..." >&2
    # The whole workspace's binaries: a build of one package (`-p`) resolves the dependencies'
    # features for it alone and rebuilds them.
    cargo build --release -q --workspace --bins
    GROVE=$(pwd)/target/release/grove
fi
[ -x "$GROVE" ] || { echo "no grove binary at $GROVE" >&2; exit 1; }

printf '%-5s %-7s %-10s %-10s %-13s %-16s %-16s %-12s %-12s %-15s %-15s %s\n' \
    N dim cli_ms daemon_ms contributors "bytes_sent/node" "upload B/coord" "cpu ms/node" \
    "idle ms/n/s" "conn mean/max" "idle mean/max" "load"
for N in "${SIZES[@]}"; do
    RUN="$ROOT/n$N"
    mkdir -p "$RUN"
    for i in $(seq 0 $((N - 1))); do
        "$GROVE" init --data-dir "$RUN/$i" >/dev/null
        if [ -n "${CONNECTION_TARGET:-}" ]; then
            sed -i "s/^connection_target = .*/connection_target = $CONNECTION_TARGET/" "$RUN/$i/config.toml"
        fi
    done
    start_daemon "$RUN" 0 ""
    BOOT=$(listen_address "$RUN/0")
    [ -n "$BOOT" ] || { echo "node 0 did not start; see its log" >&2; cat "$RUN/0.log" >&2; exit 1; }
    T0=$(date +%s.%N)
    for i in $(seq 1 $((N - 1))); do start_daemon "$RUN" "$i" "$BOOT"; done
    # Every directory must hold every node.
    await_directories "$RUN" "$N"
    lagging=$(echo "$LAGGING" | wc -w)
    CONVERGED_S=$(python3 -c "import time; print(round(time.time() - $T0, 1))")
    [ "$lagging" -eq 0 ] || echo "warning: $lagging directories still incomplete" >&2
    KEY=$("$GROVE" status --data-dir "$RUN/0" --json | json 'd["commissioner_key"]')
    # One record per node: a vector of DIM values in [-1, 1], seeded by the node's index.
    python3 - "$RUN" "$N" "$DIM" <<'EOF'
import json, random, sys
run, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
first = last = 0.0
for i in range(n):
    rng = random.Random(i)
    v = [round(rng.uniform(-1, 1), 2) for _ in range(dim)]
    first += v[0]
    last += v[-1]
    with open(f"{run}/{i}.ndjson", "w") as f:
        f.write(json.dumps({"v": v}) + "\n")
with open(f"{run}/expected", "w") as f:
    f.write(f"{first:.2f} {last:.2f}\n")
EOF
    for i in $(seq 0 $((N - 1))); do
        "$GROVE" records import --data-dir "$RUN/$i" --collection vec "$RUN/$i.ndjson" >/dev/null
        "$GROVE" trust add --data-dir "$RUN/$i" "$KEY" --collections vec >/dev/null
    done
    LOAD=$(cut -d' ' -f1 /proc/loadavg)
    # CPU time (user + system, clock ticks) of every daemon, before and after the computation.
    cpu_ticks() {
        local t total=0
        for t in $(pid_ticks "${PIDS[@]}"); do
            total=$((total + t))
        done
        echo "$total"
    }
    # The background: CPU per idle daemon per second.
    IDLE0=$(cpu_ticks)
    sleep "$IDLE_SECS"
    IDLE1=$(cpu_ticks)
    IDLE_MS=$(python3 -c "print(round(($IDLE1 - $IDLE0) * 1000 / $(getconf CLK_TCK) / $N / $IDLE_SECS, 2))")
    CPU0=$(cpu_ticks)
    PERF_PID=""
    if [ -n "${PERF_OUT:-}" ]; then
        mkdir -p "$PERF_OUT"
        perf record -q -a -g -o "$PERF_OUT/n$N.data" >/dev/null 2>&1 &
        PERF_PID=$!
        sleep 0.5
    fi
    S=$(date +%s%N)
    # Each element is in [-1, 1], so a vector's L2 norm is at most sqrt(DIM): the clip keeps it.
    keep_logs() {
        if [ -n "${KEEP_LOGS:-}" ]; then
            mkdir -p "$KEEP_LOGS/n$N"
            cp "$RUN"/*.log "$RUN/result.json" "$KEEP_LOGS/n$N/" 2>/dev/null || true
        fi
    }
    if ! "$GROVE" compute --data-dir "$RUN/0" --json \
        "SELECT sum_vector(v, $DIM) FROM vec CLIP NORM v TO $DIM SCALE 2" \
        --g "$G" --t "$T" --share-window-ms "$SHARE_WINDOW_MS" \
        --lifetime-secs 120 >"$RUN/result.json"; then
        # The logs of a failed computation are the ones worth keeping.
        keep_logs
        echo "the computation at N = $N failed" >&2
        exit 1
    fi
    E=$(date +%s%N)
    CPU1=$(cpu_ticks)
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID"
        wait "$PERF_PID" || true
        PERF_PID=""
    fi
    CLI_MS=$(( (E - S) / 1000000 ))
    CPU_MS=$(( (CPU1 - CPU0) * 1000 / $(getconf CLK_TCK) ))
    DAEMON_MS=$(json 'd["elapsed_ms"]' <"$RUN/result.json")
    COUNT=$(json 'd["contributors"]' <"$RUN/result.json")
    # The last element of the vector (the values after it are other cells, e.g. a count).
    GOT=$(json "\"%.2f %.2f\" % (d[\"values\"][0], d[\"values\"][$DIM - 1])" <"$RUN/result.json")
    read -r WANT_FIRST WANT_LAST <"$RUN/expected"
    if [ "$COUNT" = "$N" ] && [ "$GOT" != "$WANT_FIRST $WANT_LAST" ]; then
        echo "MISMATCH: result elements $GOT, plaintext $WANT_FIRST $WANT_LAST" >&2
        exit 1
    fi
    TOTAL=0
    SHARES=0
    PRUNED=0
    CUT=0
    CONNS=0
    CONN_MAX=0
    : >"$RUN/dials"
    for i in $(seq 0 $((N - 1))); do
        "$GROVE" status --data-dir "$RUN/$i" --json >"$RUN/status.json"
        python3 -c 'import json,sys; c=json.load(sys.stdin)["connections"]; print(json.dumps([c.get("dials", {}), c.get("redials", {}), c.get("query_dials", {})]))' <"$RUN/status.json" >>"$RUN/dials"
        read -r b s c p x < <(json '"%d %d %d %d %d" % (d["network"]["bytes_sent"], d["network"]["share_bytes_sent"], d["connected_peers"], d["connections"]["pruned"], d["connections"]["sends_cut"])' <"$RUN/status.json")
        PRUNED=$((PRUNED + p))
        CUT=$((CUT + x))
        TOTAL=$((TOTAL + b))
        SHARES=$((SHARES + s))
        CONNS=$((CONNS + c))
        [ "$c" -gt "$CONN_MAX" ] && CONN_MAX=$c
    done
    CONN_MEAN=$(python3 -c "print(round($CONNS / $N, 1))")
    # Once the computation's connections are past their linger (10 s) and two prune ticks.
    sleep 14
    IDLE_CONNS=0
    IDLE_MAX=0
    for i in $(seq 0 $((N - 1))); do
        c=$("$GROVE" status --data-dir "$RUN/$i" --json | json 'd["connected_peers"]')
        IDLE_CONNS=$((IDLE_CONNS + c))
        [ "$c" -gt "$IDLE_MAX" ] && IDLE_MAX=$c
    done
    IDLE_MEAN=$(python3 -c "print(round($IDLE_CONNS / $N, 1))")
    PER_NODE=$((TOTAL / N))
    PER_COORD=$(python3 -c "print(round($SHARES / $N / $DIM, 1))")
    keep_logs
    printf '%-5s %-7s %-10s %-10s %-13s %-16s %-16s %-12s %-12s %-15s %-15s %s\n' \
        "$N" "$DIM" "$CLI_MS" "$DAEMON_MS" "$COUNT/$N" "$PER_NODE" "$PER_COORD" \
        "$((CPU_MS / N))" "$IDLE_MS" "$CONN_MEAN/$CONN_MAX" "$IDLE_MEAN/$IDLE_MAX" \
        "load $LOAD; directories converged in ${CONVERGED_S}s"
    echo "      N = $N: $PRUNED connections closed as unneeded, $CUT sends failed because their connection closed"
    # Connections the daemons dialed since start-up, by cause, and of those the re-dials (to a
    # peer whose connection had closed within the last 60 s): what dials back the closed peers.
    python3 -c '
import json, sys
total = [{}, {}, {}]
for line in open(sys.argv[1]):
    for t, part in zip(total, json.loads(line)):
        for k, v in part.items():
            t[k] = t.get(k, 0) + v
fmt = lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none"
print(f"      dials by cause: {fmt(total[0])}; re-dials: {fmt(total[1])}")
print(f"      kademlia_query dials by the kind of query in progress: {fmt(total[2])}")
' "$RUN/dials"
    CPU_PER_NODE+=("$N:$((CPU_MS / N))")
    CONN_AT=("$N" "$CONN_MEAN" "$CONN_MAX" "$IDLE_MEAN" "$IDLE_MAX")
    cleanup
done
if [ ${#CPU_PER_NODE[@]} -gt 1 ]; then
    FIRST=${CPU_PER_NODE[0]}
    LAST=${CPU_PER_NODE[${#CPU_PER_NODE[@]} - 1]}
    python3 -c "f, l = '$FIRST'.split(':'), '$LAST'.split(':'); print(f'cpu ms/node at N={l[0]} / at N={f[0]}: {int(l[1]) / max(1, int(f[1])):.2f} (goal: at most 1.3)')"
fi
echo "connections per node at N=${CONN_AT[0]}: mean ${CONN_AT[1]}, max ${CONN_AT[2]} right after the computation; mean ${CONN_AT[3]}, max ${CONN_AT[4]} once idle (goal: at most 64)"
