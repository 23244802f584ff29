"""tools/slides.py (``make slides``): what each deck holds, without npm or a browser.

Every notebook's deck has 10-20 slides, a title, its learning objectives, every figure the
notebook stores (with its alt text) and its summary's claims; the rendered page loads
reveal.js and MathJax from the deck's own folder and names no CDN. The browser test
(tests/e2e/test_slides_browser.py) builds the decks with npm's reveal.js and looks at every
slide at 1280x720.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CDN = re.compile(r"unpkg\.com|jsdelivr|cdnjs|cloudflare|googleapis|code\.jquery\.com|cdn\.", re.I)
ALL_NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _load():
    from tools import slides

    return slides


slides = _load()
#: The lectures: every notebook that stores a figure (the quizzes get no deck).
NOTEBOOKS = [p for p in ALL_NOTEBOOKS if slides.has_figures(nbformat.read(p, as_version=4))]


def test_every_lecture_gets_a_deck():
    assert len(NOTEBOOKS) >= 10
    assert {p.name for p in NOTEBOOKS} >= {p.name for p in ALL_NOTEBOOKS
                                           if p.name[3:].startswith(("start", "feature", "covariate",
                                                                     "batchnorm", "training", "why",
                                                                     "convolutional", "limits"))}


def _pngs(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_deck_has_10_to_20_slides_with_every_figure(path):
    nb = nbformat.read(path, as_version=4)
    deck = slides.compose(nb)
    kinds = [s.kind for s in deck]
    assert 10 <= len(deck) <= 20, f"{path.name}: {len(deck)} slides"
    slides.check_deck(path.name, deck)
    assert kinds[0] == "title" and deck[0].markdown.startswith("# " + slides.read_sections(nb)[0])
    assert "objectives" in kinds and "claims" in kinds
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert ("exercises" in kinds) == bool(slides.exercise_titles(markdown))
    figures = [s for s in deck if s.kind == "figure"]
    assert len(figures) == _pngs(nb) > 0, f"{path.name}: {len(figures)} figure slides"
    for s in figures:
        alt = re.search(r'alt="([^"]*)"', s.markdown).group(1)
        assert alt and alt != "Figure", f"{path.name}: a figure slide without the cell's alt text"
    # The key claims: every bullet of the summary, in order, and nothing else.
    summary = next(sec for sec in slides.read_sections(nb)[2] if sec.title == "Summary")
    claims = [line[2:] for s in deck if s.kind == "claims" for line in s.markdown.splitlines()
              if line.startswith("- ")]
    assert claims == slides._bullets(summary.paragraphs) and claims


def test_rendered_deck_loads_nothing_from_a_cdn():
    nb = nbformat.read(ROOT / "notebooks" / "05_training_with_batchnorm.ipynb", as_version=4)
    deck = slides.compose(nb)
    page = slides.render(slides.deck_notebook(deck, "05 · Training with BN"))
    assert not CDN.search(page), CDN.search(page).group(0)
    loaded = re.findall(r'<(?:script|link|img)\b[^>]*?(?:src|href)="([^"]+)"', page)
    assert loaded and not [u for u in loaded if re.match(r"(https?:)?//", u)], loaded
    assert 'src="reveal.js/dist/reveal.js"' in page and 'href="reveal.js/dist/reveal.css"' in page
    assert 'src="mathjax/MathJax.js?config=' in page
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == _pngs(nb)
    assert page.count('<section') >= len(deck)
    for template in (ROOT / "tools" / "slides_template").rglob("*.*"):
        assert not re.search(r"https?://", template.read_text()), template


def test_lead_keeps_whole_sentences():
    text = "First sentence is here. " * 40
    short = slides.lead(text.strip(), limit=100)
    assert short.endswith(".") and 60 <= len(short) <= 130 and text.startswith(short)
    assert slides.lead("Short.") == "Short."


def test_a_deck_outside_the_range_is_refused():
    few = [slides.Slide("title", "# x")] * 9
    with pytest.raises(slides.SlidesError, match="9 slides, outside 10..20"):
        slides.check_deck("x.ipynb", few)
    slides.check_deck("x.ipynb", few + few[:1])


def test_too_many_slides_drop_section_leads_that_have_a_figure():
    cells = [nbformat.v4.new_markdown_cell("# 99 · Test\n\nWhat it is about.")]
    png = "iVBORw0KGgo="
    for k in range(1, 13):
        cells.append(nbformat.v4.new_markdown_cell(f"## {k}. Section\n\nLead of section {k}."))
        code = nbformat.v4.new_code_cell("plot()")
        code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png})]
        code.metadata["alt"] = f"figure {k}"
        cells.append(code)
    nb = nbformat.v4.new_notebook(cells=cells)
    deck = slides.compose(nb)
    assert len(deck) == 20
    assert sum(s.kind == "figure" for s in deck) == 12     # no figure is dropped
    assert [s.section for s in deck if s.kind == "section"] == [f"{k}. Section" for k in range(1, 8)]


def test_a_notebook_without_figures_gets_no_deck(tmp_path, monkeypatch):
    quiz = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 99 · Quiz\n\nQuestions.")])
    lecture = nbformat.read(ROOT / "notebooks" / "00_start_here.ipynb", as_version=4)
    for name, nb in (("98_quiz.ipynb", quiz), ("00_start_here.ipynb", lecture)):
        nbformat.write(nb, tmp_path / name)
    monkeypatch.setattr(slides, "install_reveal", lambda log=print: None)
    monkeypatch.setattr(slides, "_copy_assets", lambda out, pkg: None)
    out = tmp_path / "out"
    decks = slides.build(out, sorted(tmp_path.glob("*.ipynb")), log=lambda msg: None)
    assert [name for name, _, _ in decks] == ["00_start_here.html"]
    assert sorted(p.name for p in out.iterdir()) == ["00_start_here.html", "index.html"]
    assert 'href="00_start_here.html"' in (out / "index.html").read_text()
