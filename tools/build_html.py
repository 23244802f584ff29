"""Build the static HTML edition of the course: what `make html` runs.

    python tools/build_html.py                 # every notebook -> site/ (open site/index.html)
    python tools/build_html.py --out /tmp/s    # somewhere else
    python tools/build_html.py --jobs 1        # one notebook at a time (default: 2 in parallel)
    python tools/build_html.py --edition student   # no solutions (make html EDITION=student)

Every notebook in ``notebooks/`` is executed afresh, in a temporary copy of that folder
(``notebooks/`` itself is never written), with the widget state stored. Each becomes one
page, ``site/NN_name.html``; ``site/index.html`` shows the course map, read from the table
under the "Course map" heading of README.md (one source for both). Every page has
previous / course map / next links at its top and bottom. Figures are inlined in the
pages, each with the alt text its cell's metadata gives it (``tools/figure_alt.py``). Each
page links a copy of its notebook (``site/NN_name.ipynb``) for download and says how to run
it. The solution regions of exercise cells (between ``### BEGIN SOLUTION`` and
``### END SOLUTION``) are collapsed behind a "show solution" control; the self-check's
output below stays visible. nbgrader's graded test cells (for instructors who autograde)
are left out of the pages.

``--edition student`` (``make html EDITION=student``, for courses that grade) builds the
site of the student edition instead: every solution region replaced by its stub, the
recall questions' answers left out, the outputs of the exercise and self-check cells
cleared (a ✓ line next to a stub would mislead), and as the download of each page its
student notebook, as ``make student`` writes it (outputs cleared). No solution text,
graded test or recall answer is in any page or download (tests/test_html_student.py).

The site works offline, as a reader without a network may open it:

* Maths is typeset by MathJax 2.7 from ``site/mathjax/``, a copy of the files shipped
  by the PyPI package ``jupyter-server-mathjax``; no page loads anything from a CDN.
* There is no kernel behind a static page, so a widget cannot react. Each widget is
  replaced by a snapshot of its initial state, drawn from the stored widget state:
  its controls (disabled, at their initial values) and what its output area showed
  (the figure), under a note that says how to make it interactive. If the state is
  missing, the note says so (the notebook's static figure before the widget already
  shows the default state).

The build stops with an error naming the notebook if a cell raises (other than cells
tagged ``raises-exception``) or if a widget callback raised (nbclient hides such errors
in the widget state; the build looks for them). ``site/.build.json`` records hashes of
the sources it was built from; ``site_is_current()`` compares them with the working tree
(the browser test uses it to tell a fresh site from a stale one).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a file (python tools/x.py): import tools from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from tools import _notebooks, figure_alt, make_student, nbgrader_cells  # noqa: E402
from tools._notebooks import ROOT, WIDGET_STATE, WIDGET_VIEW, NotebookError, discover  # noqa: E402

README = ROOT / "README.md"
TEMPLATE_DIR = Path(__file__).resolve().parent / "html_template"
TEMPLATE_NAME = "bn"
MANIFEST = ".build.json"
MATHJAX_DIR = "mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
EDITIONS = ("solutions", "student")
SHOW_SOLUTION = "show solution"
WIDGET_FIGURE_ALT = "Figure drawn by the widget in its initial state"     # when the cell gives none
RUN_NOTE = ("To run it, clone the course and type <code>make lab</code>, or open the file in "
            "JupyterLab with the course's <code>bnutils</code> package installed "
            "(<code>pip install .</code> in the clone).")
DOWNLOAD_MARK = "<!-- bn-download -->"     # where the template puts the download line
SITE_NOTE = ("Static edition: every notebook was run when this site was built. Widgets show "
             "their initial state; to move the sliders and do the exercises, run the "
             "notebooks in JupyterLab (<code>make lab</code>).")


class BuildError(RuntimeError):
    """A notebook failed to execute or to convert; the message names it."""


@dataclass(frozen=True)
class Page:
    """One notebook page of the site."""
    source: Path          # notebooks/NN_name.ipynb
    number: str           # "NN"
    title: str            # the notebook's first heading, e.g. "03 · The BN forward pass"

    @property
    def filename(self) -> str:
        return self.source.with_suffix(".html").name


# --------------------------------------------------------------------------- discovery

def notebook_title(nb, fallback: str) -> str:
    """The text of the first level-1 heading of the first markdown cell that has one."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            m = re.match(r"#\s+(.+?)\s*#*\s*$", line)
            if m:
                return m.group(1).strip()
    return fallback


