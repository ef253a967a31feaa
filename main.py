#!/usr/bin/env python
"""Composition root: one SecretsStack per environment file in envs/, then synthesize.

The only place on the infrastructure side that reads argv or the environment. Every env
file is validated before any construct exists, so a bad file writes nothing to cdktf.out.

    python main.py                  # all envs/*.toml
    CREDLINK_ENVS_DIR=path python main.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from stacks.config import ConfigError, EnvironmentConfig, load_environments

PROJECT_ROOT = Path(__file__).resolve().parent
EXIT_CONFIG_ERROR = 2


def app_context() -> dict[str, object]:
    """The context `cdktf synth` would pass, so `python main.py` synthesizes the same output."""
    cdktf_json = json.loads((PROJECT_ROOT / "cdktf.json").read_text(encoding="utf-8"))
    return {"cdktfRelativeModules": cdktf_json["terraformModules"], **cdktf_json.get("context", {})}


def synthesize(configs: tuple[EnvironmentConfig, ...], *, outdir: str | None = None) -> None:
    # cdktf is imported only after the configs are valid: a config error costs no Node start.
    from cdktf import App

    from stacks.secrets_stack import SecretsStack

    app = App(outdir=outdir, context=app_context())
    for config in configs:
        SecretsStack(app, config.environment, config=config)
    app.synth()


def _refuse_module_working_dirs() -> None:
    """cdktf copies each local module, whole, into the stack's assets; a `.terraform` dir left
    by running terraform inside modules/ would be copied too (and break on its symlinks)."""
    for leftover in sorted(Path("modules").glob("*/.terraform")):
        raise ConfigError(f"{leftover}: remove this Terraform working directory before synthesizing")


def main() -> int:
    os.chdir(PROJECT_ROOT)  # module sources and the local backend are relative to the root
    envs_dir = Path(os.environ.get("CREDLINK_ENVS_DIR", "envs"))
    try:
        configs = load_environments(envs_dir.glob("*.toml"))
        _refuse_module_working_dirs()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    synthesize(configs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
