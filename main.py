#!/usr/bin/env python
"""Composition root: one SecretsStack per environment file in envs/, then synthesize.

The only place on the infrastructure side that reads argv or the environment. Every env
file is validated before any construct exists, so a bad file writes nothing to cdktf.out.

    python main.py                          # all envs/*.toml
    CREDLINK_ENVS_DIR=path python main.py   # another envs directory
    CREDLINK_ALLOW_DESTROY=prod python main.py   # lift prod's destroy guard (explicit override)
    CREDLINK_PROVIDER_IMPORT=naive python main.py # eager provider import (benchmarks, equivalence test)
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from stacks.config import ConfigError, EnvironmentConfig, load_environments

PROJECT_ROOT = Path(__file__).resolve().parent
PROJECT_NODE = PROJECT_ROOT / ".tooling" / "node" / "bin" / "node"  # scripts/node.sh
# jsii extracts each provider package here and indexes its types (make setup warms it:
# scripts/jsii_cache.py); its default would be the user's ~/.cache.
PROJECT_JSII_CACHE = PROJECT_ROOT / ".tooling" / "jsii-cache"
EXIT_CONFIG_ERROR = 2


def synthesize(
    configs: tuple[EnvironmentConfig, ...], *, outdir: str | None = None, naive_import: bool = False
) -> None:
    # cdktf is imported only after the configs are valid: a config error costs no Node start.
    from cdktf import App

    if naive_import:
        # The package's own eager __init__ (all ~2,135 modules); stacks/aws.py's lean
        # loader then finds the package imported and stands aside.
        import cdktf_cdktf_provider_aws  # noqa: F401

    from stacks.secrets_stack import SECRETS_MODULE_SOURCE, SecretsStack

    app = App(outdir=outdir)
    # The relative local modules the stacks use. Set here, after App() has read the CLI's
    # context, because `cdktf synth` would otherwise pass the list from cdktf.json's
    # terraformModules, and listing the module there makes the CLI demand `cdktf get`.
    app.node.set_context("cdktfRelativeModules", [SECRETS_MODULE_SOURCE])
    with tempfile.TemporaryDirectory(prefix="credlink-rotation-") as staging:
        package = build_rotation_package(Path(staging))
        for config in configs:
            SecretsStack(app, config.environment, config=config, rotation_package_path=str(package))
        app.synth()


# The rotation function's code: `apikeys.rotation` and the modules it imports (boto3 comes
# with the Lambda runtime). tests/infra/test_rotation_package.py imports the handler from
# the archive alone.
ROTATION_PACKAGE_MODULES = ("__init__.py", "aws.py", "events.py", "keyset.py", "logs.py", "rotation.py")
# Fixed entry times and modes: the archive's bytes depend only on the code.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def build_rotation_package(staging: Path) -> Path:
    """Zip the rotation function's modules (as `apikeys/<module>`) once, for every stack.

    Built here rather than as a cdktf ARCHIVE asset, which Node would zip again per stack."""
    archive = staging / "rotation.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as package:
        for name in ROTATION_PACKAGE_MODULES:
            entry = zipfile.ZipInfo(f"apikeys/{name}", date_time=_ZIP_EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            package.writestr(entry, (PROJECT_ROOT / "apikeys" / name).read_bytes())
    return archive


def _refuse_module_working_dirs() -> None:
    """cdktf copies each local module, whole, into the stack's assets; a `.terraform` dir left
    by running terraform inside modules/ (or one of their examples) would be copied too (and
    break on its symlinks)."""
    for leftover in sorted(Path("modules").glob("**/.terraform")):
        raise ConfigError(f"{leftover}: remove this Terraform working directory before synthesizing")


def main() -> int:
    os.chdir(PROJECT_ROOT)  # module sources and the local backend are relative to the root
    envs_dir = Path(os.environ.get("CREDLINK_ENVS_DIR", "envs"))
    allow_destroy = set(filter(None, os.environ.get("CREDLINK_ALLOW_DESTROY", "").split(",")))
    provider_import = os.environ.get("CREDLINK_PROVIDER_IMPORT", "lean")
    use_project_runtime()
    try:
        if provider_import not in ("lean", "naive"):
            raise ConfigError(f"CREDLINK_PROVIDER_IMPORT={provider_import!r}: use 'lean' (the default) or 'naive'")
        configs = tuple(
            config.without_deletion_protection() if config.environment in allow_destroy else config
            for config in load_environments(envs_dir.glob("*.toml"))
        )
        _refuse_module_working_dirs()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    use_private_temp_dir()
    synthesize(configs, naive_import=provider_import == "naive")
    return 0


def use_project_runtime() -> None:
    """Point jsii at the project's Node and package cache (what the Makefile exports), also when
    synthesis is started without make (npx cdktf synth, an IDE). Settings already made win."""
    if not os.environ.get("JSII_NODE") and PROJECT_NODE.exists():
        # jsii starts its Node runtime from JSII_NODE: the project's Node 22+ (make setup).
        os.environ["JSII_NODE"] = str(PROJECT_NODE)
    if not os.environ.get("JSII_RUNTIME_PACKAGE_CACHE_ROOT"):
        os.environ["JSII_RUNTIME_PACKAGE_CACHE_ROOT"] = str(PROJECT_JSII_CACHE)


def use_private_temp_dir() -> None:
    """Give the jsii Node runtime a temporary directory of its own, removed when this process
    ends: cdktf copies every local module into a `cdktf-module-asset-*` directory there for
    each stack and never removes it. Registered before cdktf is imported, so it runs after
    jsii's own exit handler has stopped Node (exit handlers run last-registered first)."""
    scratch = tempfile.mkdtemp(prefix="credlink-synth-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    os.environ["TMPDIR"] = scratch  # Node's os.tmpdir()


if __name__ == "__main__":
    sys.exit(main())
