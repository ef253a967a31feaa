"""Warm the project's jsii package cache: `python -m scripts.jsii_cache` (run by `make setup`).

Each synthesis starts a jsii Node runtime that loads the assemblies of constructs, cdktf and
the AWS provider. jsii extracts each package once into its package cache
(`JSII_RUNTIME_PACKAGE_CACHE_ROOT`; the project's is `.tooling/jsii-cache`) and then, in a
worker thread, writes a runtime index of its types, so later loads read the types they need
instead of parsing the whole assembly (the provider's is 120 MB of JSON: about 2 s per
synthesis, more while the worker competes for the CPU). The worker stops with the process
that started it, and a synthesis may end before the provider's index is written.

This loads the same assemblies a synthesis does and waits until each has its index, so
the first synthesis after `make setup` is as fast as the tenth.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.resources
import importlib.util
import os
import re
import sys
import time
from pathlib import Path

from main import use_project_runtime
from stacks import provider_bindings

__all__ = ["ASSEMBLY_MODULES", "assemblies", "cache_root", "index_pending", "package_dirs", "warm"]

# The Python packages whose `_jsii` module loads an assembly into the Node runtime, as a
# synthesis loads them (the provider through the lean loader, stacks/provider_bindings.py).
ASSEMBLY_MODULES = ("constructs", "cdktf", provider_bindings.PACKAGE)
DEFAULT_TIMEOUT_S = 300.0
POLL_S = 0.2
# The generated `_jsii/__init__.py`: `jsii.JSIIAssembly.load("<name>", "<version>", ...)`.
_ASSEMBLY_LOAD = re.compile(r'JSIIAssembly\.load\(\s*"(?P<name>[^"]+)",\s*"(?P<version>[^"]+)"')


def cache_root() -> Path:
    use_project_runtime()
    return Path(os.environ["JSII_RUNTIME_PACKAGE_CACHE_ROOT"])


def package_dirs(root: Path, name: str, version: str) -> list[Path]:
    """The cached extractions of one package (`<root>/<name>/<version>/<digest>/`)."""
    return sorted(path.parent for path in (root / name / version).glob("*/.jsii"))


def _indexed(package_dir: Path) -> bool:
    # The runtime index's manifest, written last (after the index and type definitions).
    return any(package_dir.glob(".jsii.runtime.v*.json"))


def _runtime_builds_indexes() -> bool:
    """Whether the installed jsii runtime writes runtime indexes at all."""
    return importlib.resources.files("jsii._embedded.jsii").joinpath("lib__runtime-index-worker.js").is_file()


def assemblies() -> list[tuple[str, str]]:
    """(name, version) of each assembly a synthesis loads, read from the installed packages
    without importing them (an import would start the jsii runtime)."""
    found = []
    for package in ASSEMBLY_MODULES:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        loader = next((Path(path) / "_jsii" / "__init__.py" for path in locations), None)
        load = _ASSEMBLY_LOAD.search(loader.read_text(encoding="utf-8")) if loader and loader.is_file() else None
        if load is None:
            raise RuntimeError(f"{package}: no jsii assembly found (is the venv installed? make setup)")
        found.append((load["name"], load["version"]))
    return found


def index_pending(root: Path, assemblies: list[tuple[str, str]]) -> list[str]:
    """`name@version` of each assembly not extracted yet, or extracted without its index."""
    pending = []
    for name, version in assemblies:
        found = package_dirs(root, name, version)
        if not found or not all(_indexed(path) for path in found):
            pending.append(f"{name}@{version}")
    return pending


def _load_assemblies() -> None:
    provider_bindings.install()  # the provider's assembly without its 2,135 Python modules
    for package in ASSEMBLY_MODULES:
        importlib.import_module(f"{package}._jsii")


def warm(*, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[tuple[str, str]]:
    """Load every assembly into the project's cache and wait for their indexes; returns them."""
    root = cache_root()
    if os.environ.get("JSII_RUNTIME_PACKAGE_CACHE", "enabled").lower() != "enabled":
        raise RuntimeError("JSII_RUNTIME_PACKAGE_CACHE disables jsii's package cache: unset it to warm the cache")
    loaded = assemblies()
    if not index_pending(root, loaded):
        return loaded  # warm already (e.g. restored by CI): no Node start
    _load_assemblies()
    if not _runtime_builds_indexes():
        return loaded  # extracted is as warm as this jsii gets
    deadline = time.monotonic() + timeout_s
    while pending := index_pending(root, loaded):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"jsii did not finish indexing {', '.join(pending)} in {root} within {timeout_s:.0f} s; "
                "run make setup again (a busy machine may need longer: --timeout)"
            )
        time.sleep(POLL_S)  # jsii's worker thread, in the Node runtime this process keeps alive
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.jsii_cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds (default: %(default)s)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        loaded = warm(timeout_s=args.timeout)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    names = ", ".join(f"{name}@{version}" for name, version in loaded)
    print(f"jsii cache warm in {time.perf_counter() - started:.1f} s: {names} ({cache_root()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
