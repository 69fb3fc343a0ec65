#!/usr/bin/env python3
"""Accuracy of Grove's distributed discrete Gaussian against the central Gaussian mechanism
and OpenDP's, at epsilon 1 and delta 1e-9, for counts and sums over 1,000 and 100,000
contributors with 10% of the noise sources colluding.

Runs the Rust example `dp_accuracy` (Grove's own sampler and calibration, and the analytic
central mechanism for the same query, sensitivity and budget split), then, for each row,
OpenDP's zero-concentrated discrete Gaussian (`then_gaussian` over integers) calibrated by
OpenDP itself to the same sensitivity and the same rho per part, applied once (a trusted
curator), and measures its RMSE over the same number of trials.

Usage: python3 scripts/dp-accuracy.py [TRIALS]   (OpenDP from a venv: see --help)
Install OpenDP: python3 -m venv target/dp-venv && target/dp-venv/bin/pip install opendp==0.16.0
then run this script with target/dp-venv/bin/python.
"""
import math
import os
import random
import re
import subprocess
import sys

RHO = (math.sqrt(math.log(1e9) + 1.0) - math.sqrt(math.log(1e9))) ** 2


def grove_rows(trials):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        ["cargo", "run", "--quiet", "--profile", "test", "-p", "grove-protocol",
         "--example", "dp_accuracy", str(trials)],
        cwd=root, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"^(.+?)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+\((\d+) trials\)", line)
        if m:
            rows.append(dict(name=m[1].strip(), n=int(m[2]), l2=float(m[3]), parts=int(m[4]),
                             central=float(m[5]), grove=float(m[6]), ratio=float(m[7]),
                             trials=int(m[8])))
    return rows


def opendp_rmse(l2, rho, trials, seed):
    try:
        import opendp.prelude as dp
    except ImportError:
        return None
    dp.enable_features("contrib")
    if float(l2).is_integer():
        space = dp.atom_domain(T=int), dp.absolute_distance(T=int)
        d_in, x = int(l2), 0
    else:
        space = dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float)
        d_in, x = float(l2), 0.0
    m = dp.binary_search_chain(lambda s: space >> dp.m.then_gaussian(s), d_in=d_in, d_out=rho)
    random.seed(seed)
    errs = [m(x) - x for _ in range(trials)]
    return math.sqrt(sum(e * e for e in errs) / trials)


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rows = grove_rows(trials)
    print(f"epsilon 1, delta 1e-9 (zCDP rho {RHO:.5f}), 10% of noise sources colluding")
    print(f"{'query (element)':44} {'n':>7} {'central':>9} {'OpenDP':>9} {'Grove':>9} "
          f"{'Grove/central':>13} {'Grove/OpenDP':>12}")
    for r in rows:
        o = opendp_rmse(r["l2"], RHO / r["parts"], max(r["trials"], 1000), r["n"])
        o_text = f"{o:9.3f}" if o is not None else f"{'n/a':>9}"
        ratio_o = f"{r['grove'] / o:12.3f}" if o else f"{'n/a':>12}"
        print(f"{r['name']:44} {r['n']:>7} {r['central']:9.3f} {o_text} {r['grove']:9.3f} "
              f"{r['ratio']:13.3f} {ratio_o}")


if __name__ == "__main__":
    main()
