"""The lean provider-bindings loader (stacks/provider_bindings.py) changes speed, not output."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, STATIC_MODULE_ASSET_HASH, Synthesis, run_captured, run_main


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.synth
def test_lean_and_naive_imports_synthesize_byte_identical_output(
    synthesized: Synthesis, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Both ways, side by side, over every env (what envs/ holds and the tests' own)."""
    trees = {}
    for provider_import in ("lean", "naive"):
        outdir = tmp_path_factory.mktemp(f"cdktf-{provider_import}.out")
        result = run_main(
            synthesized.envs_dir,
            outdir,
            extra_context={"cdktfStaticModuleAssetHash": STATIC_MODULE_ASSET_HASH},
            extra_env={"CREDLINK_PROVIDER_IMPORT": provider_import},
        )
        assert result.returncode == 0, result.stderr
        trees[provider_import] = _tree(outdir)
    lean, naive = trees["lean"], trees["naive"]
    assert sorted(lean) == sorted(naive)
    assert {f"stacks/{env}/cdk.tf.json" for env in synthesized.stacks} <= set(lean)
    assert any(name.endswith("/rotation.zip") for name in lean)  # the rotation package, too
    for name, content in lean.items():
        assert content == naive[name], name


_PROBE = """
import sys
from pathlib import Path
from stacks import provider_bindings
print(provider_bindings.install(pinned_version=sys.argv[1]))
print(provider_bindings.PACKAGE in sys.modules)
if sys.argv[1] == provider_bindings.PINNED_VERSION:
    import stacks.aws
    print(sum(name.startswith(provider_bindings.PACKAGE + ".") for name in sys.modules))
"""


def test_lean_loader_imports_only_the_modules_the_stacks_use() -> None:
    from stacks.provider_bindings import PINNED_VERSION

    result = run_captured([sys.executable, "-c", _PROBE, PINNED_VERSION], env={"PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 0, result.stderr
    installed, registered, loaded_modules = result.stdout.split()
    assert (installed, registered) == ("True", "True")
    assert int(loaded_modules) < 100  # stacks/aws.py's imports, _jsii and what jsii needs of ~2,135


def test_lean_loader_stands_aside_for_any_other_release() -> None:
    result = run_captured([sys.executable, "-c", _PROBE, "0.0.0"], env={"PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]  # the normal, eager import will run
