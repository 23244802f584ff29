"""Every figure of the course has alt text that says what it shows (issue 18).

The convention (``tools/figure_alt.py``): a code cell that shows figures carries cell
metadata ``"alt"``, a string for one figure or a list with one string per figure in output
order; PNG outputs and widget views are figures. ``python tools/figure_alt.py`` lists the
cells that still lack it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tools import figure_alt as fa

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))




# --------------------------------------------------------------------------- the course

@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return nbformat.read(request.param, as_version=4)


def test_every_figure_has_its_own_alt_text(notebook):
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        figures = [o for o in cell.outputs
                   if "image/png" in o.get("data", {}) or fa.WIDGET_VIEW in o.get("data", {})]
        alt = cell.metadata.get("alt")
        if not figures:
            assert alt is None, f"cell {index} has alt text but shows no figure"
            continue
        assert alt is not None, f"cell {index} shows {len(figures)} figure(s) without alt text"
        texts = [alt] if isinstance(alt, str) else alt
        assert isinstance(texts, list) and len(texts) == len(figures), \
            f"cell {index}: {len(texts) if isinstance(texts, list) else texts!r} alt text(s) " \
            f"for {len(figures)} figure(s)"
    assert [str(p) for p in fa.alt_problems(notebook)] == []


def test_alt_texts_say_what_the_figure_shows(notebook):
    for index, cell in enumerate(notebook.cells):
        for text in fa.alt_texts(cell) or []:
            assert isinstance(text, str) and len(" ".join(text.split())) >= 40, (index, text)
            assert "no description has been provided" not in text.lower(), index


# --------------------------------------------------------------------------- the tool

def _cell(n_png=1, widget=False, alt=None, source="plt.show()"):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="a number\n")]
    png = {"image/png": "iVBO", "text/plain": "<Figure>"}
    cell.outputs += [nbformat.v4.new_output("display_data", data=dict(png)) for _ in range(n_png)]
    if widget:
        cell.outputs.append(nbformat.v4.new_output(
            "display_data", data={fa.WIDGET_VIEW: {"model_id": "m", "version_major": 2, "version_minor": 0},
                                  "text/plain": "interactive(...)"}))
    if alt is not None:
        cell.metadata["alt"] = alt
    return cell


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), *cells]
    return nb


GOOD = "Test accuracy (0 to 1) against the learning rate on a log axis, with BN and without"
GOOD2 = "Histogram of the BN output: mean 0 and standard deviation 1 for every batch size"


def test_a_course_figure_without_alt_text_is_reported():
    problems = fa.alt_problems(_nb(_cell(source='ax.set_title("BN trains faster")\nplt.show()')))
    assert [(p.cell, p.figures, p.title, p.message) for p in problems] == [
        (1, 1, "BN trains faster", "no alt text")]


@pytest.mark.parametrize(("cell", "fragment"), [
    (_cell(2, alt=GOOD), "1 alt text(s) for 2 figure(s)"),
    (_cell(1, alt=[GOOD, GOOD2]), "2 alt text(s) for 1 figure(s)"),
    (_cell(1, widget=True, alt=GOOD), "1 alt text(s) for 2 figure(s)"),
    (_cell(1, alt="A plot."), "characters"),
    (_cell(1, alt="No description has been provided for this image"), "placeholder"),
    (_cell(1, alt="Figure drawn by the widget in its initial state."), "placeholder"),
    (_cell(1, alt="TODO: describe the learning-rate sweep figure here"), "placeholder"),
    (_cell(1, alt=42), "must be a string"),
    (_cell(0, alt=GOOD), "shows no figure"),
])
def test_unusable_alt_text_is_reported(cell, fragment):
    problems = fa.alt_problems(_nb(cell))
    assert len(problems) == 1 and fragment in problems[0].message, problems


def test_copied_alt_text_is_reported():
    problems = fa.alt_problems(_nb(_cell(alt=GOOD), _cell(alt=GOOD)))
    assert [(p.cell, p.message) for p in problems] == [(2, "alt text repeats the one of cell 1")]


def test_good_alt_text_passes():
    nb = _nb(_cell(alt=GOOD), _cell(1, widget=True, alt=[GOOD2, GOOD + " (widget)"]),
             nbformat.v4.new_code_cell("x = 1"))
    assert fa.alt_problems(nb) == []


@pytest.mark.parametrize(("source", "title"), [
    ('fig.suptitle("Four networks at init")', "Four networks at init"),
    ("ax.set(xlabel='x', title=f'BN at m = {m}')", "BN at m = {m}"),
    ('ax.set_title(\n    "BN keeps training"\n    " at large lr")', "BN keeps training"),
    ("plot_sweeps(ax, lr_sweeps)", None),
])
def test_figure_title_is_read_from_the_source(source, title):
    assert fa.figure_title(source) == title


def test_set_alt_text_changes_only_the_metadata():
    nb = _nb(cell := _cell(2))
    before = nbformat.writes(nb)
    fa.set_alt_text(cell, [GOOD, GOOD2])
    assert cell.metadata["alt"] == [GOOD, GOOD2]
    after = nbformat.reads(nbformat.writes(nb), as_version=4)
    after.cells[1].metadata.pop("alt")
    assert nbformat.writes(after) == before
    fa.set_alt_text(cell := _cell(1), GOOD)
    assert cell.metadata["alt"] == GOOD                      # one figure: a plain string
    with pytest.raises(ValueError, match="1 text"):
        fa.set_alt_text(_cell(2), GOOD)
    with pytest.raises(ValueError, match="characters"):
        fa.set_alt_text(_cell(1), "a plot")


def test_attach_alt_text_puts_each_text_on_its_output():
    cell = _cell(1, widget=True, alt=[GOOD, GOOD2])
    nb = _nb(cell, _cell(2, alt=GOOD))                       # miscounted: left alone
    assert fa.attach_alt_text(nb) == 2
    assert cell.outputs[1].metadata["image/png"]["alt"] == GOOD
    assert cell.outputs[2].metadata["alt"] == GOOD2
    assert all("alt" not in o.get("metadata", {}).get("image/png", {}) for o in nb.cells[2].outputs)


def test_the_script_lists_cells_without_alt_text(tmp_path, capsys):
    path = tmp_path / "05_x.ipynb"
    nbformat.write(_nb(_cell(alt=GOOD), _cell(source='ax.set_title("Loss curves")')), path)
    assert fa.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "05_x.ipynb: 2 figure(s), 1 problem(s)" in out
    assert 'cell 2 (1 figure "Loss curves"): no alt text' in out
    nbformat.write(_nb(_cell(alt=GOOD)), path)
    assert fa.main([str(path), "--all"]) == 0
    assert f"cell 1: {GOOD}" in capsys.readouterr().out
