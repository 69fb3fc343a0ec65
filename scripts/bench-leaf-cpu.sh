#!/usr/bin/env bash
# What validity proofs cost a real daemon (issue 17), like for like: two networks of N real
# daemons on 127.0.0.1 (default 20 each), the same records and the same commissioner key, one
# with proofs (as released) and one with the end-to-end test binary's switch
# `GROVE_TEST_NO_VALIDITY` on every node (no proof sent, none checked). The same query runs on
# each, alternating (proofs first in odd reps, last in even ones), REPS times (default 3), with
# a fixed plan shape: g = G (5), t = T (3), LEAF_GROUPS leaf groups (2) under one root group
# (fan-in LEAF_GROUPS), so every position has a distinct node and each leaf member holds the
# shares of the contributors of its leaf.
#
# Per computation it reads each daemon's CPU time (user + system of the whole process, from
# /proc/PID/stat, in clock ticks) just before the `compute` and SETTLE_SECS (2) after it
# returns, and the daemons' status counters around it, from which it tells the roles apart:
#   leaf      a node that received `share` messages in this computation (a leaf member);
#   inner     a node that received `partial` or `partial-ahead` ones (a root member);
#   contrib   the other nodes (contributors that are no member);
#   comm      node 0, the commissioner (also a contributor, sometimes a member), apart.
# CPU "raw" is the difference of the two readings; "net" subtracts what the same daemon used per
# second while idle over IDLE_SECS (3) just before (the network's background: gossip,
# heartbeats, pulls) times the span measured. Upload per contributor: the protocol bytes a
# `contrib` node sent (shares, their proofs, and its few other messages) and of them its `share`
# messages (status counters). It checks every element of the result against the plaintext.
#
#   scripts/bench-leaf-cpu.sh                    # sum_vector of 10,000, 3 reps, N = 20
#   QUERIES="vec scalar groupby" REPS=5 scripts/bench-leaf-cpu.sh
#   N=30 DIM=10000 scripts/bench-leaf-cpu.sh
#   GROVE=target/release/grove-e2e-node scripts/bench-leaf-cpu.sh   # the default binary
#   KEEP=DIR scripts/bench-leaf-cpu.sh           # keep the per-computation figures and logs
#
# Queries: `vec` = SELECT sum_vector(v, DIM) FROM vec CLIP NORM v TO DIM SCALE 2 (as
# scripts/bench-e2e.sh), `scalar` = SELECT sum(x) FROM s CLIP x TO [0, 100] LIMIT PER
# CONTRIBUTOR 1, `groupby` = SELECT count(*), sum(x) FROM kv GROUP BY k IN ('k0', ..., 'k15')
# CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1 (16 keys; the records use k0 and k1 only, half
# each, so that both pass k_min = 10 at N = 20 and are checked).
#
# It needs the `grove-e2e-node` binary (the `grove` CLI with the test hooks; the released
# `grove` has no switch): `cargo build --release --workspace --bins`. Every process (each
# daemon in its own process group) and every temporary directory is removed when the script
# ends, fails or is interrupted. Not a test: figures depend on the load, which it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-daemons.sh
. scripts/lib-daemons.sh

N=${N:-20}
REPS=${REPS:-3}
DIM=${DIM:-10000}
G=${G:-5}
T=${T:-3}
LEAF_GROUPS=${LEAF_GROUPS:-2}
FAN_IN=${FAN_IN:-$(( LEAF_GROUPS > 2 ? LEAF_GROUPS : 2 ))}
SHARE_WINDOW_MS=${SHARE_WINDOW_MS:-2000}
IDLE_SECS=${IDLE_SECS:-3}
SETTLE_SECS=${SETTLE_SECS:-2}
QUERIES=${QUERIES:-vec}
GROVE=${GROVE:-$(pwd)/target/release/grove-e2e-node}
[ -x "$GROVE" ] || { echo "no binary at $GROVE: cargo build --release --workspace --bins" >&2; exit 1; }

