"""`python -m bench` (`make bench`): run the sections, write bench/out/, print the table.

Exits 1 when a synthesis goal fails (after writing every output), 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.calls import call_counts
from bench.cost import cost_rows
from bench.first_synth import first_synth_samples
from bench.keycheck import keycheck_results
from bench.machine import machine_info
from bench.report import Results, synth_goals, to_markdown, write_outputs
from bench.synth import ENV_COUNTS, synth_samples
from scripts.local_aws import local_aws

SECTIONS = ("synth", "first", "keycheck", "calls")
FIRST_SYNTH_ROUNDS = 3  # at least: the cold and warm runs are single-shot per round
DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: bench/out)")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run this section only (repeatable; cost follows calls)"
    )
    parser.add_argument(
        "--envs",
        type=int,
        nargs="+",
        default=list(ENV_COUNTS),
        help="generated env counts for synth (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each synth configuration; the fastest counts (default: 1)"
    )
    args = parser.parse_args(argv)
    sections = set(args.only or SECTIONS)
    started = time.perf_counter()
    results = Results(machine=machine_info())
    if "synth" in sections:
        print("synth: naive and lean, side by side (the slow part: a few minutes)", file=sys.stderr, flush=True)
        results.synth = synth_samples(sorted(args.envs), repeat=args.repeat)
    if "first" in sections:
        print("first synthesis: cold vs warm jsii cache", file=sys.stderr, flush=True)
        results.first = first_synth_samples(rounds=max(args.repeat, FIRST_SYNTH_ROUNDS))
    if sections & {"keycheck", "calls"}:
        with local_aws() as server:  # moto on 127.0.0.1, stopped on the way out
            if "keycheck" in sections:
                print(f"key check: against local AWS at {server.endpoint_url}", file=sys.stderr, flush=True)
                results.keycheck = keycheck_results(server)
            if "calls" in sections:
                print("calls: three simulated hours per contender", file=sys.stderr, flush=True)
                results.calls = call_counts(server)
                results.cost = cost_rows(results.calls)
    paths = write_outputs(results, args.out)
    print(to_markdown(results))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    print(f"bench took {time.perf_counter() - started:.0f} s")
    failed = [goal for goal in synth_goals(results) if not goal.passed]
    if failed:
        print(f"FAIL: {len(failed)} synthesis goal(s) not met (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
