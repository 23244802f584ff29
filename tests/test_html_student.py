"""`make html EDITION=student` (tools/build_html.py --edition student): a site for courses
that grade, with no solution text, graded test or recall answer in any page or download.

Built from the stored outputs of notebooks 03 and 04 (no execution), both editions: the
solutions edition is the control that shows each search finds what it looks for.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import nbformat
import pytest

from tools import build_html, make_student, nbgrader_cells

ROOT = Path(__file__).resolve().parents[1]

SOURCES = [ROOT / "notebooks" / f"{name}.ipynb" for name in ("03_batchnorm_forward", "04_batchnorm_backward")]
ANSWER_SUMMARY = re.compile(r"<summary>\s*(?:<b>)?\s*Answer", re.I)


def _page_text(page: str) -> str:
    """What a reader sees: the HTML without tags (code is split into highlighted spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _download_text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells) + json.dumps([c.get("outputs", []) for c in nb.cells])


def _solution_lines(path: Path) -> set[str]:
    """The lines found only in the solution regions of a course notebook (not elsewhere in
    its student edition): what must not leak."""
    nb = nbformat.read(path, as_version=4)
    student, _ = make_student.student_notebook(nb, path.name)
    elsewhere = "\n".join(c.source for c in student.cells)
    lines = set()
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if line.strip() == build_html.SOLUTION_BEGIN:
                inside = True
            elif line.strip() == build_html.SOLUTION_END:
                inside = False
            elif inside and len(line.strip()) >= 12 and line.strip() not in elsewhere:
                lines.add(line.strip())
    return lines


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    root = tmp_path_factory.mktemp("sites")
    for edition in build_html.EDITIONS:
        manifest = build_html.build(root / edition, SOURCES, execute=False, edition=edition,
                                    log=lambda *a: None)
        assert manifest["edition"] == edition
    return root


def _texts(site: Path) -> dict[str, str]:
    texts = {p.name: _page_text(p.read_text(encoding="utf-8")) for p in site.glob("*.html")}
    texts.update({p.name: _download_text(p) for p in site.glob("*.ipynb")})
    return texts


def _raw(site: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(site.glob("*.html")))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_no_solution_line_in_any_page_or_download(sites, path):
    lines = _solution_lines(path)
    assert len(lines) >= 10, lines
    solutions = _texts(sites / "solutions")
    found = {line for line in lines if any(line in text for text in solutions.values())}
    assert found == lines               # the control: the solutions edition shows every line
    leaked = {(name, line) for name, text in _texts(sites / "student").items() for line in lines
              if line in text}
    assert not leaked


def test_no_graded_test_or_recall_answer_in_the_student_site(sites):
    header = nbgrader_cells.TEST_HEADER.lstrip("# ")
    solutions, student = _texts(sites / "solutions"), _texts(sites / "student")
    assert any(header in text for text in solutions.values())          # the downloads
    assert ANSWER_SUMMARY.search(_raw(sites / "solutions"))
    assert not any(header in text or "BEGIN SOLUTION" in text or "HIDDEN TESTS" in text
                   for text in student.values())
    assert not ANSWER_SUMMARY.search(_raw(sites / "student"))
    assert not any(ANSWER_SUMMARY.search(text) for text in student.values())


def test_the_student_pages_show_the_stubs_and_keep_the_other_outputs(sites):
    page = _page_text((sites / "student" / "03_batchnorm_forward.html").read_text(encoding="utf-8"))
    assert page.count("raise NotImplementedError(") == 4
    assert "✓ Exercise 3.2" not in page                # an exercise's output is cleared
    solutions = _page_text((sites / "solutions" / "03_batchnorm_forward.html").read_text(encoding="utf-8"))
    assert "✓ Exercise 3.2" in solutions
    assert _raw(sites / "student").count("<img") == _raw(sites / "solutions").count("<img") > 0


def test_an_unknown_edition_is_refused(tmp_path):
    with pytest.raises(build_html.BuildError, match="edition must be one of solutions, student"):
        build_html.build(tmp_path / "site", SOURCES[:1], execute=False, edition="teacher")