def source_hashes(sources: list[Path]) -> dict[str, str]:
    """What a built site depends on: the notebooks, the bnutils package they run, README.md,
    this script, the tools it builds pages with and its template."""
    deps = {f"notebooks/{p.name}": _notebooks.digest(p.read_bytes()) for p in sources}
    if README.exists():
        deps["README.md"] = _notebooks.digest(README.read_bytes())
    for module in (sys.modules[__name__], _notebooks, figure_alt, make_student, nbgrader_cells):
        tool = Path(module.__file__).resolve()
        deps[f"tools/{tool.name}"] = _notebooks.digest(tool.read_bytes())
    for folder in (TEMPLATE_DIR, ROOT / "bnutils"):
        for p in sorted(folder.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                deps[p.relative_to(ROOT).as_posix()] = _notebooks.digest(p.read_bytes())
    return deps


def site_is_current(site_dir: Path, sources: list[Path] | None = None) -> bool:
    """True if ``site_dir`` was built, with execution, from exactly the current sources."""
    manifest = site_dir / MANIFEST
    if not manifest.exists():
        return False
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
    except ValueError:
        return False
    sources = discover() if sources is None else sources
    return recorded.get("executed") is True and recorded.get("sources") == source_hashes(sources)


# --------------------------------------------------------------------------- execution

def _execute_all(sources: list[Path], outdir: Path, jobs: int, timeout: int, notebook_timeout: int,
                 log) -> dict[str, Path]:
    """Execute every notebook (``jobs`` at a time) in a copy of notebooks/; return the results.

    Each runs with the widget state stored and the one hang policy of
    ``tools/_notebooks.py`` (a run that hangs is killed and run again).
    """
    workdir = outdir / "notebooks"
    shutil.copytree(sources[0].parent, workdir,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))

    def run(src: Path) -> tuple[Path, Path]:
        dst = outdir / "executed" / src.name
        try:
            result = _notebooks.run(workdir / src.name, dst, workdir=workdir, timeout=timeout,
                                    notebook_timeout=notebook_timeout, log=log)
        except NotebookError as err:
            raise BuildError(str(err)) from None
        log(f"executed  {src.name} in {result.elapsed:.1f} s "
            f"(slowest: cell {result.slowest_cell}, {result.slowest_seconds:.1f} s)")
        return src, dst

    (outdir / "executed").mkdir()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return {src.name: dst for src, dst in pool.map(run, sources)}


# --------------------------------------------------------------------------- widgets

def _model(state: dict, ref) -> dict | None:
    if isinstance(ref, str) and ref.startswith("IPY_MODEL_"):
        return state.get(ref[len("IPY_MODEL_"):])
    return None


def _fmt(value, spec: str | None) -> str:
    """Format a slider value with its d3-style readout format (".2f", "d", ".3g", ...)."""
    try:
        text = format(value, (spec or "").lstrip("~") or "")
    except (TypeError, ValueError):
        return str(value)
    return re.sub(r"e([+-])0+(\d)", r"e\1\2", text)           # d3 writes 1e-5, Python 1e-05


def _output_html(out: dict, alt: str | None = None) -> str:
    """One stored output of an Output widget, as HTML (figures as inline PNG/SVG, ``alt`` as
    the PNG's alt text)."""
    kind = out.get("output_type")
    if kind == "stream":
        text = out.get("text", "")
        text = "".join(text) if isinstance(text, list) else text
        return f'<pre class="bn-widget-stream">{html.escape(text)}</pre>'
    if kind == "error":
        raise BuildError("a widget callback raised "
                         f"{out.get('ename')}: {out.get('evalue')}")
    data = out.get("data", {})
    if "image/png" in data:
        png = data["image/png"]
        png = "".join(png) if isinstance(png, list) else png
        meta = out.get("metadata", {}).get("image/png", {})
        size = "".join(f' {k}="{int(meta[k])}"' for k in ("width", "height") if k in meta)
        return (f'<img class="bn-widget-figure" src="data:image/png;base64,{png.strip()}"{size} '
                f'alt="{html.escape(alt or WIDGET_FIGURE_ALT)}">')
    if "image/svg+xml" in data:
        svg = data["image/svg+xml"]
        return "".join(svg) if isinstance(svg, list) else svg
    if "text/html" in data:
        h = data["text/html"]
        return "".join(h) if isinstance(h, list) else h
    if "text/plain" in data:
        t = data["text/plain"]
        t = "".join(t) if isinstance(t, list) else t
        if re.fullmatch(r"<Figure size .*>", t.strip()):
            return ""
        return f'<pre class="bn-widget-stream">{html.escape(t)}</pre>'
    return ""


