"""`cdktf synth` (what `cdktf deploy` runs first) writes what `python main.py` writes."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import PROJECT_ROOT, Synthesis, run_captured

pytestmark = pytest.mark.synth


def test_cdktf_cli_synth_matches_main_py(synthesized: Synthesis, terraform_env: dict[str, str]) -> None:
    outdir = synthesized.outdir.parent / "cdktf-cli.out"
    env = {
        **terraform_env,
        "CREDLINK_ENVS_DIR": str(synthesized.envs_dir),
        "CI": "1",  # no spinner, no prompts
    }
    result = run_captured(
        [str(PROJECT_ROOT / "node_modules" / ".bin" / "cdktf"), "synth", "--output", str(outdir)], env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for stack, expected in synthesized.stacks.items():
        written = json.loads((outdir / "stacks" / stack / "cdk.tf.json").read_text(encoding="utf-8"))
        # The CLI replaces CDKTF_CONTEXT_JSON with cdktf.json's context, so its module asset is
        # named by content hash where the session synthesis used a static name.
        source = written["module"]["secrets"]["source"]
        assert source.rsplit("/", 1)[0] == expected["module"]["secrets"]["source"].rsplit("/", 1)[0]
        written["module"]["secrets"]["source"] = expected["module"]["secrets"]["source"]
        assert written == expected, stack
    assert os.listdir(outdir / "stacks") == os.listdir(synthesized.outdir / "stacks")
