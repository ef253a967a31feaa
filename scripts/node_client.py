"""The Node loader (clients/node) for the Python side: the project's Node, and the package
compiled, for the tests and the benchmarks that run its reference server or its bench script."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

__all__ = ["NODE_CLIENT", "NodeClientError", "built", "node_binary"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NODE_CLIENT = PROJECT_ROOT / "clients" / "node"


class NodeClientError(RuntimeError):
    """Node or the Node loader's toolchain is missing, or the package does not compile."""


def node_binary() -> str:
    """The project's Node 22 (make setup), else the machine's."""
    project = PROJECT_ROOT / ".tooling" / "node" / "bin" / "node"
    found = str(project) if project.exists() else shutil.which("node")
    if found is None:
        raise NodeClientError("no node on PATH or in .tooling/node: run make setup")
    return found


@functools.cache
def built() -> Path:
    """clients/node compiled by its pinned tsc into clients/node/dist (once per process)."""
    tsc = NODE_CLIENT / "node_modules" / "typescript" / "bin" / "tsc"
    if not tsc.exists():
        raise NodeClientError("clients/node has no node_modules: run make setup")
    result = subprocess.run(  # noqa: S603 (argv built here)
        [node_binary(), str(tsc), "-p", "tsconfig.json"], cwd=NODE_CLIENT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise NodeClientError(f"clients/node does not compile:\n{result.stdout}{result.stderr}")
    return NODE_CLIENT / "dist"
