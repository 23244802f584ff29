"""The static HTML edition (``make html`` -> ``site/``) works in a browser, offline.

Opens ``site/index.html`` from disk, as a reader would, with every request that leaves
this machine blocked (and counted as a failure): the index shows README's course map
and links to every notebook page; following each link gives a page with the notebook's
title, every figure loaded (non-zero size) with its own alt text, every formula typeset
by MathJax, each widget as a snapshot with its figure, every solution collapsed behind a
"show solution" control that opens it, a download link to the page's notebook,
navigation at top and bottom, and nothing in the browser console. The previous/next
links walk the course in order.

The site under test is ``site/`` if ``tools/build_html.py`` built it from the current
sources (its ``.build.json`` says so); otherwise the test builds one in a temporary
folder first, so it never passes on a stale site. That build does not execute the
notebooks (``build(..., execute=False)``, ~10 s instead of a minute or two): their stored
outputs are what a fresh run prints (strict nbval checks it in the same suite), but they
hold no widget state, so its widget snapshots say that the state was not stored. What
executing adds, the widget snapshots drawn from the state a run stores, is tested on the
explorer notebooks (title, setup cell, explorer cells; tests/e2e/explorers.py): one
executing build of those shows every explorer of the course as a snapshot with its
figure and controls. The executing path itself (tools/_notebooks.run) also runs every
student notebook (tests/test_student_edition.py).
Screenshots: ``screenshots/site_*.png``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from explorers import explorer_cells, widget_notebooks, write_explorer_notebooks

from tools import build_html

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "site"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
INLINE_MATH = re.compile(r"(?<![\\$])\$[^$\s][^$]*?\$")


@pytest.fixture(scope="module")
def site(tmp_path_factory, browser):
    """A site built from the current sources: ``site/`` when it is current, else a fresh
    build from the stored outputs (no execution; see the module docstring)."""
    if build_html.site_is_current(SITE):
        print(f"\ntesting {SITE} (built from the current sources)")
        return SITE
    out = tmp_path_factory.mktemp("site") / "site"
    print(f"\n{SITE} is missing or stale (`make html` builds it); building a site from the "
          f"stored outputs in {out}")
    manifest = build_html.build(out, execute=False, log=lambda msg: print("  " + msg))
    assert manifest["executed"] is False and not build_html.site_is_current(out)
    return out


@pytest.fixture(scope="module")
def explorer_site(tmp_path_factory, browser):
    """A site built *with execution* (as ``make html`` builds) from the explorer notebooks;
    returns (site folder, the explorer notebooks)."""
    tmp = tmp_path_factory.mktemp("explorer_site")
    sources = write_explorer_notebooks(tmp / "notebooks")
    out = tmp / "site"
    build_html.build(out, sources, log=lambda msg: print("  " + msg))
    assert build_html.site_is_current(out, sources)
    return out, sources


def _notebook_facts(path: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    outputs = [o for c in code for o in c.get("outputs", [])]
    return {
        "images": sum("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
                      for o in outputs),
        "widgets": sum(WIDGET_VIEW in o.get("data", {}) for o in outputs),
        "math": "$" in markdown,
        "solutions": sum("".join(c["source"]).count("### BEGIN SOLUTION") for c in code),
    }


#: alt texts that say nothing: nbconvert's placeholder and build_html's fallback for widgets
PLACEHOLDER_ALTS = {"No description has been provided for this image",
                    "Figure drawn by the widget in its initial state"}


def _wait_for_mathjax(page) -> None:
    page.evaluate("""() => new Promise(resolve => {
        if (!window.MathJax || !MathJax.Hub) { resolve(); return; }
        // Braces matter: a hook that returns a callback makes MathJax wait for it (deadlock).
        MathJax.Hub.Register.StartupHook("End", () => { MathJax.Hub.Queue(() => { resolve(); }); });
    })""")


def _check_page(page, title: str, facts: dict, name: str, executed: bool = True) -> dict:
    """Assert what every notebook page must show; return what was counted.

    ``executed``: the site was built with execution, so every widget snapshot shows the
    figure and controls of the stored widget state (else it says the state was not stored).
    """
    assert page.title() == title, f"{name}: <title> is {page.title()!r}"
    h1 = page.locator("h1").first.inner_text().replace("¶", "").strip()
    assert h1 == title, f"{name}: first heading is {h1!r}"
    assert page.locator("nav.bn-nav").count() == 2, f"{name}: navigation missing at top or bottom"

    images = page.locator("main img")
    sizes = images.evaluate_all(
        "imgs => imgs.map(i => [i.complete && i.naturalWidth > 0 && i.naturalHeight > 0,"
        " i.getBoundingClientRect().width, i.getBoundingClientRect().height])")
    bad = [k for k, (ok, w, h) in enumerate(sizes) if not (ok and w > 0 and h > 0)]
    assert not bad, f"{name}: images {bad} did not load or have zero size"
    expected_images = facts["images"] + facts["widgets"] * executed   # a snapshot shows its figure
    assert len(sizes) >= expected_images, f"{name}: {len(sizes)} images, expected {expected_images}"
    alts = images.evaluate_all("imgs => imgs.map(i => i.getAttribute('alt'))")
    no_alt = [k for k, alt in enumerate(alts) if not alt or alt.strip() in PLACEHOLDER_ALTS]
    assert not no_alt, f"{name}: images {no_alt} have no alt text of their own (cell metadata 'alt')"

    solutions = page.locator("details.bn-solution")
    assert solutions.count() == facts["solutions"], f"{name}: {solutions.count()} collapsed solutions"
    if solutions.count():
        first = solutions.first
        assert not first.locator("pre").is_visible(), f"{name}: a solution is shown before it is asked for"
        first.locator("summary").click()
        assert first.locator("pre").is_visible(), f"{name}: 'show solution' does not open the solution"
    download = page.locator("p.bn-download a[download]")
    notebook = Path(name).with_suffix(".ipynb").name
    assert download.count() == 1 and download.get_attribute("href") == notebook, \
        f"{name}: no download link to {notebook}"

    _wait_for_mathjax(page)
    n_math = page.locator('script[type^="math/tex"]').count()
    n_typeset = page.locator("span.MathJax").count()
    if facts["math"]:
        assert n_math > 0, f"{name}: no formula found by MathJax"
    assert n_typeset == n_math, f"{name}: {n_math} formulas, {n_typeset} typeset"
    assert page.locator(".MathJax .merror, .MathJax_Error").count() == 0, f"{name}: MathJax errors"
    text = "\n".join(page.locator(".jp-MarkdownOutput").all_inner_texts())
    left = INLINE_MATH.findall(text)
    assert not left, f"{name}: formulas left as TeX source: {left[:3]}"

    hrefs = page.locator("a[href]").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    local = {h.split("#")[0] for h in hrefs if not re.match(r"^([a-z][a-z0-9+.-]*:|#|//)", h, re.I)}
    site_dir = Path(urllib.request.url2pathname(urllib.parse.urlparse(page.url).path)).parent
    broken = sorted(h for h in local if h and not (site_dir / h).is_file())
    assert not broken, f"{name}: links to files that are not in the site: {broken}"

    snapshots = page.locator(".bn-widget")
    assert snapshots.count() == facts["widgets"], f"{name}: {snapshots.count()} widget snapshots"
    for k in range(snapshots.count()):
        snapshot = snapshots.nth(k)
        note = snapshot.locator(".bn-widget-note").inner_text()
        if not executed:
            assert "state was not stored" in note, f"{name}: widget {k + 1}: {note!r}"
            continue
        assert "initial state" in note, f"{name}: widget {k + 1}: {note!r}"
        assert snapshot.locator("img").count() >= 1, f"{name}: widget {k + 1} shows no figure"
        assert snapshot.locator(".bn-control").count() >= 1, f"{name}: widget {k + 1} shows no control"
        unknown = snapshot.locator(".bn-widget-unknown").all_inner_texts()
        assert not unknown, f"{name}: widget {k + 1} has controls the snapshot cannot draw: {unknown}"
    return {"images": len(sizes), "math": n_math, "widgets": snapshots.count()}


def test_index_links_to_every_notebook_page(site, new_page, console, screenshots):
    manifest = json.loads((site / ".build.json").read_text(encoding="utf-8"))
    page = new_page(1200, 900)
    index = (site / "index.html").as_uri()
    page.goto(index)
    _wait_for_mathjax(page)
    assert page.locator("table.bn-map").count() == 1, "the index has no course map"
    page.screenshot(path=str(screenshots / "site_index.png"), full_page=True)

    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(manifest["pages"]) == [p.with_suffix(".html").name for p in notebooks]
    report = []
    for path in notebooks:
        filename = path.with_suffix(".html").name
        page.goto(index)
        link = page.locator(f'table.bn-map a[href="{filename}"], ul.bn-pages a[href="{filename}"]')
        assert link.count() >= 1, f"the index does not link to {filename}"
        link.first.click()
        page.wait_for_url(re.compile(re.escape(filename) + "$"))
        counts = _check_page(page, manifest["pages"][filename], _notebook_facts(path), filename,
                             executed=manifest["executed"])
        report.append(f"{filename}: {counts}")
        page.screenshot(path=str(screenshots / f"site_{path.stem}.png"))
        if counts["widgets"]:
            widget = page.locator(".bn-widget").first
            widget.scroll_into_view_if_needed()
            widget.screenshot(path=str(screenshots / f"site_{path.stem}_widget1.png"))
    console.assert_clean()
    print("\n".join(report))


def _follow(page, link) -> str:
    """Click ``link`` and wait until the page it names has loaded; return that page's name.

    ``page.url`` changes as soon as the navigation commits, before the new document is
    parsed, and ``wait_for_load_state`` right after a click may still see the old page
    loaded; so wait for the URL itself (``wait_for_url`` waits for its load event).
    """
    target = urllib.parse.urlsplit(link.get_attribute("href")).path.rsplit("/", 1)[-1]
    link.click()
    page.wait_for_url(re.compile(r"/" + re.escape(target) + "$"))
    return target


def test_previous_and_next_links_walk_the_course_in_order(site, new_page, console):
    manifest = json.loads((site / ".build.json").read_text(encoding="utf-8"))
    order = sorted(manifest["pages"])
    page = new_page(1200, 900)
    page.goto((site / "index.html").as_uri())
    visited = [_follow(page, page.locator("a.bn-next").first)]
    while True:
        assert Path(page.url).name == visited[-1]
        assert page.locator("nav.bn-nav a.bn-home[href='index.html']").count() == 2, (
            f"{visited[-1]}: a home link missing at top or bottom")
        nxt = page.locator("nav.bn-nav a.bn-next").first
        if nxt.count() == 0:
            break
        visited.append(_follow(page, nxt))
    assert visited == order
    back = []
    while True:
        prev = page.locator("nav.bn-nav a.bn-prev").first
        if prev.count() == 0:
            break
        back.append(_follow(page, prev))
        assert Path(page.url).name == back[-1]
    assert back == order[-2::-1]
    assert _follow(page, page.locator("nav.bn-nav a.bn-home").first) == "index.html"
    assert page.locator("table.bn-map").count() == 1
    console.assert_clean()


def test_an_executed_build_shows_every_explorer_as_a_snapshot(explorer_site, new_page, console,
                                                              screenshots):
    """Built as ``make html`` builds (each notebook run, its widget state stored): every
    explorer of the course becomes a snapshot with its figure (and its cell's alt text),
    its controls at their initial values, and nothing the snapshot cannot draw."""
    out, sources = explorer_site
    manifest = json.loads((out / ".build.json").read_text(encoding="utf-8"))
    assert manifest["executed"] is True
    assert [p.name for p in sources] == [p.name for p in widget_notebooks()]
    page = new_page(1200, 900)
    report = []
    for path in sources:
        filename = path.with_suffix(".html").name
        shown = explorer_cells(path)
        assert manifest["widgets"][path.name] == shown >= 1
        nb = json.loads(path.read_text(encoding="utf-8"))
        markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        facts = {"images": 0, "widgets": shown, "math": "$" in markdown, "solutions": 0}
        page.goto((out / filename).as_uri())
        counts = _check_page(page, manifest["pages"][filename], facts, filename, executed=True)
        report.append(f"{filename}: {counts}")
        widget = page.locator(".bn-widget").first
        widget.scroll_into_view_if_needed()
        widget.screenshot(path=str(screenshots / f"site_{path.stem}_widget1.png"))
    console.assert_clean()
    print("\n".join(report))
