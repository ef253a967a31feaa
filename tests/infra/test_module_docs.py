"""How a module documents itself: its README's reference tables are generated from the code
(scripts/module_docs.py), so a README that no longer matches fails the suite (and `make lint`);
its main.tf, variables.tf and outputs.tf share one banner per concern."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from scripts import module_docs
from tests.conftest import PROJECT_ROOT

MODULES = sorted(readme.parent.name for readme in (PROJECT_ROOT / "modules").glob("*/README.md"))
BANNER = re.compile(r"^#{80}\n# (?P<concern>.+)\n#{80}$", re.MULTILINE)


@pytest.mark.parametrize("module", MODULES)
def test_main_variables_and_outputs_share_one_banner_per_concern(module: str) -> None:
    banners = {
        name: BANNER.findall((PROJECT_ROOT / "modules" / module / name).read_text(encoding="utf-8"))
        for name in ("main.tf", "variables.tf", "outputs.tf")
    }
    assert banners["main.tf"], module
    assert banners["variables.tf"] == banners["outputs.tf"] == banners["main.tf"], banners
    assert len(set(banners["main.tf"])) == len(banners["main.tf"]), "one banner per concern"


@pytest.mark.parametrize("module", MODULES)
def test_readme_tables_match_the_code(module: str) -> None:
    current, wanted = module_docs.update(PROJECT_ROOT / "modules" / module)
    assert current == wanted, f"modules/{module}/README.md is out of date: run `make module-docs`"


@pytest.fixture
def module_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "secrets"
    shutil.copytree(PROJECT_ROOT / "modules" / "secrets", copy, ignore=shutil.ignore_patterns(".terraform*"))
    return copy


def test_check_fails_on_a_new_input_until_the_readme_is_regenerated(
    module_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (module_copy / "variables.tf").open("a", encoding="utf-8") as variables:
        variables.write('\nvariable "new_input" {\n  description = "A new input."\n  type        = bool\n}\n')
    assert module_docs.main(["--check", str(module_copy)]) == module_docs.EXIT_OUT_OF_DATE
    assert "README.md: out of date" in capsys.readouterr().err
    assert "new_input" not in (module_copy / "README.md").read_text(encoding="utf-8")

    assert module_docs.main([str(module_copy)]) == 0
    readme = (module_copy / "README.md").read_text(encoding="utf-8")
    assert "| `new_input` | A new input. | `bool` | n/a | yes |" in readme
    assert module_docs.main(["--check", str(module_copy)]) == 0


def test_check_fails_on_a_changed_output_description(module_copy: Path) -> None:
    outputs = module_copy / "outputs.tf"
    outputs.write_text(outputs.read_text(encoding="utf-8").replace("Name of the secret.", "The secret's name."))
    assert module_docs.main(["--check", str(module_copy)]) == module_docs.EXIT_OUT_OF_DATE


def test_only_the_text_between_the_markers_is_generated(module_copy: Path) -> None:
    readme = module_copy / "README.md"
    prose, _ = readme.read_text(encoding="utf-8").split(module_docs.BEGIN)
    readme.write_text(f"{prose}{module_docs.BEGIN}\nstale\n{module_docs.END}\nafter\n", encoding="utf-8")
    assert module_docs.main([str(module_copy)]) == 0
    regenerated = readme.read_text(encoding="utf-8")
    assert regenerated.startswith(prose)
    assert regenerated.endswith(f"{module_docs.END}\nafter\n")
    assert "stale" not in regenerated
    assert "## Inputs" in regenerated


def test_a_readme_without_markers_is_an_error(module_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (module_copy / "README.md").write_text("# a module\n", encoding="utf-8")
    assert module_docs.main(["--check", str(module_copy)]) == module_docs.EXIT_ERROR
    assert f"needs one {module_docs.BEGIN} line" in capsys.readouterr().err


def test_an_undocumented_input_is_an_error(module_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (module_copy / "variables.tf").open("a", encoding="utf-8") as variables:
        variables.write('\nvariable "undocumented" {\n  type = string\n}\n')
    assert module_docs.main(["--check", str(module_copy)]) == module_docs.EXIT_ERROR
    assert "variable 'undocumented' has no description" in capsys.readouterr().err
