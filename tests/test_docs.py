"""The documentation's relative links: every one leads to a file of the repository, and every
`#anchor` to a heading of its target, named as GitHub names heading anchors."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: `[text](target)`; images (`![alt](target)`) match too. Titles and `<...>` targets are not used here.
_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def documentation_files(root: Path = ROOT) -> list[Path]:
    """The Markdown files whose links are checked: README, CONTRIBUTING, docs/ and the examples' READMEs."""
    files = [root / "README.md", root / "CONTRIBUTING.md"]
    files += sorted((root / "docs").rglob("*.md"))
    files += sorted((root / "examples").rglob("README.md"))
    return [path for path in files if path.is_file()]


def _prose_lines(text: str) -> Iterable[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, punctuation dropped, spaces as '-'."""
    text = _INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link counts as its text
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose_lines(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of `path` that leads nowhere, as `file:line: target (why)`."""
    problems: list[str] = []
    root = root.resolve()
    where = path.resolve().relative_to(root)
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        for match in _LINK.finditer(_INLINE_CODE.sub("", line)):
            target = match.group(1)
            if _SCHEME.match(target):
                continue  # http:, https:, mailto: ...: not ours to check
            file_part, _, anchor = target.partition("#")
            destination = (path.parent / file_part).resolve() if file_part else path
            if root not in destination.parents and destination != root:
                problems.append(f"{where}:{number}: {target} (outside the repository)")
            elif not destination.exists():
                problems.append(f"{where}:{number}: {target} (no such file)")
            elif anchor:
                if destination.is_dir() or destination.suffix != ".md":
                    problems.append(f"{where}:{number}: {target} (an anchor into a non-Markdown file)")
                elif anchor not in anchors(destination):
                    named = file_part or "this file"
                    problems.append(f"{where}:{number}: {target} (no heading #{anchor} in {named})")
    return problems


def test_documentation_links_resolve() -> None:
    files = documentation_files()
    assert ROOT / "README.md" in files and ROOT / "docs" / "README.md" in files
    problems = [problem for path in files for problem in broken_links(path)]
    assert not problems, "broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Sandbox and limits", "sandbox-and-limits"),
        ("Spin-style apps: HTTP, manifests, `wasikv up`", "spin-style-apps-http-manifests-wasikv-up"),
        ("Counters (`wasikv_sdk.counters`)", "counters-wasikv_sdkcounters"),
        ("HTTP: `wasikv up` against `wasmtime serve`", "http-wasikv-up-against-wasmtime-serve"),
    ],
)
def test_slug_follows_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_broken_links_are_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# A guide\n\n## Step one\n\n## Step one\n")
    (tmp_path / "README.md").write_text(
        "# Top\n\n"
        "[ok](docs/guide.md#step-one) [ok too](docs/guide.md#step-one-1) [self](#top) [web](https://x.org/#y)\n"
        "[missing file](docs/nothing.md) [missing anchor](docs/guide.md#step-two)\n"
        "[missing here](#bottom) [dir anchor](docs#a) [outside](../elsewhere.md)\n"
        "```\n[in code](nowhere.md)\n```\n"
        "`[inline code](nowhere.md)`\n"
    )
    problems = broken_links(tmp_path / "README.md", root=tmp_path)
    assert [problem.split(" ", 2)[1] for problem in problems] == [
        "docs/nothing.md",
        "docs/guide.md#step-two",
        "#bottom",
        "docs#a",
        "../elsewhere.md",
    ]
