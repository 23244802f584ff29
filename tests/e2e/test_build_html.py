"""tools/build_html.py without a browser or a kernel: the pieces the site is made of.

Widget snapshots from stored widget state, the course map read from README, link
rewriting, the staleness check, and a whole (non-executing) build of two notebooks.
These run everywhere in well under a second each; the browser checks of the built site
are in test_static_site.py.
"""

from __future__ import annotations

import html as html_module
import json
from pathlib import Path

import nbformat
import pytest

from tools import build_html

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bh():
    return build_html


def _state(models: dict) -> dict:
    return {mid: {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": st}
            for mid, (name, st) in models.items()}


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def _notebook_with_widget(state: dict | None) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("explorer()")
    cell.outputs = [nbformat.v4.new_output(
        "execute_result", execution_count=1,
        data={"text/plain": "interactive(...)",
              "application/vnd.jupyter.widget-view+json": {"model_id": "box", "version_major": 2,
                                                           "version_minor": 0}})]
    nb.cells = [nbformat.v4.new_markdown_cell("# 03 · The BN forward pass\n\nText $x$."), cell]
    if state is not None:
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
            "state": state, "version_major": 2, "version_minor": 0}}
    return nb


STATE = _state({
    "box": ("VBoxModel", {"children": ["IPY_MODEL_g", "IPY_MODEL_e", "IPY_MODEL_m", "IPY_MODEL_o"],
                          "_dom_classes": ["widget-interact"]}),
    "g": ("FloatSliderModel", {"description": "γ (gamma)", "value": 1.0, "min": -3.0, "max": 3.0,
                               "step": 0.1, "readout_format": ".2f"}),
    "e": ("FloatLogSliderModel", {"description": "ε (eps)", "value": 1e-5, "min": -5, "max": 2,
                                  "base": 10, "step": 0.5, "readout_format": ".0e"}),
    "m": ("IntSliderModel", {"description": "batch size m", "value": 64, "min": 2, "max": 256,
                             "step": 1, "readout_format": "d"}),
    "o": ("OutputModel", {"outputs": [
        {"output_type": "stream", "name": "stdout", "text": "mu_B = 4.09 <b>\n"},
        {"output_type": "display_data", "metadata": {},
         "data": {"image/png": PNG, "text/plain": "<Figure size 1000x660 with 4 Axes>"}}]}),
})


def test_widget_snapshot_shows_controls_readouts_and_figure(bh):
    nb = _notebook_with_widget(STATE)
    assert bh.staticize_widgets(nb) == 1
    assert "widgets" not in nb.metadata                     # no widget renderer from a CDN
    out = nb.cells[1].outputs[0]
    html = out["data"]["text/html"]
    assert out["output_type"] == "display_data" and bh.SNAPSHOT_NOTE in html
    for text in ("γ (gamma)", ">1.00<", "ε (eps)", ">1e-5<", "batch size m", ">64<"):
        assert text in html
    assert html.count('type="range" disabled') == 3
    assert f"data:image/png;base64,{PNG}" in html
    assert "mu_B = 4.09 &lt;b&gt;" in html                  # printed text is escaped
    assert "<Figure size" not in html                       # the figure's repr is not shown
    assert html.index("γ (gamma)") < html.index("batch size m") < html.index("<img")


def test_widget_without_stored_state_says_so(bh):
    nb = _notebook_with_widget(None)
    assert bh.staticize_widgets(nb) == 1
    assert bh.NO_STATE_NOTE in nb.cells[1].outputs[0]["data"]["text/html"]


def test_an_error_inside_a_widget_callback_fails_the_build(bh):
    state = json.loads(json.dumps(STATE))
    state["o"]["state"]["outputs"] = [{"output_type": "error", "ename": "NameError",
                                       "evalue": "name 'x' is not defined", "traceback": []}]
    with pytest.raises(bh.BuildError, match="NameError"):
        bh.staticize_widgets(_notebook_with_widget(state))


