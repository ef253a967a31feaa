"""The run's outputs: the synthesis goals, a Markdown table, the raw numbers as JSON, the plot."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from bench.calls import SIM_REQUESTS_PER_SECOND, CallCounts
from bench.cost import PRICE_PER_10K_CALLS_USD, REQUESTS_PER_SECOND, CostRow
from bench.first_synth import STATES, FirstSynthSample
from bench.keycheck import SHORT_NAMES, KeyCheckResult
from bench.synth import FLOOR, SynthSample

__all__ = ["Goal", "Results", "synth_goals", "to_markdown", "write_outputs"]

MAX_LEAN_RATIO = 0.35
MAX_EXTRA_ENV_S = 0.5
MAX_PYTHON_PEAK_MB = 400.0


@dataclass(frozen=True)
class Goal:
    name: str
    measured: str
    passed: bool

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.measured}"


@dataclass
class Results:
    machine: dict[str, str]
    synth: list[SynthSample] = field(default_factory=list)
    keycheck: list[KeyCheckResult] = field(default_factory=list)
    calls: list[CallCounts] = field(default_factory=list)
    cost: list[CostRow] = field(default_factory=list)
    first: list[FirstSynthSample] = field(default_factory=list)

    def pairs(self, label: str) -> list[tuple[SynthSample, SynthSample]]:
        """(naive, lean) per env count, for samples with this label: the fastest run of each
        (contention only ever adds time), with the highest peaks seen in any run."""
        best: dict[tuple[str, int], SynthSample] = {}
        for sample in (s for s in self.synth if s.label == label):
            seen = best.get((sample.mode, sample.envs))
            best[sample.mode, sample.envs] = (
                sample
                if seen is None
                else SynthSample(
                    mode=sample.mode,
                    envs=sample.envs,
                    label=label,
                    wall_s=min(seen.wall_s, sample.wall_s),
                    python_peak_mb=max(seen.python_peak_mb, sample.python_peak_mb),
                    node_peak_mb=max(seen.node_peak_mb, sample.node_peak_mb),
                )
            )
        counts = sorted({envs for mode, envs in best if mode == "lean"})
        return [(best["naive", n], best["lean", n]) for n in counts if ("naive", n) in best]


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)


def synth_goals(results: Results) -> list[Goal]:
    goals: list[Goal] = []
    for naive, lean in results.pairs("shipped"):
        ratio = lean.wall_s / naive.wall_s
        goals.append(
            Goal(
                f"`make synth` of all shipped envs ({lean.envs}) in <= {MAX_LEAN_RATIO}x the naive time",
                f"{lean.wall_s:.1f} s vs {naive.wall_s:.1f} s = {ratio:.2f}x",
                ratio <= MAX_LEAN_RATIO,
            )
        )
    generated = results.pairs("generated")
    if len(generated) >= 2:
        slope = _slope([(lean.envs, lean.wall_s) for _, lean in generated])
        counts = ", ".join(str(lean.envs) for _, lean in generated)
        goals.append(
            Goal(
                f"each extra env <= {MAX_EXTRA_ENV_S} s (lean; least-squares slope over {counts} envs)",
                f"{slope:.3f} s per env",
                slope <= MAX_EXTRA_ENV_S,
            )
        )
    lean_runs = [sample for sample in results.synth if sample.mode == "lean"]
    if lean_runs:
        peak = max(lean_runs, key=lambda sample: sample.python_peak_mb)
        goals.append(
            Goal(
                f"peak memory <= {MAX_PYTHON_PEAK_MB:.0f} MB (the Python process, lean, every run)",
                f"max {peak.python_peak_mb:.0f} MB ({peak.envs} envs); jsii's Node child, not judged: "
                f"max {max(s.node_peak_mb for s in lean_runs):.0f} MB",
                peak.python_peak_mb <= MAX_PYTHON_PEAK_MB,
            )
        )
    return goals


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(row) + " |" for row in (header, rule, *rows)]


def _calls(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = [f"{n} {operation}" for operation, n in sorted(counts.items())]
    return f"{total} ({', '.join(parts)})" if parts else "0"


def _spread(values: Sequence[float]) -> list[str]:
    """runs, fastest, median, slowest."""
    return [str(len(values)), f"{min(values):.1f}", f"{statistics.median(values):.1f}", f"{max(values):.1f}"]


def _floor_rows(results: Results) -> list[list[str]]:
    """The shipped envs, lean and naive, next to the empty app, every run of each."""
    runs = {
        "empty cdktf app (the floor)": [s.wall_s for s in results.synth if s.label == FLOOR],
        "shipped envs, lean": [s.wall_s for s in results.synth if s.label == "shipped" and s.mode == "lean"],
        "shipped envs, naive": [s.wall_s for s in results.synth if s.label == "shipped" and s.mode == "naive"],
    }
    floor = runs["empty cdktf app (the floor)"]
    return [
        [name, *_spread(walls), f"+{min(walls) - min(floor):.1f}" if floor else "n/a"]
        for name, walls in runs.items()
        if walls
    ]


def _usd(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def to_markdown(results: Results) -> str:
    lines = [
        f"Measured {results.machine['date']} on {results.machine['cpus']} x {results.machine['cpu_model']}, "
        f"{results.machine['memory']} RAM; Python {results.machine['python']}, Node {results.machine['node']}, "
        f"{results.machine['terraform']}.",
        "",
    ]
    if results.synth:
        runs = max(
            sum(1 for t in results.synth if (t.mode, t.envs, t.label) == (s.mode, s.envs, s.label))
            for s in results.synth
        )
        runs_text = f"{runs} run{'s' if runs > 1 else ''}"
        lines += [
            f"### Synthesis: naive vs lean provider import (wall: fastest of {runs_text}; memory: highest peak)",
            "",
        ]
        rows = []
        for label in ("generated", "shipped"):
            for naive, lean in results.pairs(label):
                rows.append(
                    [
                        f"{lean.envs}" + (" (shipped envs/)" if label == "shipped" else ""),
                        f"{naive.wall_s:.1f}",
                        f"{lean.wall_s:.1f}",
                        f"{lean.wall_s / naive.wall_s:.2f}x",
                        f"{naive.python_peak_mb:.0f}",
                        f"{lean.python_peak_mb:.0f}",
                        f"{naive.node_peak_mb:.0f}",
                        f"{lean.node_peak_mb:.0f}",
                    ]
                )
        header = ["envs", "naive s", "lean s", "lean/naive", "naive Python MB", "lean Python MB", "naive Node MB",
                  "lean Node MB"]  # fmt: skip
        lines += _table(header, rows)
        lines += ["", "Goals:", "", "```", *(goal.line() for goal in synth_goals(results)), "```", ""]
        if floor_rows := _floor_rows(results):
            lines += ["### Shipped envs against the floor (wall s over every run)", ""]
            lines += _table(["synthesis", "runs", "fastest", "median", "slowest", "fastest over the floor"], floor_rows)
            lines.append("")
        if generated := results.pairs("generated"):
            naive, lean = generated[-1]
            lines += [
                f"Not a goal: at {lean.envs} generated envs lean/naive is {lean.wall_s / naive.wall_s:.2f}x. "
                "Lean saves the bindings' import once per process; each env then costs the same in both modes, "
                "so the ratio rises with the env count.",
                "",
            ]
    if results.first:
        lines += ["### First synthesis after `make setup`: cold vs warm jsii cache (shipped envs, lean; wall s)", ""]
        rows = [[state, *_spread([s.wall_s for s in results.first if s.state == state])] for state in STATES]
        lines += _table(["run", "rounds", "fastest", "median", "slowest"], rows)
        lines.append("")
    if results.keycheck:
        counts = sorted({r.keys for r in results.keycheck})
        methods = list(dict.fromkeys(r.method for r in results.keycheck))
        by_key = {(r.method, r.keys): r for r in results.keycheck}
        lines += ["### Key check: ns per request (median of 5 batches; every presented key valid)", ""]
        rows = [
            [method]
            + [
                "n/a" if (r := by_key.get((method, n))) is None or r.ns_per_op is None else f"{r.ns_per_op:,.0f}"
                for n in counts
            ]
            for method in methods
        ]
        lines += _table(["method", *(f"{n:,} keys" for n in counts)], rows)
        notes = sorted({r.note for r in results.keycheck if r.note})
        lines += ["", *(f"n/a: {note}." for note in notes), ""]
    if results.calls:
        lines += [
            f"### Secrets Manager calls per process (simulated clock, {SIM_REQUESTS_PER_SECOND} requests/s)",
            "",
        ]
        rows = [
            [
                c.contender,
                _calls(c.startup_hour),
                _calls(c.steady_hour),
                f"{c.expected_steady_per_hour:.2f}",
                _calls(c.rotation_hour),
                "never" if c.calls_until_new_value is None else str(c.calls_until_new_value),
                "never" if c.seconds_until_new_value is None else f"{c.seconds_until_new_value:.0f} s",
                f"{c.staleness_bound_s:.0f} s",
            ]
            for c in results.calls
        ]
        header = ["contender", "startup hour", "steady hour", "expected/h", "hour with a rotation",
                  "calls to serve the new value", "time to serve it", "worst case"]  # fmt: skip
        lines += _table(header, rows)
        lines += ["", *(f"- {c.contender}: {c.policy}" for c in results.calls), ""]
    if results.cost:
        lines += [
            f"### Cost at {REQUESTS_PER_SECOND} requests/s, ${PRICE_PER_10K_CALLS_USD} per 10,000 calls, per process",
            "",
        ]
        rows = [
            [r.approach, f"{r.calls_per_hour:,.0f}", f"{r.calls_per_month:,.0f}", _usd(r.usd_per_month), r.basis]
            for r in results.cost
        ]
        lines += _table(["approach", "calls/hour", "calls/month (730 h)", "$/month", "basis"], rows, "lrrrl")
        lines.append("")
    return "\n".join(lines)


def _plot(results: Results, path: Path) -> None:
    figure, axes = plt.subplots(2, 2, figsize=(14, 10))
    (wall, memory), (keycheck, calls) = axes
    generated = results.pairs("generated")
    if generated:
        envs = [lean.envs for _, lean in generated]
        wall.plot(envs, [n.wall_s for n, _ in generated], "o-", label="naive import", color="tab:red")
        wall.plot(envs, [lean.wall_s for _, lean in generated], "o-", label="lean import", color="tab:green")
        wall.plot(envs, [MAX_LEAN_RATIO * n.wall_s for n, _ in generated], ":", color="grey", label="goal: 0.35x naive")
        memory.plot(envs, [n.python_peak_mb for n, _ in generated], "o-", color="tab:red", label="Python, naive")
        memory.plot(envs, [lean.python_peak_mb for _, lean in generated], "o-", color="tab:green", label="Python, lean")
        memory.plot(envs, [n.node_peak_mb for n, _ in generated], "s--", color="tab:red", label="Node (jsii), naive")
        memory.plot(envs, [lean.node_peak_mb for _, lean in generated], "s--", color="tab:green", label="Node, lean")
        memory.axhline(MAX_PYTHON_PEAK_MB, color="grey", linestyle=":", label="goal: Python <= 400 MB")
        for axis in (wall, memory):
            axis.set_xscale("log")
            axis.set_xticks(envs, [str(n) for n in envs])
            axis.minorticks_off()
            axis.legend(fontsize=8)
            axis.grid(alpha=0.3)
    wall.set(title="Synthesis wall time (generated envs)", xlabel="environments", ylabel="seconds", ylim=(0, None))
    memory.set(title="Synthesis peak memory (RSS)", xlabel="environments", ylabel="MB", ylim=(0, None))
    if results.keycheck:
        counts = sorted({r.keys for r in results.keycheck})
        methods = list(dict.fromkeys(r.method for r in results.keycheck))[::-1]  # first method on top
        by_key = {(r.method, r.keys): r.ns_per_op for r in results.keycheck}
        height = 0.8 / len(counts)
        for index, count in enumerate(counts):
            values = [by_key.get((method, count)) or 0.0 for method in methods]
            positions = [row + (len(counts) - 1 - index) * height for row in range(len(methods))]
            keycheck.barh(positions, values, height, label=f"{count:,} keys")
        keycheck.set_yticks([row + 0.4 - height / 2 for row in range(len(methods))], [SHORT_NAMES[m] for m in methods])
        keycheck.tick_params(axis="y", labelsize=8)
        keycheck.set(title="Key check per request (no bar: n/a)", xlabel="ns per request (log)", xscale="log")
        keycheck.legend(fontsize=8)
        keycheck.grid(alpha=0.3, axis="x")
    if results.cost:
        names = [row.approach.replace(" ", "\n", 2) for row in results.cost]
        values = [row.calls_per_hour for row in results.cost]
        calls.bar(names, values, color="tab:blue")
        calls.set(title=f"Secrets Manager calls per process-hour, steady state, {REQUESTS_PER_SECOND} req/s")
        calls.set(yscale="log", ylabel="calls/hour (log)", ylim=(0.5, max(values) * 20))
        calls.tick_params(axis="x", labelsize=8)
        for index, row in enumerate(results.cost):
            label = f"{row.calls_per_hour:,.0f}/h\n{_usd(row.usd_per_month)}/month"
            calls.annotate(label, (index, row.calls_per_hour), ha="center", va="bottom", fontsize=8)
    figure.suptitle(f"credlink benchmarks, {results.machine['date']}, {results.machine['cpus']} CPUs")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_outputs(results: Results, outdir: Path) -> dict[str, Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {"table": outdir / "results.md", "json": outdir / "results.json", "plot": outdir / "benchmarks.png"}
    paths["table"].write_text(to_markdown(results), encoding="utf-8")
    raw = {**asdict(results), "goals": [asdict(goal) for goal in synth_goals(results)]}
    paths["json"].write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    _plot(results, paths["plot"])
    return paths