ROOT=$(mktemp -d -t grove-leafcpu-XXXXXX)
cleanup() {
    kill_daemons
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP"
        cp -r "$ROOT"/. "$KEEP"/ 2>/dev/null || true
    fi
    rm -rf "$ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The records: node i has one vector (v, DIM values in [-1, 1], seeded by i), one integer x
# in [0, 100] in collection s, and one (k, x) in collection kv with k = k(i mod 2).
python3 - "$ROOT" "$N" "$DIM" <<'EOF'
import json, random, sys
root, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
vec = [0] * dim
s = 0
kv = {}
for i in range(n):
    rng = random.Random(i)
    v = [round(rng.uniform(-1, 1), 2) for _ in range(dim)]
    vec = [a + round(b * 100) for a, b in zip(vec, v)]
    x = rng.randint(0, 100)
    s += x
    k = f"k{i % 2}"
    c, t = kv.get(k, (0, 0))
    kv[k] = (c + 1, t + x)
    with open(f"{root}/vec-{i}.ndjson", "w") as f:
        f.write(json.dumps({"v": v}) + "\n")
    with open(f"{root}/s-{i}.ndjson", "w") as f:
        f.write(json.dumps({"x": x}) + "\n")
    with open(f"{root}/kv-{i}.ndjson", "w") as f:
        f.write(json.dumps({"k": k, "x": x}) + "\n")
# Expected results in hundredths (the vector is at SCALE 2).
json.dump({"vec": vec, "scalar": s, "groupby": kv}, open(f"{root}/expected.json", "w"))
EOF

KEYS=$(python3 -c "print(', '.join(f\"'k{i}'\" for i in range(16)))")
query_text() {
    case "$1" in
        vec) echo "SELECT sum_vector(v, $DIM) FROM vec CLIP NORM v TO $DIM SCALE 2" ;;
        scalar) echo "SELECT sum(x) FROM s CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1" ;;
        groupby) echo "SELECT count(*), sum(x) FROM kv GROUP BY k IN ($KEYS) CLIP x TO [0, 100] LIMIT PER CONTRIBUTOR 1" ;;
        *) echo "unknown query $1 (vec, scalar, groupby)" >&2; exit 1 ;;
    esac
}
for q in $QUERIES; do query_text "$q" >/dev/null; done

# One network per mode; NET_PIDS_<mode> holds its daemons' pids, node 0 first.
declare -A NET_PIDS
start_network() { # mode (proofs | plain)
    local mode=$1 run="$ROOT/$1" i boot="" pids=()
    mkdir -p "$run"
    local env=()
    [ "$mode" = plain ] && env=(env GROVE_TEST_NO_VALIDITY=1)
    for i in $(seq 0 $((N - 1))); do
        "$GROVE" init --data-dir "$run/$i" >/dev/null
    done
    start() { # node index, bootstrap address (may be empty)
        start_daemon "$run" "$1" "${2:-}" "${env[@]}"
        pids+=("${PIDS[-1]}")
    }
    start 0 ""
    boot=$(listen_address "$run/0")
    [ -n "$boot" ] || { echo "$mode: node 0 did not start" >&2; cat "$run/0.log" >&2; exit 1; }
    for i in $(seq 1 $((N - 1))); do start "$i" "$boot"; done
    NET_PIDS[$mode]="${pids[*]}"
    await_directories "$run" "$N"
    [ -z "$LAGGING" ] || echo "warning: $mode: directories of$LAGGING still incomplete" >&2
    local key
    key=$("$GROVE" status --data-dir "$run/0" --json | json 'd["commissioner_key"]')
    for i in $(seq 0 $((N - 1))); do
        "$GROVE" records import --data-dir "$run/$i" --collection vec "$ROOT/vec-$i.ndjson" >/dev/null
        "$GROVE" records import --data-dir "$run/$i" --collection s "$ROOT/s-$i.ndjson" >/dev/null
        "$GROVE" records import --data-dir "$run/$i" --collection kv "$ROOT/kv-$i.ndjson" >/dev/null
        "$GROVE" trust add --data-dir "$run/$i" "$key" --collections vec,s,kv \
            --allow-repeats --max-per-day 1000 >/dev/null
    done
}

# user + system ticks of each daemon of a network, one line "t0 t1 ...".
ticks() { # mode
    # shellcheck disable=SC2086 # the pids are words
    pid_ticks ${NET_PIDS[$1]}
}
statuses() { # mode, output file (one JSON per line, node order)
    local i
    : >"$2"
    for i in $(seq 0 $((N - 1))); do
        "$GROVE" status --data-dir "$ROOT/$1/$i" --json | tr -d '\n' >>"$2"
        echo >>"$2"
    done
}

echo "starting two networks of $N daemons ($GROVE)..." >&2
start_network proofs
start_network plain
echo "networks up; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