@pytest.mark.parametrize(("value", "spec", "expected"), [
    (1e-5, ".0e", "1e-5"), (100.0, ".0e", "1e+2"), (64, "d", "64"), (2.0, ".2f", "2.00"),
    (0.05, ".3g", "0.05"), (3, "not-a-format", "3"),
])
def test_readouts_are_formatted_like_the_browser(bh, value, spec, expected):
    assert bh._fmt(value, spec) == expected


def _pages(bh, *names):
    return {n: bh.Page(Path(f"/x/{n}.ipynb"), n[:2], n) for n in names}


def test_course_map_rows_link_to_their_pages(bh, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# The course\n\nIntro.\n\n## Course map\n\n"
        "| notebook | what you will learn |\n|---|---|\n"
        "| [00 · Start here](notebooks/00_start_here.ipynb) "
        "| how it works, see [CONTRIBUTING](CONTRIBUTING.md) |\n"
        "| **03 · The BN forward pass** | what $\\gamma$ and β do |\n"
        "| 09 · Not written yet | later |\n\n## Other\n\n| notebook | x |\n|---|---|\n| 01 | y |\n",
        encoding="utf-8")
    title, table = bh.read_course_map(readme)
    assert title == "The course" and len(table) == 5
    html, linked = bh.course_map_html(table, _pages(bh, "00_start_here", "03_batchnorm_forward"))
    assert linked == {"00_start_here", "03_batchnorm_forward"}
    assert '<a href="00_start_here.html">00 · Start here</a>' in html
    assert '<a href="03_batchnorm_forward.html"><strong>03 · The BN forward pass</strong></a>' in html
    assert "CONTRIBUTING.md" not in html and "see CONTRIBUTING" in html    # not in the site: unlinked
    assert "$\\gamma$" in html                                             # left for MathJax
    assert '<tr class="bn-missing"><td>09 · Not written yet</td>' in html


def test_two_notebooks_with_one_number_each_get_their_row(bh, tmp_path):
    """00_start_here and the inventory's 00_test_yourself_before share the number 00: a row
    goes to the notebook it links to, and an unlinked row with that number to neither."""
    readme = tmp_path / "README.md"
    readme.write_text(
        "# The course\n\n## Course map\n\n| notebook | what |\n|---|---|\n"
        "| [00 · Start here](notebooks/00_start_here.ipynb) | a |\n"
        "| [00 · Test yourself](notebooks/00_test_yourself_before.ipynb) | b |\n"
        "| 00 · which one? | c |\n", encoding="utf-8")
    _, table = bh.read_course_map(readme)
    html, linked = bh.course_map_html(table, _pages(bh, "00_start_here", "00_test_yourself_before"))
    assert linked == {"00_start_here", "00_test_yourself_before"}
    assert '<a href="00_start_here.html">00 · Start here</a>' in html
    assert '<a href="00_test_yourself_before.html">00 · Test yourself</a>' in html
    assert '<tr class="bn-missing"><td>00 · which one?</td>' in html


def test_readme_without_a_course_map(bh, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nNo table here.\n", encoding="utf-8")
    assert bh.read_course_map(readme) is None
    assert bh.read_course_map(tmp_path / "missing.md") is None


def test_links_between_notebooks_point_to_pages_and_others_are_unlinked(bh):
    pages = _pages(bh, "01_feature_scaling", "02_covariate_shift")
    html = ('<a href="02_covariate_shift.ipynb#top">next</a> '
            '<a href="notebooks/01_feature_scaling.ipynb">a</a> '
            '<a href="../README.md">readme</a> <a href="https://example.org/x.ipynb">web</a> '
            '<a class="anchor-link" href="#sec">¶</a> <a href="07_unknown.ipynb">u</a>')
    out = bh._rewrite_links(html, pages)
    assert 'href="02_covariate_shift.html#top"' in out and 'href="01_feature_scaling.html"' in out
    assert 'href="07_unknown.ipynb"' in out                  # not a page of this site
    logged = []
    out = bh._unlink_outside(out, {"01_feature_scaling.html", "02_covariate_shift.html", "index.html"},
                             logged.append, "p.html")
    assert "../README.md" not in out.split("title=")[0] and ">readme</span>" in out
    assert 'href="https://example.org/x.ipynb"' in out and 'href="#sec"' in out
    assert ">u</span>" in out
    assert logged and "../README.md" in logged[0] and "07_unknown.ipynb" in logged[0]


def test_nav_has_previous_course_map_and_next(bh):
    a, b = _pages(bh, "00_a", "01_b").values()
    first, middle = bh.nav_html(None, b), bh.nav_html(a, b)
    assert 'href="index.html"' in first and 'rel="prev"' not in first and 'href="01_b.html"' in first
    assert 'rel="prev" href="00_a.html"' in middle and 'rel="next" href="01_b.html"' in middle


def test_notebook_title_is_the_first_level_one_heading(bh):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Some text\n## Not this"),
                nbformat.v4.new_markdown_cell("intro\n# 05 · Training with BN\n")]
    assert bh.notebook_title(nb, "fallback") == "05 · Training with BN"
    assert bh.notebook_title(nbformat.v4.new_notebook(), "fallback") == "fallback"