def _control(label: str, body: str) -> str:
    label_html = f'<span class="bn-control-label">{html.escape(label)}</span>' if label else ""
    return f'<div class="bn-control">{label_html}{body}</div>'


def widget_html(state: dict, model_id: str, depth: int = 0, alt: str | None = None) -> str:
    """Static HTML for widget ``model_id`` and its children, from the stored widget state
    (``alt``: the alt text of the figure its output shows)."""
    entry = state.get(model_id)
    if entry is None or depth > 20:
        return ""
    name = entry.get("model_name", "")
    s = entry.get("state", {})
    desc = s.get("description", "") or ""
    if name in ("VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel"):
        kids = "".join(widget_html(state, ref[len("IPY_MODEL_"):], depth + 1, alt)
                       for ref in s.get("children", []) if _model(state, ref) is not None)
        direction = "row" if name == "HBoxModel" else "column"
        return f'<div class="bn-box bn-box-{direction}">{kids}</div>'
    if name == "OutputModel":
        return ('<div class="bn-widget-output">'
                + "".join(_output_html(o, alt) for o in s.get("outputs", [])) + "</div>")
    if name in ("FloatSliderModel", "IntSliderModel", "FloatLogSliderModel"):
        value = s.get("value", 0)
        position = value
        if name == "FloatLogSliderModel":
            import math
            base = s.get("base", 10)
            position = math.log(value, base) if value and value > 0 else s.get("min", 0)
        fmt = s.get("readout_format", "d" if name == "IntSliderModel" else ".2f")
        body = (f'<input type="range" disabled min="{s.get("min", 0)}" max="{s.get("max", 100)}" '
                f'step="{s.get("step", 1)}" value="{position}" aria-label="{html.escape(desc)}">'
                f'<span class="bn-readout">{html.escape(_fmt(value, fmt))}</span>')
        return _control(desc, body)
    if name in ("IntRangeSliderModel", "FloatRangeSliderModel"):
        lo, hi = s.get("value", [0, 0])
        fmt = s.get("readout_format", "d" if name.startswith("Int") else ".2f")
        return _control(desc, f'<span class="bn-readout">{_fmt(lo, fmt)} – {_fmt(hi, fmt)}</span>')
    if name in ("SelectionSliderModel", "DropdownModel", "ToggleButtonsModel", "RadioButtonsModel",
                "SelectModel"):
        labels = s.get("_options_labels", [])
        index = s.get("index")
        options = "".join(f'<option{" selected" if i == index else ""}>{html.escape(str(lab))}</option>'
                          for i, lab in enumerate(labels))
        return _control(desc, f'<select disabled aria-label="{html.escape(desc)}">{options}</select>')
    if name in ("CheckboxModel", "ToggleButtonModel"):
        checked = " checked" if s.get("value") else ""
        return _control(desc, f'<input type="checkbox" disabled{checked} aria-label="{html.escape(desc)}">')
    if name in ("TextModel", "IntTextModel", "FloatTextModel", "BoundedIntTextModel",
                "BoundedFloatTextModel"):
        return _control(desc, f'<input type="text" disabled value="{html.escape(str(s.get("value", "")))}">')
    if name == "ButtonModel":
        return f'<button disabled>{html.escape(desc)}</button>'
    if name == "LabelModel":
        return f'<span class="bn-widget-label">{html.escape(str(s.get("value", "")))}</span>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f'<div class="bn-widget-html">{s.get("value", "")}</div>'
    if name.endswith("StyleModel") or name == "LayoutModel":
        return ""
    return f'<span class="bn-widget-unknown">[{html.escape(name)}]</span>'


