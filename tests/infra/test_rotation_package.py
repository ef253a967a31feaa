"""The rotation function's package: exactly the handler's modules, importable on their own."""

from __future__ import annotations

import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest

from main import ROTATION_PACKAGE_MODULES
from tests.conftest import ALL_ENVS, PROJECT_ROOT, REPLICATED_ENV, Synthesis, run_captured

pytestmark = pytest.mark.synth


def the_function(stack: dict[str, Any]) -> dict[str, Any]:
    (function,) = stack["resource"]["aws_lambda_function"].values()
    return dict(function)


@pytest.mark.parametrize("env", ALL_ENVS)
def test_the_archive_holds_exactly_the_handler_modules_named_by_content(synthesized: Synthesis, env: str) -> None:
    packages = list((synthesized.outdir / "stacks" / env).rglob("*.zip"))
    if not synthesized.configs[env].rotation.enabled:  # no function, so no package either
        assert "aws_lambda_function" not in synthesized.stacks[env]["resource"]
        assert packages == []
        return
    function = the_function(synthesized.stacks[env])
    assert [path.relative_to(synthesized.outdir / "stacks" / env).as_posix() for path in packages] == [
        function["filename"]
    ]
    assert function["filename"].split("/")[-2] == function["source_code_hash"]  # the content hash, not a timestamp
    with zipfile.ZipFile(synthesized.outdir / "stacks" / env / function["filename"]) as package:
        assert sorted(package.namelist()) == sorted(f"apikeys/{name}" for name in ROTATION_PACKAGE_MODULES)
        for name in ROTATION_PACKAGE_MODULES:
            assert package.read(f"apikeys/{name}") == (PROJECT_ROOT / "apikeys" / name).read_bytes()


_IMPORT_LIKE_LAMBDA = """
import sys
package_dir, site_packages = sys.argv[1:3]
sys.path[:0] = [package_dir]
sys.path.append(site_packages)  # boto3, as the Lambda runtime provides it; no .pth files (no editable install)
import apikeys.rotation
assert callable(apikeys.rotation.handler)
loaded = {name: module.__file__ for name, module in sys.modules.items() if name.split(".")[0] == "apikeys"}
assert all(path.startswith(package_dir) for path in loaded.values()), loaded
packaged = {"apikeys" if name == "__init__.py" else f"apikeys.{name[:-3]}" for name in sys.argv[3].split(",")}
assert set(loaded) == packaged, sorted(set(loaded) ^ packaged)  # all it imports, nothing more (not the loader)
"""


def test_the_handler_imports_from_the_archive_alone(synthesized: Synthesis, tmp_path: Path) -> None:
    function = the_function(synthesized.stacks[REPLICATED_ENV])  # the tests' own env, rotation on
    with zipfile.ZipFile(synthesized.outdir / "stacks" / REPLICATED_ENV / function["filename"]) as package:
        package.extractall(tmp_path)
    module, _, name = function["handler"].rpartition(".")
    assert (module, name) == ("apikeys.rotation", "handler")
    packaged = ",".join(ROTATION_PACKAGE_MODULES)
    argv = [sys.executable, "-I", "-S", "-c", _IMPORT_LIKE_LAMBDA, str(tmp_path), sysconfig.get_paths()["purelib"]]
    result = run_captured([*argv, packaged], env={})
    assert result.returncode == 0, result.stderr
