#!/usr/bin/env python3
"""A/B of `ward bench fuse` between builds, by the ratio that matters: ward/direct in the same run.

  scripts/bench-fuse-ab.py OLD/ward,NEW/ward RUNS FILTER [REPETITIONS]

Runs each binary's `bench fuse --json --repetitions R --filter FILTER` in turn, RUNS times (the
order reversed every other run, so both see the same machine states), and prints for each binary
and row the medians of ward, direct and floor and the median of the per-run ratios ward/direct.
On a shared machine only ratios from the same run compare (docs/fuse.md, "Figures").
"""
import json
import statistics
import subprocess
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    bins, runs, filt = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3]
    reps = sys.argv[4] if len(sys.argv) > 4 else "3"
    res = {b: {} for b in bins}
    for i in range(runs):
        for b in bins if i % 2 == 0 else bins[::-1]:
            out = subprocess.run([b, "bench", "fuse", "--json", "--repetitions", reps, "--filter", filt],
                                 capture_output=True, text=True).stdout
            if "[" not in out:
                sys.exit(f"bench-fuse-ab: {b} printed no JSON")
            v = {}
            for r in json.loads(out[out.find("["):]):
                v.setdefault(r["name"], r["value"])
            for name, x in v.items():
                row = name.removeprefix("ward/")
                if row == name or f"direct/{row}" not in v:
                    continue
                d = v[f"direct/{row}"]
                res[b].setdefault(row, []).append((x, d, x / d, v.get(f"floor/{row}")))
                print(f"run {i + 1} {b} {row}: ward {x:.0f} direct {d:.0f} ratio {x / d:.2f}", file=sys.stderr)
    for b in bins:
        for row, xs in res[b].items():
            med = lambda k: statistics.median(x[k] for x in xs if x[k] is not None)
            print(f"{b} {row}: ward {med(0):.0f}, direct {med(1):.0f}, floor {med(3):.0f}, "
                  f"ward/direct {med(2):.2f} (runs: {', '.join(f'{x[2]:.2f}' for x in xs)})")


if __name__ == "__main__":
    main()