NO_STATE_NOTE = ("This is an interactive widget. Its state was not stored, so the static edition "
                 "cannot show it; the figure before it shows its default state. Run the notebook in "
                 "JupyterLab to move its sliders.")
SNAPSHOT_NOTE = ("Interactive widget, shown here in its initial state (the sliders do not move in "
                 "the static edition). Run the notebook in JupyterLab to move them.")


def staticize_widgets(nb) -> int:
    """Replace every widget view in ``nb`` by a static HTML snapshot (in place).

    Returns the number of widget views replaced. The snapshot's figure gets the alt text
    ``figure_alt.attach_alt_text`` put on the view (the cell's metadata). Drops
    ``metadata.widgets`` afterwards, so that no page asks for a widget renderer from a CDN.
    """
    import nbformat

    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for i, out in enumerate(cell.get("outputs", [])):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if not isinstance(view, dict):
                continue
            alt = out.get("metadata", {}).get(figure_alt.KEY)
            body = widget_html(state, view.get("model_id", ""), alt=alt) if state else ""
            note = SNAPSHOT_NOTE if body else NO_STATE_NOTE
            snippet = (f'<div class="bn-widget"><p class="bn-widget-note">{note}</p>{body}</div>')
            cell.outputs[i] = nbformat.v4.new_output(
                "display_data", data={"text/html": snippet, "text/plain": "[widget]"})
            replaced += 1
    nb.metadata.pop("widgets", None)
    return replaced


# --------------------------------------------------------------------------- pages

def _rewrite_links(page_html: str, pages: dict[str, Page]) -> str:
    """Links to course notebooks (``03_x.ipynb``, ``notebooks/03_x.ipynb``) point to their pages."""
    names = {p.source.stem: p.filename for p in pages.values()}

    def fix(m: re.Match) -> str:
        stem = m.group(2)
        if stem not in names:
            return m.group(0)
        return f'href="{names[stem]}{m.group(3) or ""}"'

    return re.sub(r'href="((?:\.{0,2}/)?(?:notebooks/)?)(\d\d_[^"/#]+)\.ipynb(#[^"]*)?"', fix, page_html)


def _unlink_outside(page_html: str, site_files: set[str], log, name: str) -> str:
    """Relative links to files that are not part of the site (``../README.md``, a module of
    bnutils) would be broken: keep their text, drop the link, and say so in the build log."""
    dropped = []

    def fix(m: re.Match) -> str:
        target = m.group(1)
        if re.match(r"^([a-z][a-z0-9+.-]*:|#|//)", target, flags=re.I):
            return m.group(0)
        if target.split("#")[0].split("?")[0] in site_files:
            return m.group(0)
        dropped.append(target)
        return (f'<span class="bn-offsite-link" title="{target} is not part of the static '
                f'edition">{m.group(2)}</span>')

    page_html = re.sub(r'<a href="([^"]*)"[^>]*>(.*?)</a>', fix, page_html, flags=re.S)
    if dropped:
        log(f"warning: {name}: links to files outside the site shown as plain text: "
            + ", ".join(sorted(set(dropped))))
    return page_html


def nav_html(prev: Page | None, nxt: Page | None) -> str:
    """The previous / course map / next bar shown at the top and bottom of every page."""
    parts = []
    parts.append(f'<a class="bn-prev" rel="prev" href="{prev.filename}">← {html.escape(prev.title)}</a>'
                 if prev else '<span class="bn-prev"></span>')
    parts.append('<a class="bn-home" href="index.html">Course map</a>')
    parts.append(f'<a class="bn-next" rel="next" href="{nxt.filename}">{html.escape(nxt.title)} →</a>'
                 if nxt else '<span class="bn-next"></span>')
    return f'<nav class="bn-nav" aria-label="Course navigation">{"".join(parts)}</nav>'


def drop_graded_tests(nb) -> int:
    """Remove nbgrader's graded test cells from ``nb`` (in place); return how many."""
    kept = [cell for cell in nb.cells if not nbgrader_cells.is_graded_test(cell)]
    dropped = len(nb.cells) - len(kept)
    nb.cells = kept
    return dropped


