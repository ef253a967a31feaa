"""The machine and toolchain a run was measured on."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
from pathlib import Path

__all__ = ["machine_info"]


def _first_line(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not found"
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)  # noqa: S603
    lines = (completed.stdout or completed.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def _proc_field(path: str, field: str) -> str:
    try:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == field:
                return value.strip()
    except OSError:
        pass
    return "unknown"


def machine_info() -> dict[str, str]:
    memory = _proc_field("/proc/meminfo", "MemTotal")
    if memory.endswith(" kB"):
        memory = f"{int(memory.removesuffix(' kB')) / 1024 / 1024:.1f} GiB"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "node": _first_line(["node", "--version"]),
        "terraform": _first_line(["terraform", "version"]),
    }
