"""The first synthesis after `make setup`: with an empty jsii package cache (cold) and with the
cache `make setup` leaves (warm: `python -m scripts.jsii_cache`).

Each round starts from an empty cache directory of its own (`JSII_RUNTIME_PACKAGE_CACHE_ROOT`)
and synthesizes the shipped envs (lean) in fresh processes:

- cold: the first synthesis into the empty cache: jsii extracts each package and indexes its
  types in a worker thread while the synthesis runs (what `make setup` left before it warmed
  the cache); then a second synthesis, which shows whether that index was finished in time;
- warm-up: `python -m scripts.jsii_cache` into a new empty cache (the step `make setup` runs);
- warm: the first synthesis after it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.synth import PROJECT_ROOT, SHIPPED_ENVS_DIR, run_synth

__all__ = ["STATES", "FirstSynthSample", "first_synth_samples"]

COLD = "cold: first synthesis, empty cache"
COLD_SECOND = "cold: second synthesis"
WARM_UP = "make setup's warm-up (python -m scripts.jsii_cache)"
WARM = "warm: first synthesis after the warm-up"
STATES = (COLD, COLD_SECOND, WARM_UP, WARM)


@dataclass(frozen=True)
class FirstSynthSample:
    state: str
    wall_s: float


def _warm_up(cache: Path) -> float:
    environ = {**os.environ, "JSII_RUNTIME_PACKAGE_CACHE_ROOT": str(cache)}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.jsii_cache"],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    wall_s = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"the jsii cache warm-up failed with exit {completed.returncode}:\n{completed.stderr}")
    return wall_s


def _synth(state: str, cache: Path, workdir: Path) -> FirstSynthSample:
    environ = {"JSII_RUNTIME_PACKAGE_CACHE_ROOT": str(cache)}
    sample = run_synth("lean", SHIPPED_ENVS_DIR, label="shipped", workdir=workdir, extra_env=environ)
    return FirstSynthSample(state, sample.wall_s)


def first_synth_samples(*, rounds: int = 3) -> list[FirstSynthSample]:
    samples: list[FirstSynthSample] = []
    with tempfile.TemporaryDirectory(prefix="credlink-bench-first-") as scratch:
        workdir = Path(scratch)
        for round_ in range(1, rounds + 1):
            cache = workdir / f"jsii-cache-{round_}"
            samples.append(_synth(COLD, cache, workdir))
            samples.append(_synth(COLD_SECOND, cache, workdir))
            shutil.rmtree(cache)
            samples.append(FirstSynthSample(WARM_UP, _warm_up(cache)))
            samples.append(_synth(WARM, cache, workdir))
            shutil.rmtree(cache)
            recent = ", ".join(f"{s.wall_s:.1f} s" for s in samples[-len(STATES) :])
            print(f"  first synthesis {round_}/{rounds} (cold, cold second, warm-up, warm): {recent}", file=sys.stderr)
    return samples