def student_page_notebook(nb, name: str):
    """The student edition of an executed notebook, for a page (a new object): solutions
    stubbed, graded tests and recall answers left out, the outputs of the exercise cells
    and of their self-check cells cleared, every other output kept."""
    student, _ = make_student.student_notebook(nb, name, clear_outputs=False)
    # The exercises, found in the solutions' cells (the same cells, the graded tests left out).
    exercises = nbgrader_cells.find_exercises(
        [cell for cell in nb.cells if not nbgrader_cells.is_graded_test(cell)], name)
    for index in {e.cell_index for e in exercises} | {e.check_cell_index for e in exercises}:
        student.cells[index].outputs, student.cells[index].execution_count = [], None
    return student


def _line_text(line: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", line)).strip()


def collapse_solutions(page_html: str) -> tuple[str, int]:
    """Put each solution region of the page's code cells behind a closed "show solution" control.

    The lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (markers dropped) move
    into a ``<details>`` element after the code before them; the code after them and the
    cell's outputs (the self-check's verdict) stay visible. A region without its END
    marker is left as it is. Returns (html, number of regions collapsed).
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page_html, features="html.parser")
    count = 0
    for pre in soup.select(".jp-CodeCell .jp-InputArea pre"):
        inner = pre.decode_contents()
        if SOLUTION_BEGIN not in inner:
            continue
        parts, current, inside = [], [], False
        for line in inner.split("\n"):       # pygments closes every span at the end of a line
            text = _line_text(line)
            if text == SOLUTION_BEGIN and not inside:
                parts.append(("code", current))
                current, inside = [], True
            elif text == SOLUTION_END and inside:
                parts.append(("solution", current))
                current, inside = [], False
            else:
                current.append(line)
        if inside:
            continue
        parts.append(("code", current))
        pieces = []
        for kind, lines in parts:
            body = "\n".join(lines)
            if kind == "solution":
                n = len(lines)
                pieces.append(f'<details class="bn-solution"><summary>{SHOW_SOLUTION} ({n} line'
                              f'{"s" * (n != 1)})</summary><pre>{body}</pre></details>')
                count += 1
            elif any(_line_text(line) for line in lines):
                pieces.append(f"<pre>{body}</pre>")
        pre.replace_with(BeautifulSoup("".join(pieces), features="html.parser"))
    return (str(soup) if count else page_html), count


def download_html(page: Page) -> str:
    """The line under the site note: download this page's notebook, and how to run it."""
    name = html.escape(page.source.name)
    return (f'<p class="bn-download"><a href="{name}" download>Download this notebook '
            f'({name})</a>. {RUN_NOTE}</p>')


def _exporter():
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name=TEMPLATE_NAME, extra_template_basedirs=[str(TEMPLATE_DIR)])
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    exporter.mathjax_url = f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"
    # Nothing else may come from a CDN either (the template does not use these; belt and braces).
    exporter.require_js_url = ""
    exporter.jupyter_widgets_base_url = ""
    exporter.widget_renderer_url = ""
    return exporter


def render_page(nb, page: Page, prev: Page | None, nxt: Page | None, pages: dict[str, Page]) -> str:
    """One notebook page: nbconvert's lab template plus the course navigation, the download
    link, figures with their alt text and the solutions collapsed (without nbgrader's graded
    test cells)."""
    nb.metadata["title"] = page.title
    drop_graded_tests(nb)
    figure_alt.attach_alt_text(nb)
    body, _ = _exporter().from_notebook_node(
        nb, resources={"bn_nav": nav_html(prev, nxt), "bn_site_note": SITE_NOTE,
                       "bn_download": DOWNLOAD_MARK})
    body, _ = collapse_solutions(body)
    # after the links to notebooks became links to pages: this one is the .ipynb itself
    return _rewrite_links(body, pages).replace(DOWNLOAD_MARK, download_html(page), 1)


# --------------------------------------------------------------------------- index

def _table_lines(lines: list[str], start: int) -> list[str]:
    """The markdown table starting at or after line ``start`` (stops at the next heading)."""
    i = start
    while i < len(lines) and not lines[i].lstrip().startswith("|"):
        if i > start and lines[i].startswith("#"):
            return []
        i += 1
    table = []
    while i < len(lines) and lines[i].lstrip().startswith("|"):
        table.append(lines[i].strip())
        i += 1
    return table


