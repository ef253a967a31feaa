"""Everything on Node runs on a supported Node (22 or newer), and synthesis is quiet (no
end-of-life banner from jsii, no deprecation warning from the libraries it runs), tidy
(nothing left in the temp directory) and keeps jsii's package cache in the project, where
`make setup` leaves it warm."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench.synth import generate_envs
from main import PROJECT_JSII_CACHE, PROJECT_NODE
from scripts.jsii_cache import assemblies, index_pending, package_dirs
from tests.conftest import PROJECT_ROOT, run_captured

pytestmark = pytest.mark.synth

MINIMUM_MAJOR = 22


def test_the_projects_node_is_supported() -> None:
    result = run_captured([str(PROJECT_ROOT / "scripts" / "node.sh")], env=os.environ)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == PROJECT_NODE
    version = run_captured([str(PROJECT_NODE), "--version"], env=os.environ).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= MINIMUM_MAJOR, version


def test_setup_leaves_the_jsii_cache_warm() -> None:
    """Every assembly a synthesis loads is extracted in the project's cache with its type
    index, so no synthesis extracts or indexes again (scripts/jsii_cache.py)."""
    loaded = assemblies()
    assert {name for name, _ in loaded} == {"constructs", "cdktf", "@cdktf/provider-aws"}
    assert index_pending(PROJECT_JSII_CACHE, loaded) == [], f"{PROJECT_JSII_CACHE} is not warm: run make setup"


def test_a_synthesis_is_quiet_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """Without make (JSII_NODE and jsii's cache root unset, as under `npx cdktf synth`),
    main.py still starts jsii on the project's Node with the project's package cache; it
    writes nothing to stderr, and nothing of it stays in the system's temp directory or in
    the home directory (jsii's own default cache is ~/.cache)."""
    system_temp = tmp_path / "tmp"
    home = tmp_path / "home"
    system_temp.mkdir()
    home.mkdir()
    unset = ("JSII_NODE", "JSII_RUNTIME_PACKAGE_CACHE_ROOT")
    environment = {name: value for name, value in os.environ.items() if name not in unset}
    environment |= {
        "CREDLINK_ENVS_DIR": str(generate_envs(tmp_path / "envs", 1)),
        "CDKTF_OUTDIR": str(tmp_path / "out"),
        "TMPDIR": str(system_temp),
        "HOME": str(home),
    }
    result = run_captured([sys.executable, str(PROJECT_ROOT / "main.py")], env=environment)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert list(system_temp.iterdir()) == []
    assert list(home.rglob("*")) == []
    assert all(package_dirs(PROJECT_JSII_CACHE, name, version) for name, version in assemblies())
    assert (tmp_path / "out" / "stacks" / "bench01" / "cdk.tf.json").is_file()
