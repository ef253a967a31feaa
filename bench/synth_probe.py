"""Run `main.py` in this process and record its peak memory: `python -m bench.synth_probe RESULT.json`.

With `--empty-app`, synthesize a cdktf app without stacks instead (the floor: Python, the
jsii Node runtime, constructs and cdktf, no provider bindings), with the project's runtime
settings and a private temp directory as `main.py` has them.

The Python process: `VmHWM` from /proc/self/status, the peak resident set of this process's
own address space since exec. (`ru_maxrss` of RUSAGE_SELF would not do: Linux carries the
forking parent's peak over an exec, so a large harness would show through.) Node: the jsii
runtime's Node child is stopped and reaped by an atexit handler jsii registers when it
starts, i.e. after ours, so ours runs last and RUSAGE_CHILDREN then holds Node's peak
(`ru_maxrss` of the largest reaped child: Node, hundreds of MB, far above the Python
process's size when it forked Node). Both in KiB.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import runpy
import sys
from pathlib import Path

MAIN = Path(__file__).resolve().parent.parent / "main.py"


def _own_peak_kib() -> int:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line")


def _record(result_path: Path) -> None:
    own = _own_peak_kib()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result_path.write_text(json.dumps({"python_peak_kib": own, "node_peak_kib": children}), encoding="utf-8")


def _empty_app() -> None:
    from main import use_private_temp_dir, use_project_runtime

    use_project_runtime()
    use_private_temp_dir()
    from cdktf import App

    App(outdir=os.environ["CDKTF_OUTDIR"]).synth()


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[2:] not in ([], ["--empty-app"]):
        print("usage: python -m bench.synth_probe RESULT.json [--empty-app]", file=sys.stderr)
        return 2
    atexit.register(_record, Path(argv[1]))  # before main.py starts Node: runs after jsii's stop()
    if argv[2:] == ["--empty-app"]:
        _empty_app()
        return 0
    sys.argv = [str(MAIN)]
    try:
        runpy.run_path(str(MAIN), run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
        return 0 if code is None else code if isinstance(code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