def read_course_map(readme: Path = README) -> tuple[str, list[str]] | None:
    """(title, table lines) of README.md's course map, or None if README has none.

    The course map is the first table after a heading that contains "course map"; failing
    that, the first table whose first header cell mentions "notebook".
    """
    if not readme.exists():
        return None
    lines = readme.read_text(encoding="utf-8").splitlines()
    title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), "")
    for i, line in enumerate(lines):
        if line.startswith("#") and "course map" in line.lower():
            table = _table_lines(lines, i + 1)
            if table:
                return title, table
    for i, line in enumerate(lines):
        if line.lstrip().startswith("|") and "notebook" in line.split("|")[1].lower():
            return title, _table_lines(lines, i)
    return None


def _cells(row: str) -> list[str]:
    row = row.strip().strip("|")
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)]


def _inline(md: str) -> str:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    out = markdown2html_mistune(md).strip()
    m = re.fullmatch(r"<p>(.*)</p>", out, flags=re.S)
    return m.group(1) if m else out


def _row_page(first_cell: str, number: str | None, pages: dict[str, Page]) -> Page | None:
    """The page a course-map row is about: the one its first cell links to, else the one
    page with the row's number (two notebooks may share a number: 00_start_here and the
    inventory's 00_test_yourself_before)."""
    for page in pages.values():
        if f'href="{page.filename}' in first_cell:
            return page
    same = [p for p in pages.values() if p.number == number]
    return same[0] if len(same) == 1 else None


def course_map_html(table: list[str], pages: dict[str, Page]) -> tuple[str, set[str]]:
    """Render README's course-map table, each row linked to its notebook's page.

    A row belongs to notebook NN when its first cell contains the number NN. Links in the
    table that point to course notebooks go to their pages; other relative links (to files
    that are not part of the site) are unlinked. Returns (html, stems of the pages linked).
    """
    header, rows = _cells(table[0]), [r for r in table[2:] if r.strip()]
    linked = set()
    out = ["<table class=\"bn-map\"><thead><tr>"]
    out += [f"<th>{_inline(c)}</th>" for c in header]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = [_rewrite_links(_inline(c), pages) for c in _cells(row)]
        cells = [re.sub(r'<a href="(?!https?://|#|\d\d_[^"]*\.html)[^"]*">(.*?)</a>', r"\1", c)
                 for c in cells]
        m = re.search(r"(?<!\d)(\d{2})(?!\d)", re.sub(r"<[^>]+>", "", cells[0]))
        page = _row_page(cells[0], m.group(1) if m else None, pages)
        if page is not None:
            linked.add(page.source.stem)
            if page.filename not in cells[0]:
                cells[0] = f'<a href="{page.filename}">{cells[0]}</a>'
        cls = "" if page is not None or not m else ' class="bn-missing"'
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out), linked


