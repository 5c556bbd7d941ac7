"""City brain, signals: the RESCO benchmark and the closed loop's gain, as `make bench` runs them.

A thin entry point over the two commands that produce the figures in bench/RESULTS.md,
so every figure has a script here; each command measures its own reference in the same
run (every baseline controller on the same maps and seeds; fixed time on the same
scenario and seed).

    .venv/bin/python bench/signals_bench.py           # 8 maps x 7 controllers x 3 seeds (~8 min), eco-delta 2 h (~1 min)
    .venv/bin/python bench/signals_bench.py --quick   # grid4x4, 1 seed, 5 simulated minutes; eco-delta 15 min
"""

from __future__ import annotations

import argparse
import sys

from dosi.cli.main import main as dosi


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of both")
    parser.add_argument("--out", default="bench/out", help="CSV, Markdown and PNG of the RESCO run")
    args = parser.parse_args()
    resco = ["bench", "signals", "--seeds", "3", "--workers", "2", "--out", args.out]
    closed_loop = ["brain", "eval", "signals", "eco-delta"]
    if args.quick:
        resco = ["bench", "signals", "--maps", "grid4x4", "--seeds", "1", "--duration", "300",
                 "--workers", "2", "--out", args.out]  # fmt: skip
        closed_loop += ["--hours", "0.25"]
    return dosi(resco) or dosi(closed_loop)


if __name__ == "__main__":
    sys.exit(run())
