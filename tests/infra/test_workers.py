"""`make test` runs on pytest-xdist workers with `--dist loadgroup`: the tests of one
`xdist_group` (an e2e module's server and deployments, one env's authorization matrix) must
run in one worker, in order. A pytest or xdist release that stops honouring the mark fails
nothing by itself, it only deploys the same envs again in every worker: this test notices."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.conftest import run_captured

GROUPED = """
import os
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    with open(os.environ["WHERE_TESTS_RAN"], "a") as log:
        log.write(f"grouped {i} {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""

SPREAD = """
import os
import time
import pytest


@pytest.mark.parametrize("i", range(6))
def test_spread(i):
    time.sleep(0.3)  # long enough that one worker cannot take them all
    with open(os.environ["WHERE_TESTS_RAN"], "a") as log:
        log.write(f"spread {i} {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""


def test_a_group_runs_in_one_worker_in_order_and_the_rest_spreads(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED, encoding="utf-8")
    (tmp_path / "test_spread.py").write_text(SPREAD, encoding="utf-8")
    where = tmp_path / "where.log"
    argv = [sys.executable, "-m", "pytest", "-n", "3", "--dist", "loadgroup", "-q", "-p", "no:cacheprovider"]
    result = run_captured(
        [*argv, "--rootdir", str(tmp_path), str(tmp_path)], env={**os.environ, "WHERE_TESTS_RAN": str(where)}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runs = [line.split() for line in where.read_text(encoding="utf-8").splitlines()]
    grouped = [(int(index), worker) for kind, index, worker in runs if kind == "grouped"]
    assert [index for index, _ in grouped] == list(range(6))
    assert len({worker for _, worker in grouped}) == 1, grouped
    assert len({worker for kind, _, worker in runs if kind == "spread"}) > 1, runs