FIG="$ROOT/figures.ndjson"
: >"$FIG"
run_one() { # mode, query, rep
    local mode=$1 q=$2 rep=$3 run="$ROOT/$1" tag="$1-$2-$3"
    statuses "$mode" "$ROOT/$tag.before"
    local idle0 idle1 c0 c1 s e load
    idle0=$(ticks "$mode")
    sleep "$IDLE_SECS"
    idle1=$(ticks "$mode")
    load=$(cut -d' ' -f1 /proc/loadavg)
    c0=$(ticks "$mode")
    s=$(date +%s%N)
    if ! "$GROVE" compute --data-dir "$run/0" --json "$(query_text "$q")" \
        --g "$G" --t "$T" --leaf-groups "$LEAF_GROUPS" --fan-in "$FAN_IN" \
        --share-window-ms "$SHARE_WINDOW_MS" --lifetime-secs 120 >"$ROOT/$tag.result" \
        2>"$ROOT/$tag.err"; then
        echo "$tag: the computation failed:" >&2
        cat "$ROOT/$tag.err" >&2
        exit 1
    fi
    e=$(date +%s%N)
    sleep "$SETTLE_SECS"
    c1=$(ticks "$mode")
    statuses "$mode" "$ROOT/$tag.after"
    python3 - "$ROOT" "$tag" "$mode" "$q" "$rep" "$N" "$(getconf CLK_TCK)" "$IDLE_SECS" \
        "$(( (e - s) / 1000000 ))" "$SETTLE_SECS" "$load" "$idle0" "$idle1" "$c0" "$c1" >>"$FIG" <<'EOF'
import json, sys
root, tag, mode, q, rep, n, tck, idle_s, wall_ms, settle_s, load = sys.argv[1:12]
n, tck, idle_s, wall_ms, settle_s = int(n), int(tck), float(idle_s), int(wall_ms), float(settle_s)
idle0, idle1, c0, c1 = ([int(x) for x in a.split()] for a in sys.argv[12:16])
before = [json.loads(l) for l in open(f"{root}/{tag}.before")]
after = [json.loads(l) for l in open(f"{root}/{tag}.after")]
res = json.load(open(f"{root}/{tag}.result"))
exp = json.load(open(f"{root}/expected.json"))
def delta(i, *path):
    a, b = after[i], before[i]
    for p in path:
        a, b = a.get(p, {}) if isinstance(a, dict) else 0, b.get(p, {}) if isinstance(b, dict) else 0
    return (a or 0) - (b or 0)
# The result, element by element, against the plaintext.
vals = res["values"]
if q == "vec":
    # DIM sums in hundredths, then the count.
    got = [round(v * 100) for v in vals[:-1]]
    ok = res["contributors"] == n and got == exp["vec"] and vals[-1] == n
elif q == "scalar":
    # The sum, then the count.
    ok = res["contributors"] == n and vals == [exp["scalar"], n]
else:
    # Per key k0..k15: count(*), sum(x), the cell's count; keys under k_min are withheld.
    want = []
    for i in range(16):
        c, t = exp["groupby"].get(f"k{i}", (None, None))
        want += [c, t, c] if c is not None and c >= 10 else [None] * 3
    got = [None if v is None else round(v) for v in vals]
    ok = res["contributors"] == n and got == want
if not ok:
    sys.exit(f"{tag}: RESULT MISMATCH ({res['contributors']} contributors): {res.get('text')}")
span = wall_ms / 1000 + settle_s
roles = {"leaf": [], "inner": [], "contrib": [], "comm": []}
for i in range(n):
    shares = delta(i, "received", "share")
    partials = delta(i, "received", "partial") + delta(i, "received", "partial-ahead")
    raw = (c1[i] - c0[i]) * 1000 / tck
    idle_rate = (idle1[i] - idle0[i]) * 1000 / tck / idle_s
    entry = {
        "node": i, "raw_ms": raw, "net_ms": raw - idle_rate * span, "shares_in": shares,
        "validity_in": delta(i, "received", "validity-share"),
        "bytes_sent": delta(i, "network", "bytes_sent"),
        "share_bytes_sent": delta(i, "network", "share_bytes_sent"),
    }
    role = "comm" if i == 0 else "leaf" if shares > 0 else "inner" if partials > 0 else "contrib"
    roles[role].append(entry)
validity = sum(e["validity_in"] for es in roles.values() for e in es)
if (mode == "plain") != (validity == 0):
    sys.exit(f"{tag}: {validity} validity shares received: the switch is not what the mode says")
print(json.dumps({"mode": mode, "query": q, "rep": int(rep), "wall_ms": wall_ms,
                  "daemon_ms": res.get("elapsed_ms"), "load": float(load), "roles": roles}))
EOF
    tail -n 1 "$FIG" | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = d["roles"]
def m(role, k):
    es = r[role]
    return sum(e[k] for e in es) / len(es) if es else float("nan")
print("%-8s rep %d %-6s: wall %d ms, leaf x%d %.0f ms raw %.0f net, contrib %.0f, comm %.0f, load %s"
      % (d["query"], d["rep"], d["mode"], d["wall_ms"], len(r["leaf"]), m("leaf", "raw_ms"),
         m("leaf", "net_ms"), m("contrib", "raw_ms"), m("comm", "raw_ms"), d["load"]), file=sys.stderr)'
}