def test_build_without_execution_and_staleness(bh, tmp_path):
    """A whole build from stored outputs (no kernel): pages, index, MathJax, manifest."""
    pytest.importorskip("jupyter_server_mathjax",
                        reason="the site's MathJax comes from jupyter-server-mathjax")
    sources = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))[:2]
    if len(sources) < 2:
        pytest.skip("needs two notebooks")
    out = tmp_path / "site"
    manifest = bh.build(out, sources, execute=False, log=lambda msg: None)
    assert sorted(manifest["pages"]) == [p.with_suffix(".html").name for p in sources]
    assert (out / "index.html").is_file() and (out / "mathjax" / "MathJax.js").is_file()
    page = (out / sources[1].with_suffix(".html").name).read_text(encoding="utf-8")
    assert "cdnjs" not in page and "unpkg" not in page and "require.min.js" not in page
    assert page.count('class="bn-nav"') == 2 and 'src="mathjax/MathJax.js' in page
    # Built without execution: not a site the browser test would accept.
    assert not bh.site_is_current(out, sources)
    # A folder that is not a site is never replaced.
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(bh.BuildError, match="not a site built by this script"):
        bh.build(tmp_path / "precious", sources, execute=False, log=lambda msg: None)


# --------------------------------------------------------------------------- alt text, solutions, download

def _figure_notebook(alt=None):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plt.show()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})]
    if alt is not None:
        cell.metadata["alt"] = alt
    bare = nbformat.v4.new_code_cell("plt.show()")
    bare.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})]
    nb.cells = [nbformat.v4.new_markdown_cell("# 05 · Training\n\nText."), cell, bare]
    return nb


def _render(bh, nb, name="05_training"):
    page = bh.Page(Path(f"/x/{name}.ipynb"), name[:2], name)
    return bh.render_page(nb, page, None, None, {page.number: page})


def _imgs(page_html):
    from bs4 import BeautifulSoup

    return [img.get("alt") for img in BeautifulSoup(page_html, "html.parser").select("main img, body img")]


ALT = 'Test accuracy against the learning rate: "BN" stays near 1 & the plain network <falls> at 3'


def test_figures_carry_their_cells_alt_text(bh):
    alts = _imgs(_render(bh, _figure_notebook(ALT)))
    assert alts == [ALT, "No description has been provided for this image"]     # escaped, then parsed back


def test_widget_snapshot_figure_carries_its_cells_alt_text(bh):
    nb = _notebook_with_widget(STATE)
    nb.cells[1].metadata["alt"] = ALT
    assert bh.figure_alt.attach_alt_text(nb) == 1
    bh.staticize_widgets(nb)
    assert f'alt="{html_module.escape(ALT)}"' in nb.cells[1].outputs[0]["data"]["text/html"]
    nb = _notebook_with_widget(STATE)                          # no alt text: the generic one
    bh.staticize_widgets(nb)
    assert f'alt="{bh.WIDGET_FIGURE_ALT}"' in nb.cells[1].outputs[0]["data"]["text/html"]


EXERCISE = '''def bn_mean(x):
    """Exercise 3.2 - the batch mean."""
    ### BEGIN SOLUTION
    total = x.sum(axis=0)
    return total / len(x)
    ### END SOLUTION


check.bn_mean(bn_mean)'''


