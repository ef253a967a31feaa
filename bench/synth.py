"""Synthesis: naive vs lean provider import, for generated environment files, and an empty
cdktf app (no stack, no provider bindings: the floor any synthesis pays).

Each run is a fresh `python -m bench.synth_probe` process (what `make synth` starts: one
Python process and its jsii Node child), timed from spawn to exit, into its own temporary
output directory. Naive and lean runs alternate per env count, so drift on the machine
touches both alike; the empty app runs in each round, next to the shipped envs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "ENV_COUNTS",
    "FLOOR",
    "MODES",
    "SHIPPED_ENVS_DIR",
    "Mode",
    "SynthSample",
    "generate_envs",
    "run_synth",
    "synth_samples",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_ENVS_DIR = PROJECT_ROOT / "envs"
ENV_COUNTS = (1, 3, 10, 30)
Mode = Literal["naive", "lean", "empty"]
MODES: tuple[Mode, ...] = ("naive", "lean")
FLOOR = "floor"  # the label of the empty app's samples
KIB_PER_MB = 1024


@dataclass(frozen=True)
class SynthSample:
    mode: Mode
    envs: int
    label: str  # "generated", "shipped" or FLOOR
    wall_s: float
    python_peak_mb: float
    node_peak_mb: float


def env_file(name: str) -> str:
    """A valid environment file of staging's shape, with local state (the default backend)."""
    return f"""\
environment = "{name}"
region = "us-east-1"
recovery_window_days = 14
kms_deletion_window_days = 14
alert_emails = ["platform-alerts+{name}@example.com"]

[access]
apply_roles = ["credlink-{name}-deploy"]
plan_roles = ["credlink-{name}-plan"]
operator_roles = ["credlink-{name}-operator"]

[service]
task_roles = ["credlink-{name}-api-task"]
log_group_name = "/credlink/{name}/app"

[tags]
Owner = "platform"
"""


def generate_envs(directory: Path, count: int) -> Path:
    """`bench01.toml` .. `benchNN.toml` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for number in range(1, count + 1):
        name = f"bench{number:02d}"
        (directory / f"{name}.toml").write_text(env_file(name), encoding="utf-8")
    return directory


def run_synth(
    mode: Mode, envs_dir: Path, *, label: str, workdir: Path, extra_env: Mapping[str, str] | None = None
) -> SynthSample:
    """One synthesis of every env file in `envs_dir` (mode "empty": of an app without stacks)
    in a fresh process; raises if it fails."""
    envs = 0 if mode == "empty" else len(list(envs_dir.glob("*.toml")))
    outdir = Path(tempfile.mkdtemp(prefix=f"synth-{mode}-{envs}-", dir=workdir))
    result_path = outdir.with_suffix(".json")
    environ: Mapping[str, str] = {
        **os.environ,
        "CREDLINK_ENVS_DIR": str(envs_dir),
        "CDKTF_OUTDIR": str(outdir),
        **({} if mode == "empty" else {"CREDLINK_PROVIDER_IMPORT": mode}),
        **(extra_env or {}),
    }
    probe_args = ["--empty-app"] if mode == "empty" else []
    started = time.perf_counter()
    completed = subprocess.run(  # noqa: S603 (fixed argv: this interpreter and our probe)
        [sys.executable, "-m", "bench.synth_probe", str(result_path), *probe_args],
        cwd=PROJECT_ROOT,
        env=dict(environ),
        capture_output=True,
        text=True,
        check=False,
    )
    wall_s = time.perf_counter() - started
    try:
        if completed.returncode != 0:
            raise RuntimeError(
                f"synth ({mode}, {envs} envs) failed with exit {completed.returncode}:\n{completed.stderr}"
            )
        synthesized = len(list(outdir.glob("stacks/*/cdk.tf.json")))
        if synthesized != envs:
            raise RuntimeError(f"synth ({mode}, {envs} envs) wrote {synthesized} stacks")
        peaks = json.loads(result_path.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
        result_path.unlink(missing_ok=True)
    return SynthSample(
        mode=mode,
        envs=envs,
        label=label,
        wall_s=wall_s,
        python_peak_mb=peaks["python_peak_kib"] / KIB_PER_MB,
        node_peak_mb=peaks["node_peak_kib"] / KIB_PER_MB,
    )


def synth_samples(
    env_counts: Iterable[int] = ENV_COUNTS, *, repeat: int = 1, include_shipped: bool = True
) -> list[SynthSample]:
    """Naive and lean, side by side, for each generated env count and the shipped envs/ (there
    with the empty app next to them); every configuration `repeat` times, the rounds one after
    the other (so a burst of load elsewhere on the machine is unlikely to hit every run of one
    configuration)."""
    samples: list[SynthSample] = []
    with tempfile.TemporaryDirectory(prefix="credlink-bench-") as scratch:
        workdir = Path(scratch)
        targets = [(generate_envs(workdir / f"envs-{count}", count), "generated") for count in env_counts]
        if include_shipped:
            targets.append((SHIPPED_ENVS_DIR, "shipped"))
        for round_ in range(1, repeat + 1):
            for envs_dir, label in targets:
                runs: list[tuple[Mode, str]] = [(mode, label) for mode in MODES]
                if label == "shipped":
                    runs.append(("empty", FLOOR))
                for mode, run_label in runs:
                    sample = run_synth(mode, envs_dir, label=run_label, workdir=workdir)
                    samples.append(sample)
                    print(
                        f"  synth {round_}/{repeat} {mode:5} {sample.envs:2d} envs ({run_label}): "
                        f"{sample.wall_s:5.1f} s, Python peak {sample.python_peak_mb:4.0f} MB, "
                        f"Node peak {sample.node_peak_mb:4.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
    return samples