for rep in $(seq 1 "$REPS"); do
    for q in $QUERIES; do
        if [ $((rep % 2)) -eq 1 ]; then order="proofs plain"; else order="plain proofs"; fi
        for mode in $order; do run_one "$mode" "$q" "$rep"; done
    done
done

# The summary: per query, role and mode, the mean per computation over the nodes of that role
# in that computation, then its spread over the reps (min-max), and the ratio of the means.
python3 - "$FIG" "$N" "$G" "$T" "$LEAF_GROUPS" "$DIM" <<'EOF'
import json, sys
fig, n, g, t, leaves, dim = sys.argv[1], *sys.argv[2:]
runs = [json.loads(l) for l in open(fig)]
mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
print(f"N = {n}, g = {g}, t = {t}, {leaves} leaf group(s) (1: the leaf is the root), DIM = {dim}; "
      f"per computation, mean over the role's nodes; [min-max over {max(r['rep'] for r in runs)} reps]")
print(f"{'query':8} {'role':8} {'proofs ms':>20} {'plain ms':>20} {'ratio':>6}  (net of idle: proofs, plain, ratio)")
for q in dict.fromkeys(r["query"] for r in runs):
    per = {m: [r for r in runs if r["query"] == q and r["mode"] == m] for m in ("proofs", "plain")}
    for role in ("leaf", "inner", "contrib", "comm"):
        cells = {}
        for m, rs in per.items():
            for k in ("raw_ms", "net_ms"):
                xs = [mean([e[k] for e in r["roles"][role]]) for r in rs if r["roles"][role]]
                cells[m, k] = xs
        if not cells["proofs", "raw_ms"] or not cells["plain", "raw_ms"]:
            continue
        f = lambda xs: f"{mean(xs):6.0f} [{min(xs):.0f}-{max(xs):.0f}]"
        ratio = lambda k: mean(cells["proofs", k]) / mean(cells["plain", k])
        count = mean([len(r["roles"][role]) for r in per["proofs"]])
        print(f"{q:8} {role + f' x{count:.0f}':8} {f(cells['proofs', 'raw_ms']):>20} {f(cells['plain', 'raw_ms']):>20} "
              f"{ratio('raw_ms'):6.2f}  ({mean(cells['proofs', 'net_ms']):.0f}, {mean(cells['plain', 'net_ms']):.0f}, {ratio('net_ms'):.2f})")
    # Per rep: the leaf ratio of each pair, to show the spread of the ratio itself.
    pairs = []
    for rep in sorted({r["rep"] for r in per["proofs"]}):
        a = [r for r in per["proofs"] if r["rep"] == rep]
        b = [r for r in per["plain"] if r["rep"] == rep]
        if a and b and a[0]["roles"]["leaf"] and b[0]["roles"]["leaf"]:
            pairs.append(mean([e["raw_ms"] for e in a[0]["roles"]["leaf"]]) /
                         mean([e["raw_ms"] for e in b[0]["roles"]["leaf"]]))
    shares = mean([mean([e["shares_in"] for e in r["roles"]["leaf"]]) for r in per["proofs"]])
    print(f"{q:8} leaf ratio per rep: {', '.join(f'{p:.2f}' for p in pairs)}; "
          f"shares received per leaf member: {shares:.1f}")
    for m, rs in per.items():
        up = [mean([e["bytes_sent"] for e in r["roles"]["contrib"]]) for r in rs if r["roles"]["contrib"]]
        sh = [mean([e["share_bytes_sent"] for e in r["roles"]["contrib"]]) for r in rs if r["roles"]["contrib"]]
        wall = [r["wall_ms"] for r in rs]
        load = [r["load"] for r in rs]
        print(f"{q:8} {m:6}: upload per contributor {mean(up):.0f} B (shares {mean(sh):.0f} B), "
              f"wall {mean(wall):.0f} ms [{min(wall)}-{max(wall)}], load {min(load)}-{max(load)}")
EOF
