"""The runtime installs alone: its wheel, in a clean venv, brings boto3 and nothing of the
infrastructure side (cdktf, the provider bindings, constructs, pydantic), nor Flask unless
asked. Needs the package index (PyPI) for setuptools and boto3."""

from __future__ import annotations

import json
import shutil
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, run_captured

# One worker runs this module's tests (pytest-xdist): the wheel is built once.
pytestmark = pytest.mark.xdist_group("runtime_package")

INFRASTRUCTURE = {"cdktf", "cdktf-cdktf-provider-aws", "constructs", "jsii", "pydantic", "flask", "moto"}
BOTO3_AND_ITS_OWN = {"boto3", "botocore", "jmespath", "s3transfer", "python-dateutil", "six", "urllib3"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runtime wheel, built from a copy of just what the package is made of."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", source)
    shutil.copytree(PROJECT_ROOT / "apikeys", source / "apikeys", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    result = run_captured(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)],
        env={"PATH": "/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = out.glob("credlink_apikeys-*.whl")
    return built


def test_the_wheel_holds_the_runtime_package_only(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        modules = sorted(name for name in archive.namelist() if not name.startswith("credlink_apikeys-"))
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith("/METADATA"))).decode()
    shipped = sorted(f"apikeys/{path.name}" for path in (PROJECT_ROOT / "apikeys").glob("*.py"))
    assert modules == shipped
    requires = sorted(
        line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist")
    )
    assert requires == ["boto3<2,>=1.40", 'flask<4,>=3.1; extra == "service"']


def test_a_clean_venv_gets_the_loader_and_the_cli_with_boto3_alone(wheel: Path, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python, env = environment / "bin" / "python", {"PATH": "/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    installed = run_captured([str(python), "-m", "pip", "install", "--quiet", str(wheel)], env=env)
    assert installed.returncode == 0, installed.stderr[-3000:]

    listed = run_captured([str(python), "-m", "pip", "list", "--format", "json"], env=env)
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert names - {"pip", "setuptools", "credlink-apikeys"} == BOTO3_AND_ITS_OWN
    assert not names & INFRASTRUCTURE

    imported = run_captured(
        [str(python), "-c", "import apikeys.loader, apikeys.rotation, apikeys.clients, apikeys.cli; print('ok')"],
        env=env,
    )
    assert imported.stdout.strip() == "ok", imported.stderr
    helped = run_captured([str(environment / "bin" / "apikeys"), "--help"], env=env)
    assert helped.returncode == 0, helped.stderr
    assert "clients" in helped.stdout
    service = run_captured([str(python), "-m", "apikeys.service", "--help"], env=env)
    assert service.returncode == 1
    assert "needs Flask: pip install 'credlink-apikeys[service]'" in service.stderr
