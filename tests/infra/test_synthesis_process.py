"""Everything on Node runs on a supported Node (22 or newer), and synthesis is quiet (no
end-of-life banner from jsii, no deprecation warning from the libraries it runs) and tidy
(nothing left in the temp directory)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench.synth import generate_envs
from main import PROJECT_NODE
from tests.conftest import PROJECT_ROOT, run_captured

pytestmark = pytest.mark.synth

MINIMUM_MAJOR = 22


def test_the_projects_node_is_supported() -> None:
    result = run_captured([str(PROJECT_ROOT / "scripts" / "node.sh")], env=os.environ)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == PROJECT_NODE
    version = run_captured([str(PROJECT_NODE), "--version"], env=os.environ).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= MINIMUM_MAJOR, version


def test_a_synthesis_is_quiet_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """Without make (JSII_NODE unset), main.py still starts jsii on the project's Node; it
    writes nothing to stderr, and nothing of it stays in the system's temp directory."""
    system_temp = tmp_path / "tmp"
    system_temp.mkdir()
    environment = {name: value for name, value in os.environ.items() if name != "JSII_NODE"}
    environment |= {
        "CREDLINK_ENVS_DIR": str(generate_envs(tmp_path / "envs", 1)),
        "CDKTF_OUTDIR": str(tmp_path / "out"),
        "TMPDIR": str(system_temp),
    }
    result = run_captured([sys.executable, str(PROJECT_ROOT / "main.py")], env=environment)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert list(system_temp.iterdir()) == []
    assert (tmp_path / "out" / "stacks" / "bench01" / "cdk.tf.json").is_file()
