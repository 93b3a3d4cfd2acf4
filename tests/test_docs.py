"""The README and docs/*.md: every relative link reaches a file, and every #anchor a heading in it."""
import glob
import os
import re

import pytest

from helpers import REPO

PAGES = ["README.md", *sorted(os.path.relpath(path, REPO) for path in glob.glob(os.path.join(REPO, "docs", "*.md")))]
# [text](target) and ![alt](target), outside code blocks and code spans.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(text):
    """The text without fenced code blocks and `code spans`, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path):
    """The anchors GitHub gives the headings of a Markdown file (lowercase, punctuation dropped, spaces
    to hyphens, a repeated one numbered)."""
    with open(path) as source:
        headings = re.findall(r"^#{1,6} +(.+?) *#* *$", re.sub(r"^```.*?^```", "", source.read(), flags=re.M | re.S),
                              flags=re.M)
    seen, found = {}, set()
    for heading in headings:
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(page):
    with open(os.path.join(REPO, page)) as source:
        targets = LINK.findall(prose(source.read()))
    return [target for target in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def broken_links(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = os.path.normpath(os.path.join(REPO, os.path.dirname(page), path)) if path else os.path.join(REPO, page)
        if not os.path.exists(file):
            broken.append(f"{target}: no file {os.path.relpath(file, REPO)}")
        elif anchor and (not file.endswith(".md") or anchor not in anchors(file)):
            broken.append(f"{target}: no heading #{anchor} in {os.path.relpath(file, REPO)}")
    return broken


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_reaches_a_file_and_heading(page):
    assert broken_links(page) == []


def test_the_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page: one (of two)\n\n## Usage\n\n## Usage\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/page.md#a-page-one-of-two) [ok](docs/page.md#usage-1) [gone](docs/gone.md) "
        "[no heading](docs/page.md#nothing) [web](https://example.com/x) `[code](docs/nope.md)`\n")
    monkeypatch.setitem(globals(), "REPO", str(tmp_path))
    assert broken_links("README.md") == ["docs/gone.md: no file docs/gone.md",
                                         "docs/page.md#nothing: no heading #nothing in docs/page.md"]


def test_every_docs_page_is_linked_from_the_readme():
    linked = {os.path.normpath(target.partition("#")[0]) for target in relative_links("README.md")}
    assert [page for page in PAGES[1:] if page not in linked] == []


def test_every_docs_page_says_first_what_a_reader_can_do_with_it():
    for page in PAGES[1:]:
        with open(os.path.join(REPO, page)) as source:
            title, blank, opening = source.read().split("\n")[:3]
        assert title.startswith("# ") and blank == "" and opening.startswith("Read this to "), page


def test_the_readme_says_what_each_test_command_covers():
    with open(os.path.join(REPO, "README.md")) as source:
        tests = source.read().split("\n## Tests\n", 1)[1].split("\n## ", 1)[0]
    assert "make test " in tests and "make test-fast" in tests and '-m "not slow"' in tests
