"""README's promises: its Python examples run, every relative link in the docs lands, and it stays short."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_MODEL = "runs/quickstart/model"  # what `invoke quickstart` trains; the tests use the tiny model instead

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def prose(text: str) -> str:
    """The Markdown outside fenced code blocks (where `#` starts a comment, not a heading)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub writes it: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for heading in HEADING.findall(prose(path.read_text(encoding="utf-8"))):
        base = slug(heading)
        name, n = base, 0
        while name in found:  # GitHub numbers repeated headings: name, name-1, name-2...
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def relative_links(path: Path) -> list[str]:
    links = LINK.findall(prose(path.read_text(encoding="utf-8")))
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link)]  # http:, mailto: ...


def test_readme_python_examples_run_against_the_tiny_model(tiny_model_dir, monkeypatch, capsys):
    """Each ```python block of README runs, in order, in one namespace, and prints summaries."""
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3 and README_MODEL in blocks[0], "README's API examples moved"
    monkeypatch.chdir(ROOT)  # the examples read data/test.jsonl, as a reader in a checkout would
    namespace: dict[str, object] = {}
    printed: list[list[str]] = []
    for number, block in enumerate(blocks, 1):
        code = block.replace(README_MODEL, str(tiny_model_dir))
        exec(compile(code, f"README.md python block {number}", "exec"), namespace)
        printed.append(capsys.readouterr().out.splitlines())
        assert printed[-1] and all(line.strip() for line in printed[-1]), f"block {number} printed {printed[-1]!r}"

    from dialogsum_batch import Summarizer

    assert isinstance(namespace["summarizer"], Summarizer)
    # the streaming example: its two chats, then one line per record of data/test.jsonl, in file order
    records = (ROOT / "data" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    ids = ["0", "c2", *(json.loads(line)["id"] for line in records)]
    assert [line.split(" ", 1)[0] for line in printed[1]] == ids
    assert printed[2][-1] == "<input>:2: dialogue is empty"  # on_error="row": the blank chat's error row


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_points_to_an_existing_file(page):
    broken = []
    for link in relative_links(page):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{link}: no heading with that anchor in {path.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_readme_links_every_page_in_docs():
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in relative_links(README)}
    assert not [page.name for page in DOCS if page.resolve() not in linked]


def test_readme_is_a_ten_minute_read():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert 150 <= len(lines) <= 260, f"README.md has {len(lines)} lines"
    performance = README.read_text(encoding="utf-8").split("## Performance", 1)[1].split("\n## ", 1)[0]
    assert "bench/results/bench_default.md" in performance  # the figures name the file they come from


def test_slug_matches_github_anchors():
    assert slug("How `--format auto` decides") == "how---format-auto-decides"
    assert slug("Without an export step: the conversion cache") == "without-an-export-step-the-conversion-cache"
    assert slug("Fine-tuning on several GPUs") == "fine-tuning-on-several-gpus"
