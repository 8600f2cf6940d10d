#!/usr/bin/env python3
"""Before/after comparison of a `ward bench` subcommand between two builds.

Runs the two `ward` binaries alternately (so both see the same machine states), N full runs
each, and prints for every benchmark the median of the per-run medians and of the ratios.

  scripts/bench-ab.py OLD/ward NEW/ward xpc [--runs 5] [--filter REGEX]

Each binary finds its own helper through the build directory it was built in (or
$WARD_HELPER_DIR, which applies to both). Exit status: 0, or 2 if a run printed no JSON.
"""
import argparse
import json
import statistics
import subprocess
import sys


def run(binary, command, filt):
    args = [binary, "bench", command, "--json"] + (["--filter", filt] if filt else [])
    out = subprocess.run(args, capture_output=True, text=True).stdout
    start = out.find("[")
    if start < 0:
        sys.exit(f"bench-ab: {binary} bench {command} printed no JSON")
    return json.loads(out[start:])


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("command", help="the bench subcommand: xpc, events, recovery, rio")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--filter", default="")
    a = p.parse_args()
    seen = {"before": {}, "after": {}}
    for i in range(a.runs):
        for side in ("before", "after"):
            for row in run(getattr(a, side), a.command, a.filter):
                seen[side].setdefault(row["name"], []).append((row["value"], row.get("ratio")))
        print(f"bench-ab: run {i + 1}/{a.runs} done", file=sys.stderr)
    def fmt(v, spec):
        return format(v, spec) if v is not None else format("-", ">" + spec.split(".")[0])
    print(f"{'benchmark':44} {'before':>11} {'after':>11} {'change':>7} {'ratio b':>8} {'ratio a':>8}")
    for name in sorted(set(seen["before"]) | set(seen["after"])):
        b, n = seen["before"].get(name, []), seen["after"].get(name, [])
        vb, va = median([x[0] for x in b]), median([x[0] for x in n])
        change = f"{(va / vb - 1) * 100:+.0f}%" if vb and va else "-"
        print(f"{name:44} {fmt(vb, '11.1f')} {fmt(va, '11.1f')} {change:>7} "
              f"{fmt(median([x[1] for x in b]), '8.2f')} {fmt(median([x[1] for x in n]), '8.2f')}")


if __name__ == "__main__":
    main()
