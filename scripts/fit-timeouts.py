#!/usr/bin/env python3
"""Fits a simulator config's protocol timeouts on seeds disjoint from the reported ones.

Coordinate search: for each timeout in turn, try a few multiples of its current value, run
the config at each failure rate over SEEDS seeds starting at SEED (default 1001; reported
figures use seeds 1 to 20), and keep the value with the highest score: the mean over the
rates of the median completeness (included over all contributors) in percentage points,
minus the mean median latency in seconds (a second is worth a point; a run without a result
counts as the simulated horizon, 120 s). Prints every evaluation and, at the end, the fitted
[protocol.timeouts] table.

    scripts/fit-timeouts.py configs/sim/dissec-2023.toml [--set path=value ...] \
        [--rates 0.25,1] [--seeds 8] [--seed 1001] [--passes 1] [--only a,b] \
        [--factors 0.5,0.7,1.4,2.0] [--sim PATH] [--jobs 2] [--start C,L]

Needs a release build of grove-sim (target/release/grove-sim).
"""
import argparse
import concurrent.futures
import csv
import os
import statistics
import subprocess
import sys
import tempfile

TIMEOUTS = [
    "share_window_ms",
    "collect_window_ms",
    "manifest_timeout_ms",
    "report_window_ms",
    "heal_attempt_ms",
    "level_span_ms",
    "release_window_ms",
]
FACTORS = [0.5, 0.7, 1.4, 2.0]


def read_timeouts(path):
    out = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line.startswith("["):
                section = line.strip("[]")
            elif section == "protocol.timeouts" and "=" in line:
                k, v = (x.strip() for x in line.split("=", 1))
                out[k] = float(v)
    return out


def evaluate(sim, config, sets, timeouts, rates, seeds, seed, threads):
    with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as tmp:
        out = tmp.name
    overrides = list(sets) + [
        f"protocol.timeouts.{k}={v:.1f}" for k, v in sorted(timeouts.items())
    ]
    cmd = [
        sim, "sweep", config,
        "--param", "failures.uniform.rate_percent_per_s",
        "--values", ",".join(str(r) for r in rates),
        "--seeds", str(seeds), "--seed", str(seed),
        "--threads", str(threads),
        "--set", ",".join(overrides),
        "--csv", out,
    ]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    by_rate = {}
    with open(out) as f:
        for row in csv.DictReader(f):
            by_rate.setdefault(row["value"], []).append(row)
    os.unlink(out)
    completeness, latency = [], []
    for rate in rates:
        rows = by_rate.get(str(rate), [])
        if not rows:
            return None
        completeness.append(statistics.median(float(r["completeness"]) for r in rows))
        lat = [float(r["latency_s"]) for r in rows if r["latency_s"]]
        # A run without a result counts as the simulated horizon.
        lat += [120.0] * (len(rows) - len(lat))
        latency.append(statistics.median(lat))
    return statistics.mean(completeness), statistics.mean(latency)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[], help="path=value[,path=value...]")
    ap.add_argument("--rates", default="0.25,1")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1001)
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated timeouts to fit")
    ap.add_argument("--sim", default="target/release/grove-sim")
    ap.add_argument("--factors", default=",".join(str(f) for f in FACTORS),
                    help="comma-separated multiples of each timeout to try")
    ap.add_argument("--jobs", type=int, default=1,
                    help="evaluate a window's trial values in this many parallel runs")
    ap.add_argument("--start", default="",
                    help="completeness,latency of the starting timeouts if already evaluated")
    a = ap.parse_args()
    factors = [float(f) for f in a.factors.split(",")]
    rates = [float(r) if "." in r else int(r) for r in a.rates.split(",")]
    timeouts = read_timeouts(a.config)
    a.set = [part for s in a.set for part in s.split(",") if part]
    for s in a.set:
        k, v = s.split("=", 1)
        if k.startswith("protocol.timeouts."):
            timeouts[k.rsplit(".", 1)[1]] = float(v)
    sets = [s for s in a.set if not s.startswith("protocol.timeouts.")]
    names = [n for n in TIMEOUTS if not a.only or n in a.only.split(",")]
    run = lambda t: evaluate(a.sim, a.config, sets, t, rates, a.seeds, a.seed, a.threads)
    best = tuple(float(x) for x in a.start.split(",")) if a.start else run(timeouts)
    print(f"start {timeouts}: completeness {best[0]*100:.3f}%, latency {best[1]:.3f} s", flush=True)
    for p in range(a.passes):
        for name in names:
            results = [(timeouts[name], best)]
            trials = []
            for f in factors:
                trial = dict(timeouts)
                trial[name] = round(timeouts[name] * f, -1) or 10.0
                trials.append(trial)
            with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
                evaluated = list(pool.map(run, trials))
            for trial, r in zip(trials, evaluated):
                if r is None:
                    continue
                print(f"pass {p + 1} {name} = {trial[name]:.0f}: completeness {r[0]*100:.3f}%, latency {r[1]:.3f} s", flush=True)
                results.append((trial[name], r))
            value, best = max(results, key=lambda r: r[1][0] * 100 - r[1][1])
            timeouts[name] = value
            print(f"  -> {name} = {value:.0f} (completeness {best[0]*100:.3f}%, latency {best[1]:.3f} s, score {best[0]*100 - best[1]:.3f})", flush=True)
    print("[protocol.timeouts]")
    for k in TIMEOUTS:
        print(f"{k} = {timeouts[k]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
