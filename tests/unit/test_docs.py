"""The docs stay usable: the README stays short, every relative link and anchor resolves,
and no tracked doc or code speaks about how the work was organised instead of the product."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 200

# ---------------------------------------------------------------- process words

# Words about issues, reviews, sessions or earlier states of the tree, not about the product.
# Each pattern is narrow on purpose, because the product has legitimate uses of the same words:
# an OIDC "issuer", STS "issues" credentials, an AWS "role session" or boto3/pytest "session",
# "reviewed" checkov skips and "required reviewers" on a GitHub environment, `random.seed`,
# "an earlier attempt" of a Lambda retry, a secret's "first version". `LEGITIMATE` below lists
# sentences that must keep passing.
PROCESS_PATTERNS: dict[str, str] = {
    r"\bissues?\s*#?\s*\d+": "a tracker issue by number",
    r"\b(?:the|this|that|our)\s+(?:issue|ticket|brief)\b": "the request behind the work",
    r"\bstyle\s+guide\b": "the contributors' style guide",
    r"\bSTYLE\.md\b": "the contributors' style guide",
    r"\b(?:earlier|previous|older|initial)\s+(?:tree|draft|revision|iteration)s?\b": "an earlier state of the tree",
    r"\b(?:in|since|from)\s+the\s+first\s+version\b": "an earlier state of the tree",
    r"\bfirst\s+version\s+of\s+(?:the|this)\s+(?:code|codebase|repo|repository|project|tree|readme|docs?)\b": (
        "an earlier state of the tree"
    ),
    r"\blessons?\s+from\b": "an earlier state of the tree",
    r"\bthe\s+seed\b|\bseed\s+(?:repo|repository|tree|code|project|readme)\b": "the starting tree",
    r"\b(?:work|coding|agent|review|planning)\s+sessions?\b": "how the work was done",
    r"\b(?:reviewers?|review)\s+(?:asked|said|found|wanted|flagged|noted|comments?)\b": "a review of the work",
    r"\bacceptance\s+criteri(?:a|on)\b": "the request behind the work",
    r"\b(?:we|I)\s+(?:were|was)\s+asked\b|\bas\s+(?:asked|requested)\b": "the request behind the work",
}
PROCESS_WORDS = re.compile("|".join(f"(?:{pattern})" for pattern in PROCESS_PATTERNS), re.IGNORECASE)

PROCESS_SENTENCES = [
    "The issue asks for a README a newcomer reads in five minutes.",
    "Fixed as issue 7 describes; see also issue #12.",
    "Constructs follow what the style guide sketches.",
    "See STYLE.md for the naming rules.",
    "An earlier tree failed this goal (0.56 s).",
    "Lessons from the first version: keep the composition root short.",
    "The seed repository attached SecretsManagerReadWrite.",
    "Found in the previous work session.",
    "The reviewer asked for a pinned-address test.",
    "This meets the acceptance criteria.",
    "We were asked to keep the old target; kept as requested.",
]
LEGITIMATE = [
    "The trust policy names the OIDC issuer of your CI.",
    "STS issues a token for the role session.",
    "role-session-name: plan-${{ matrix.env }}-${{ github.run_id }}",
    "The principal running this plan (an assumed role's session resolves to its role).",
    "One cdktf synthesis per session; a session-scoped pytest fixture.",
    "A boto3 session with the fake credentials.",
    "A snapshot is a reviewed artifact, not a rubber stamp.",
    "Environment protection rules (required reviewers, wait timer) hold this job.",
    "The reason must let the reviewer verify the claim; reviewed_by: platform-security.",
    "Refresh jitter comes from random, seeded, so runs repeat: random.seed(SEED).",
    "return  # an earlier attempt wrote it",
    "createSecret refuses to run before the secret's first version exists.",
    "test_seed_anti_patterns_are_absent",
    "Lean loading of the provider bindings (hashicorp/terraform-cdk#3753).",
]

TEXT_SUFFIXES = {".md", ".py", ".tf", ".hcl", ".toml", ".mjs", ".cjs", ".ts", ".sh", ".yml", ".yaml"}
TEXT_NAMES = {"Makefile", ".ci/run"}
# This file holds the sample sentences above.
NOT_SCANNED = {"tests/unit/test_docs.py"}


def project_files() -> list[str]:
    """Tracked files, plus new ones not ignored (so a new page is checked before its commit)."""
    git = shutil.which("git")
    assert git is not None, "git is not on PATH: these checks read the file list from git"
    listing = subprocess.run(
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listing.split("\0") if name and (PROJECT_ROOT / name).is_file()})


def scanned_files() -> list[str]:
    return [
        name
        for name in project_files()
        if (Path(name).suffix in TEXT_SUFFIXES or name in TEXT_NAMES or Path(name).name in TEXT_NAMES)
        and name not in NOT_SCANNED
    ]


def process_words(text: str) -> list[tuple[int, str]]:
    """(line number, matched words) for each process phrase in `text`."""
    return [
        (number, match.group(0))
        for number, line in enumerate(text.splitlines(), start=1)
        for match in PROCESS_WORDS.finditer(line)
    ]


@pytest.mark.parametrize("sentence", PROCESS_SENTENCES)
def test_the_patterns_catch_process_sentences(sentence: str) -> None:
    assert process_words(sentence), sentence


@pytest.mark.parametrize("sentence", LEGITIMATE)
def test_the_patterns_leave_product_words_alone(sentence: str) -> None:
    assert process_words(sentence) == []


def test_docs_and_code_speak_about_the_product_only() -> None:
    files = scanned_files()
    assert "README.md" in files
    assert "Makefile" in files
    assert ".ci/run" in files
    found = [
        f"{name}:{number}: {words!r}"
        for name in files
        for number, words in process_words((PROJECT_ROOT / name).read_text(encoding="utf-8"))
    ]
    assert found == [], "words about how the work was organised, not about the product:\n" + "\n".join(found)


# ---------------------------------------------------------------- links and anchors

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`+[^`]*`+")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
LINK_TEXT = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def linked_docs() -> list[Path]:
    return [
        PROJECT_ROOT / "README.md",
        PROJECT_ROOT / "BENCHMARKS.md",
        *sorted((PROJECT_ROOT / "docs").glob("*.md")),
        PROJECT_ROOT / "modules" / "secrets" / "README.md",
    ]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fence = [], ""
    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence:
            if opening and opening.group(1) == fence:
                fence = ""
        elif opening:
            fence = opening.group(1)
        else:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lowercase, punctuation but `-` and `_` dropped,
    spaces turned into `-`."""
    text = LINK_TEXT.sub(r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        heading = HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


@dataclass(frozen=True)
class Link:
    source: Path
    line: int
    target: str


def relative_links(path: Path) -> list[Link]:
    links = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        prose = INLINE_CODE.sub("", line)
        targets = [match.group(1) for match in INLINE_LINK.finditer(prose)]
        definition = REFERENCE_DEFINITION.match(prose)
        if definition:
            targets.append(definition.group(1))
        links += [Link(path, number, target) for target in targets if not SCHEME.match(target)]
    return links


def broken(link: Link) -> str | None:
    """Why the link does not resolve, or None."""
    file_part, _, anchor = link.target.partition("#")
    target = (link.source.parent / file_part).resolve() if file_part else link.source
    if not target.is_relative_to(PROJECT_ROOT):
        return "points outside the repository"
    if not target.exists():
        return f"{target.relative_to(PROJECT_ROOT)} does not exist"
    if anchor:
        if target.suffix != ".md":
            return "an anchor into a file that is not Markdown"
        if anchor not in anchors(target):
            return f"no heading #{anchor} in {target.relative_to(PROJECT_ROOT)}"
    return None


def test_slugs_follow_githubs_rules() -> None:
    assert slug("Who may do what: the authorization matrix") == "who-may-do-what-the-authorization-matrix"
    assert slug("`block_public_policy` and the SCP that makes it hold") == (
        "block_public_policy-and-the-scp-that-makes-it-hold"
    )
    assert slug("Each guarantee, and the test that proves it (all run by `make test`)") == (
        "each-guarantee-and-the-test-that-proves-it-all-run-by-make-test"
    )
    assert slug("1. A construct in `stacks/`") == "1-a-construct-in-stacks"
    assert slug("See [the matrix](docs/x.md)") == "see-the-matrix"


def test_the_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    page = PROJECT_ROOT / "docs" / "rotation.md"
    assert broken(Link(page, 1, "clients.md#how-fast-a-change-takes-effect")) is None
    assert broken(Link(page, 1, "#rolling-back")) is None
    assert broken(Link(page, 1, "no-such-page.md")) is not None
    assert broken(Link(page, 1, "clients.md#no-such-heading")) is not None
    assert broken(Link(page, 1, "../../outside.md")) is not None
    sample = tmp_path / "sample.md"
    sample.write_text("# Title\n\n```sh\n# not a heading\n[not](a-link.md)\n```\n[x](`code`) `[y](z.md)` [z](#title)\n")
    assert anchors(sample) == {"title"}
    assert [link.target for link in relative_links(sample)] == ["#title"]


def test_every_relative_link_and_anchor_resolves() -> None:
    failures = [
        f"{link.source.relative_to(PROJECT_ROOT)}:{link.line}: ({link.target}) {reason}"
        for path in linked_docs()
        for link in relative_links(path)
        if (reason := broken(link)) is not None
    ]
    assert failures == [], "\n".join(failures)


def test_the_readme_stays_short() -> None:
    lines = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move detail into a page in docs/"