def _exercise_notebook(source=EXERCISE):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    verdict = "✓ Exercise 3.2 · the mean is right\n"
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=verdict)]
    note = nbformat.v4.new_markdown_cell("Write it between `### BEGIN SOLUTION` and `### END SOLUTION`.")
    nb.cells = [nbformat.v4.new_markdown_cell("# 03 · Forward\n"), note, cell]
    return nb


def test_solutions_are_collapsed_and_the_verdict_stays_visible(bh):
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_render(bh, _exercise_notebook(), "03_forward"), "html.parser")
    (details,) = soup.select("details.bn-solution")
    assert not details.has_attr("open")
    assert details.summary.get_text() == "show solution (2 lines)"
    hidden = details.pre.get_text()
    assert "total = x.sum(axis=0)" in hidden and "return total / len(x)" in hidden
    assert "SOLUTION" not in hidden
    cell = details.find_parent(class_="jp-CodeCell")
    visible = "".join(p.get_text() for p in cell.select(".jp-InputArea pre") if not p.find_parent("details"))
    assert 'def bn_mean(x):' in visible and "check.bn_mean(bn_mean)" in visible
    assert "total" not in visible and "### BEGIN SOLUTION" not in visible
    verdict = cell.select_one(".jp-OutputArea").get_text()
    assert "✓ Exercise 3.2" in verdict                          # outside the <details>
    assert "### BEGIN SOLUTION" in soup.select(".jp-MarkdownCell")[1].get_text()    # prose untouched


def test_a_solution_region_without_its_end_marker_is_left_alone(bh):
    page = _render(bh, _exercise_notebook(EXERCISE.replace("    ### END SOLUTION\n", "")), "03_forward")
    assert "<details" not in page and "total" in page


def test_collapse_solutions_counts_every_region(bh):
    two = EXERCISE + "\n\n\ndef other():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
    page = bh.render_page(_exercise_notebook(two), bh.Page(Path("/x/03_f.ipynb"), "03", "t"), None, None, {})
    assert page.count('<details class="bn-solution">') == 2 and "show solution (1 line)" in page
    assert bh.collapse_solutions("<p>### BEGIN SOLUTION</p>") == ("<p>### BEGIN SOLUTION</p>", 0)


def test_each_page_links_its_notebook_for_download_and_says_how_to_run_it(bh, tmp_path):
    pytest.importorskip("jupyter_server_mathjax",
                        reason="the site's MathJax comes from jupyter-server-mathjax")
    sources = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))[:2]
    if len(sources) < 2:
        pytest.skip("needs two notebooks")
    out = tmp_path / "site"
    logged = []
    bh.build(out, sources, execute=False, log=logged.append)
    for src in sources:
        assert (out / src.name).read_bytes() == src.read_bytes()
        page = (out / src.with_suffix(".html").name).read_text(encoding="utf-8")
        assert f'<a href="{src.name}" download>' in page
        assert "make lab" in page.split('class="bn-download"')[1].split("</p>")[0]
    assert not any(src.name in msg for msg in logged for src in sources if "outside the site" in msg)


def test_nbgrader_graded_test_cells_are_not_in_the_pages(bh):
    nb = _exercise_notebook()
    graded = nbformat.v4.new_code_cell(
        "# Graded test (nbgrader; instructors only): the self-check above, as an assertion\n"
        "assert check.bn_mean.evaluate(bn_mean).passed",
        metadata={"nbgrader": {"grade": True, "solution": False, "locked": True, "points": 1,
                               "grade_id": "test_bn_mean", "schema_version": 3}})
    answer = nb.cells[2]
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False,
                                   "grade_id": "bn_mean", "schema_version": 3}
    nb.cells.append(graded)
    from bs4 import BeautifulSoup

    text = BeautifulSoup(_render(bh, nb, "03_forward"), "html.parser").get_text()
    assert "Graded test" not in text and "evaluate(bn_mean)" not in text
    assert "check.bn_mean(bn_mean)" in text and "✓ Exercise 3.2" in text      # the exercise stays
    assert bh.drop_graded_tests(nb) == 0 and len(nb.cells) == 3             # render_page dropped it
