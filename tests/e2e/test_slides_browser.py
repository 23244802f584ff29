"""The slides (``make slides`` -> ``build/slides/``) in a real browser, at 1280x720.

Builds every deck into a temporary folder with tools/slides.py (npm's reveal.js, installed
into ``build/slides-npm/`` on first use), opens ``index.html`` from disk with every request
that leaves this machine blocked (a failure), follows each link, and visits every slide:
it renders (reveal.js counts it, it has visible text or a figure), its images loaded, its
maths typeset without a MathJax error, and its content box, every element of the slide
measured in the slide's own coordinates, fits within the 1280x720 slide (no overflow).
Nothing in the browser console. Screenshots: ``screenshots/slides_NN_SS.png``, every
slide of every deck, for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1.0     # px, in slide coordinates: sub-pixel rounding of the layout


def _slides_tool():
    from tools import slides

    return slides


@pytest.fixture(scope="module")
def decks(tmp_path_factory, browser):
    slides = _slides_tool()
    out = tmp_path_factory.mktemp("slides") / "slides"
    built = slides.build(out, log=lambda msg: print("  " + msg))
    return slides, out, built


MEASURE = """() => {
    const slide = Reveal.getCurrentSlide();
    const box = document.querySelector('.reveal .slides').getBoundingClientRect();
    const scale = Reveal.getScale();
    let right = 0, bottom = 0, left = 0, top = 0;
    for (const el of slide.querySelectorAll('*')) {
        if (el.closest('aside.notes')) continue;
        // Inside a formula MathJax's struts reach past the line box; the formula's own box counts.
        if (el.parentElement && el.parentElement.closest('.MathJax, .MathJax_Display')) continue;
        const r = el.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;
        right = Math.max(right, (r.right - box.left) / scale);
        bottom = Math.max(bottom, (r.bottom - box.top) / scale);
        left = Math.min(left, (r.left - box.left) / scale);
        top = Math.min(top, (r.top - box.top) / scale);
    }
    const imgs = [...slide.querySelectorAll('img')];
    return {
        right, bottom, left, top,
        width: Reveal.getConfig().width, height: Reveal.getConfig().height,
        text: slide.innerText.trim().length,
        images: imgs.length,
        broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length,
        noAlt: imgs.filter(i => !(i.getAttribute('alt') || '').trim()).length,
        mathErrors: slide.querySelectorAll('.MathJax_Error, merror').length,
        rawMath: /\\$[^$\\s][^$]*\\$/.test(slide.innerText),
        sections: slide.querySelectorAll('section').length,
    };
}"""


def _wait_for_mathjax(page) -> None:
    page.evaluate("""() => new Promise(resolve => {
        if (!window.MathJax || !MathJax.Hub) { resolve(); return; }
        MathJax.Hub.Register.StartupHook("End", () => { MathJax.Hub.Queue(() => { resolve(); }); });
    })""")


def test_every_slide_renders_and_fits(decks, new_page, console, screenshots):
    slides, out, built = decks
    page = new_page(width=1280, height=720)
    page.goto((out / "index.html").as_uri())
    links = page.locator("ol a")
    import nbformat

    lectures = [p for p in slides.discover() if slides.has_figures(nbformat.read(p, as_version=4))]
    assert links.count() == len(built) == len(lectures) >= 10
    hrefs = links.evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert hrefs == [name for name, _, _ in built]
    problems = []
    for name, title, count in built:
        page.goto((out / name).as_uri())
        page.wait_for_function("() => window.Reveal && Reveal.isReady()")
        _wait_for_mathjax(page)
        assert page.title() == f"{title} slides"
        total = page.evaluate("() => Reveal.getTotalSlides()")
        assert total == count, f"{name}: reveal.js shows {total} slides, the deck has {count}"
        assert slides.MIN_SLIDES <= total <= slides.MAX_SLIDES
        for k in range(total):
            page.evaluate(f"() => Reveal.slide({k})")
            page.wait_for_function(f"() => Reveal.getIndices().h === {k}")
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            m = page.evaluate(MEASURE)
            where = f"{name} slide {k + 1}"
            if m["text"] == 0 and m["images"] == 0:
                problems.append(f"{where}: empty")
            if m["broken"] or m["noAlt"]:
                problems.append(f"{where}: {m['broken']} images not loaded, {m['noAlt']} without alt")
            if m["mathErrors"] or m["rawMath"]:
                problems.append(f"{where}: maths not typeset")
            if (m["right"] > m["width"] + TOLERANCE or m["bottom"] > m["height"] + TOLERANCE
                    or m["left"] < -TOLERANCE or m["top"] < -TOLERANCE):
                problems.append(f"{where}: content box {m['left']:.0f}..{m['right']:.0f} x "
                                f"{m['top']:.0f}..{m['bottom']:.0f} exceeds {m['width']}x{m['height']}")
            page.screenshot(path=str(screenshots / f"slides_{name[:2]}_{k + 1:02d}.png"))
    assert not problems, "\n".join(problems)
    console.assert_clean()
