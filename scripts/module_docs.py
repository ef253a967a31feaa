"""The reference tables of a Terraform module's README, generated from its code.

    python -m scripts.module_docs                     # rewrite every modules/*/README.md
    python -m scripts.module_docs --check             # exit 1 if any is out of date (make lint)
    python -m scripts.module_docs modules/secrets     # only these module directories

Like terraform-docs (which is a Go binary this project does not install), it replaces what lies
between `<!-- BEGIN_TF_DOCS -->` and `<!-- END_TF_DOCS -->` in the module's README.md with the
Requirements, Resources, Inputs and Outputs tables read from its *.tf files; everything outside
the markers is the README's own prose. The files are read with python-hcl2, not by pattern.

Exit 0: every README is up to date (or was rewritten). 1: with --check, a README is out of date.
2: a module cannot be documented (no README markers, a file that does not parse).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions
from lark.exceptions import LarkError

__all__ = ["BEGIN", "END", "ModuleDocsError", "main", "render", "update"]

BEGIN = "<!-- BEGIN_TF_DOCS -->"
END = "<!-- END_TF_DOCS -->"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXIT_OUT_OF_DATE = 1
EXIT_ERROR = 2

# Plain values, not round-trippable HCL: strings unquoted and unescaped, no comments.
_READ = SerializationOptions(with_comments=False, strip_string_quotes=True, explicit_blocks=False)


class ModuleDocsError(Exception):
    """A module cannot be documented. The message names the file and what to do."""


@dataclass(frozen=True)
class _Variable:
    name: str
    description: str
    type: str
    default: Any
    required: bool
    flags: tuple[str, ...]  # ephemeral, sensitive


@dataclass(frozen=True)
class _Output:
    name: str
    description: str


def _blocks(module: Path) -> dict[str, list[dict[str, Any]]]:
    """Every top-level block of the module's *.tf files, by block type (variable, output, ...)."""
    blocks: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(module.glob("*.tf")):
        try:
            parsed = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_READ)
        except LarkError as error:  # the message carries the line and column
            raise ModuleDocsError(f"{path}: cannot parse: {error}") from None
        for block_type, entries in parsed.items():
            blocks.setdefault(block_type, []).extend(entries)
    return blocks


def _labelled(entries: Iterable[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(label, body) for entry in entries for label, body in entry.items()]


def _expression(value: Any) -> str:
    """An HCL expression as written (python-hcl2 wraps non-literal ones in `${...}`)."""
    text = str(value)
    return text[2:-1] if text.startswith("${") and text.endswith("}") else text


def _literal(value: Any) -> str:
    """A default value as HCL: null, true, 30, "text", [], {}."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return _expression(value)
    return json.dumps(value, ensure_ascii=False)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`"


def _type_cell(variable: _Variable) -> str:
    flags = f" ({', '.join(variable.flags)})" if variable.flags else ""
    return f"{_code(variable.type)}{flags}"


def _requirements(blocks: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for terraform in blocks.get("terraform", []):
        if "required_version" in terraform:
            found.append(("terraform", str(terraform["required_version"])))
        for providers in terraform.get("required_providers", []):
            for name, requirement in providers.items():
                version = requirement.get("version", "") if isinstance(requirement, dict) else str(requirement)
                found.append((name, str(version)))
    return found


def _resources(blocks: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    found = [
        *((f"{kind}.{name}", "resource") for kind, named in _labelled(blocks.get("resource", [])) for name in named),
        *((f"{kind}.{name}", "data source") for kind, named in _labelled(blocks.get("data", [])) for name in named),
    ]
    return sorted(found)


def _variables(blocks: dict[str, list[dict[str, Any]]], module: Path) -> list[_Variable]:
    variables = []
    for name, body in _labelled(blocks.get("variable", [])):
        if not body.get("description"):
            raise ModuleDocsError(f"{module}: variable {name!r} has no description: add one (it is the docs)")
        variables.append(
            _Variable(
                name=name,
                description=str(body["description"]),
                type=_expression(body.get("type", "any")),
                default=body.get("default"),
                required="default" not in body,
                flags=tuple(flag for flag in ("ephemeral", "sensitive") if body.get(flag) is True),
            )
        )
    return sorted(variables, key=lambda variable: variable.name)


def _outputs(blocks: dict[str, list[dict[str, Any]]], module: Path) -> list[_Output]:
    outputs = []
    for name, body in _labelled(blocks.get("output", [])):
        if not body.get("description"):
            raise ModuleDocsError(f"{module}: output {name!r} has no description: add one (it is the docs)")
        outputs.append(_Output(name=name, description=str(body["description"])))
    return sorted(outputs, key=lambda output: output.name)


def render(module: Path) -> str:
    """The generated part of the module's README, markers excluded."""
    blocks = _blocks(module)
    lines = ["## Requirements", "", "| Name | Version |", "|------|---------|"]
    lines += [f"| {_code(name)} | {_code(version)} |" for name, version in _requirements(blocks)]
    lines += ["", "## Resources", "", "| Name | Type |", "|------|------|"]
    lines += [f"| {_code(address)} | {kind} |" for address, kind in _resources(blocks)]
    lines += [
        "",
        "## Inputs",
        "",
        "| Name | Description | Type | Default | Required |",
        "|------|-------------|------|---------|:--------:|",
    ]
    lines += [
        f"| {_code(v.name)} | {_cell(v.description)} | {_type_cell(v)} | "
        f"{'n/a' if v.required else _code(_literal(v.default))} | {'yes' if v.required else 'no'} |"
        for v in _variables(blocks, module)
    ]
    lines += ["", "## Outputs", "", "| Name | Description |", "|------|-------------|"]
    lines += [f"| {_code(o.name)} | {_cell(o.description)} |" for o in _outputs(blocks, module)]
    return "\n".join(lines)


def update(module: Path) -> tuple[str, str]:
    """(README as it is, README as it should be)."""
    readme = module / "README.md"
    try:
        current = readme.read_text(encoding="utf-8")
    except OSError as error:
        raise ModuleDocsError(f"{readme}: cannot read: {error.strerror}") from None
    if current.count(BEGIN) != 1 or current.count(END) != 1 or current.index(BEGIN) > current.index(END):
        raise ModuleDocsError(f"{readme}: needs one {BEGIN} line followed by one {END} line where the tables go")
    head, rest = current.split(BEGIN)
    _, tail = rest.split(END)
    return current, f"{head}{BEGIN}\n{render(module)}\n{END}{tail}"


def _modules(arguments: Sequence[str]) -> list[Path]:
    if arguments:
        return [Path(argument) for argument in arguments]
    return sorted(readme.parent for readme in (PROJECT_ROOT / "modules").glob("*/README.md"))


def _shown(path: Path) -> Path:
    return path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.module_docs", description="Generate the tables of modules/*/README.md from the code."
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a README is out of date")
    parser.add_argument("modules", nargs="*", help="module directories (default: every modules/*/ with a README.md)")
    args = parser.parse_args(argv)
    status = 0
    for module in (path.resolve() for path in _modules(args.modules)):
        try:
            current, wanted = update(module)
        except ModuleDocsError as error:
            print(f"error: {error}", file=sys.stderr)
            status = EXIT_ERROR
            continue
        readme = _shown(module / "README.md")
        if current == wanted:
            continue
        if args.check:
            print(f"{readme}: out of date with the module's code: run `make module-docs`", file=sys.stderr)
            status = max(status, EXIT_OUT_OF_DATE)
        else:
            (module / "README.md").write_text(wanted, encoding="utf-8")
            print(f"{readme}: updated")
    return status


if __name__ == "__main__":
    sys.exit(main())
