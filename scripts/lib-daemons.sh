# shellcheck shell=bash
# Shared by the scripts that run networks of real `grove` daemons on 127.0.0.1
# (scripts/bench-e2e.sh, scripts/bench-leaf-cpu.sh): starting a daemon in its own process
# group, waiting for its listen address and for every directory to hold every node, reading
# status fields and the daemons' CPU time from /proc, and killing them all. Sourced, not run:
# the caller sets GROVE (the binary running grove_node::cli::main) before calling these, and
# calls `kill_daemons` from its EXIT trap.

# Pids of every daemon started by `start_daemon`; each is also its process group's id.
PIDS=()

# Prints the Python expression $1 over `d`, the JSON document read from standard input.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

# Prints the Python expression $2 over the status (`grove status --json`) of the node whose
# data directory is $1; fails when the daemon does not answer (yet).
status_field() { # data directory, expression
    "$GROVE" status --data-dir "$1" --json 2>/dev/null | json "$2" 2>/dev/null
}

# Starts the daemon of data directory RUN/INDEX in its own process group, listening on a
# loopback port of the system's choice, its log in RUN/INDEX.log, bootstrapping from BOOT when
# not empty; the words after BOOT (e.g. `env VAR=1`) are put before the binary. Adds its pid to
# PIDS.
start_daemon() { # run directory, node index, bootstrap address (may be empty), prefix...
    local run=$1 index=$2 boot=${3:-}
    shift 3
    local args=(daemon --data-dir "$run/$index" --listen /ip4/127.0.0.1/tcp/0)
    [ -n "$boot" ] && args+=(--bootstrap "$boot")
    setsid "$@" "$GROVE" "${args[@]}" >"$run/$index.log" 2>&1 </dev/null &
    PIDS+=($!)
}

# Prints the first listen address of the daemon of data directory $1 once it has one, polling
# every 0.1 s for up to 30 s; prints nothing if it has none by then.
listen_address() { # data directory
    local addr="" _
    for _ in $(seq 1 300); do
        addr=$(status_field "$1" 'd["listen"][0]' || true)
        [ -n "$addr" ] && break
        sleep 0.1
    done
    echo "$addr"
}

# Waits, for up to 600 s, until the directory of each of the nodes 0..N-1 under RUN holds the
# N nodes (the plan is over the commissioner's snapshot, but a node lacking peers would have
# to fetch it). A node that holds every peer keeps them, so only the lagging ones are asked
# again (each ask is two processes: at N = 200, asking everyone every second kept both cores
# busy). Sets LAGGING to the nodes still incomplete (" i j ...", empty when none).
await_directories() { # run directory, N
    local run=$1 n=$2 still p i _
    LAGGING=$(seq 0 $((n - 1)))
    for _ in $(seq 1 600); do
        still=""
        for i in $LAGGING; do
            p=$(status_field "$run/$i" 'd["directory_peers"]' || echo 0)
            [ "$p" -ge "$n" ] || still="$still $i"
        done
        LAGGING=$still
        [ -z "$LAGGING" ] && break
        sleep 1
    done
    return 0
}

# Prints the CPU time each of the given processes used so far, user + system in clock ticks
# (fields 14 and 15 of /proc/PID/stat), as one line "t1 t2 ..." in their order; 0 for one that
# is gone.
pid_ticks() { # pid...
    local pid f out=()
    for pid in "$@"; do
        if read -r -a f 2>/dev/null <"/proc/$pid/stat"; then
            out+=($((f[13] + f[14])))
        else
            out+=(0)
        fi
    done
    echo "${out[*]}"
}

# Kills every daemon started (its whole process group) and waits for them.
kill_daemons() {
    local pid
    for pid in "${PIDS[@]:-}"; do
        if [ -n "$pid" ]; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    done
    for pid in "${PIDS[@]:-}"; do
        if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
    done
    PIDS=()
}