def index_html(pages: dict[str, Page], log) -> str:
    """The site's front page: the course map, then any notebook the map does not list."""
    found = read_course_map()
    if found is None:
        log("warning: README.md has no course-map table; the index lists the notebook titles")
        title, table_html, linked = "Batch Normalization, from first principles to practice", "", set()
    else:
        title, table = found
        table_html, linked = course_map_html(table, pages)
    rest = [p for p in pages.values() if p.source.stem not in linked]
    if rest:
        if found is not None:
            log("warning: README.md's course map does not list "
                + ", ".join(p.source.name for p in rest))
        items = "".join(f'<li><a href="{p.filename}">{html.escape(p.title)}</a></li>' for p in rest)
        table_html += f'<ul class="bn-pages">{items}</ul>'
    first = next(iter(pages.values()))
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR / TEMPLATE_NAME),
                             autoescape=False)
    return env.get_template("course_index.html.j2").render(
        title=html.escape(title), course_map=table_html, site_note=SITE_NOTE,
        css=(TEMPLATE_DIR / TEMPLATE_NAME / "static" / "bn.css").read_text(encoding="utf-8"),
        start=(f'<a class="bn-next" rel="next" href="{first.filename}">'
               f'Start: {html.escape(first.title)} →</a>'),
        resources={"mathjax_url": f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"})


# --------------------------------------------------------------------------- build

def _copy_mathjax(dest: Path) -> None:
    try:
        import jupyter_server_mathjax
    except ImportError:
        raise BuildError("the static edition typesets maths with the MathJax files of the PyPI "
                         "package jupyter-server-mathjax, which is not installed: "
                         "pip install jupyter-server-mathjax") from None
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", dest)


def _safe_to_replace(out: Path) -> bool:
    return not out.exists() or (out / MANIFEST).exists() or (out.is_dir() and not any(out.iterdir()))


def build(out: Path, sources: list[Path] | None = None, jobs: int = 2, timeout: int = 120,
          notebook_timeout: int = 300, execute: bool = True, edition: str = "solutions",
          log=print) -> dict:
    """Build the site of ``edition`` (``EDITIONS``) into ``out`` (replaced only when the build
    succeeds); return the manifest."""
    if edition not in EDITIONS:
        raise BuildError(f"edition must be one of {', '.join(EDITIONS)}, not {edition!r}")
    sources = discover() if sources is None else [Path(s).resolve() for s in sources]
    if not sources:
        raise BuildError("no notebooks to build (notebooks/NN_name.ipynb)")
    out = Path(out).resolve()
    if not _safe_to_replace(out):
        raise BuildError(f"{out} exists and is not a site built by this script; not replacing it")
    import nbformat

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bn-site-") as tmp:
        tmp = Path(tmp)
        if execute:
            executed = _execute_all(sources, tmp, jobs, timeout, notebook_timeout, log)
        else:
            executed = {p.name: p for p in sources}
        nbs = {name: nbformat.read(path, as_version=4) for name, path in executed.items()}
        if edition == "student":
            nbs = {name: student_page_notebook(nb, name) for name, nb in nbs.items()}
        pages = {}
        for src in sources:
            # keyed by the file's stem: two notebooks may share a number (00_start_here and
            # the inventory's 00_test_yourself_before)
            pages[src.stem] = Page(src, src.name[:2], notebook_title(nbs[src.name], src.stem))
        staging = tmp / "site"
        staging.mkdir()
        order = list(pages.values())
        widgets = {}
        for k, page in enumerate(order):
            nb = nbs[page.source.name]
            try:
                figure_alt.attach_alt_text(nb)          # before the widget views are replaced
                widgets[page.source.name] = staticize_widgets(nb)
                text = render_page(nb, page, order[k - 1] if k else None,
                                   order[k + 1] if k + 1 < len(order) else None, pages)
            except BuildError as err:
                raise BuildError(f"{page.source.name}: {err}") from None
            site_files = {p.filename for p in order} | {p.source.name for p in order} | {"index.html"}
            text = _unlink_outside(text, site_files, log, page.filename)
            (staging / page.filename).write_text(text, encoding="utf-8")
            if edition == "student":                                     # the download
                student, _ = make_student.student_notebook(
                    nbformat.read(page.source, as_version=4), page.source.name)
                nbformat.write(student, staging / page.source.name)
            else:
                shutil.copyfile(page.source, staging / page.source.name)
            log(f"wrote     {page.filename}")
        (staging / "index.html").write_text(index_html(pages, log), encoding="utf-8")
        _copy_mathjax(staging / MATHJAX_DIR)
        manifest = {"executed": execute, "edition": edition, "sources": source_hashes(sources),
                    "pages": {p.filename: p.title for p in order}, "widgets": widgets}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                        encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(staging), str(out))
    log(f"built {out} ({len(order)} pages) in {time.perf_counter() - start:.1f} s; "
        f"open {out / 'index.html'}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to include (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "site", help="output folder (default: site/)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed in parallel (default 2)")
    parser.add_argument("--timeout", type=int, default=120,
                        help="seconds one cell may run before the run counts as hung (default 120)")
    parser.add_argument("--notebook-timeout", type=int, default=300,
                        help="seconds one notebook may run before the run counts as hung (default 300)")
    parser.add_argument("--no-execute", action="store_true",
                        help="use the stored outputs instead of executing (fast preview; no widget "
                             "snapshots)")
    parser.add_argument("--edition", choices=EDITIONS, default="solutions",
                        help="solutions (collapsed, the default) or student (none: for courses "
                             "that grade)")
    args = parser.parse_args(argv)
    try:
        build(args.out, args.notebooks or None, jobs=args.jobs, timeout=args.timeout,
              notebook_timeout=args.notebook_timeout, execute=not args.no_execute,
              edition=args.edition)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
