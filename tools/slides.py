"""Build the course's slides, one reveal.js deck per notebook: what `make slides` runs.

    python tools/slides.py                   # every notebook -> build/slides/ (open build/slides/index.html)
    python tools/slides.py --out /tmp/deck   # somewhere else
    python tools/slides.py notebooks/05_*.ipynb   # some notebooks only

The decks are made from the notebooks as committed, executed, with their stored outputs
(nothing is run, and ``notebooks/`` is never written). Each deck is a new notebook that this
tool composes from the course notebook's cells, by one rule for every notebook, and that
nbconvert's reveal.js exporter turns into ``build/slides/NN_name.html``:

1. the title: the notebook's first heading and the paragraph that says what it is about;
2. "In this notebook you will": the learning objectives;
3. each numbered section (``## 1. ...``; also the unnumbered sections of notebook 00 and
   "When to use what") on a slide of its own: its heading and its lead paragraph, cut after
   the sentence that reaches ``LEAD_CHARS`` characters (the whole paragraph goes into the
   speaker notes, key ``s``);
4. every figure the notebook stores (a PNG output) on a slide of its own, under the heading
   of the (sub)section it belongs to, with its cell's alt text as the image's ``alt`` and as
   the speaker notes;
5. the exercises, by number and title; the recall questions, without their answers, as
   questions for discussion; the summary's bullets, the notebook's key claims, a few to a slide.

A notebook that stores no figure (the concept inventory's quizzes) gets no deck: it is not a
lecture. A deck with more than ``MAX_SLIDES`` slides first loses the lead slides of the sections that
also have a figure slide (the figure carries the section's heading), from the last one up.
``check_deck`` refuses a deck outside ``MIN_SLIDES``..``MAX_SLIDES`` and names it.

Nothing comes from a CDN, so the decks work offline: reveal.js is npm's package ``reveal.js``
(version ``REVEAL_VERSION``), installed by ``npm install`` into ``build/slides-npm/`` on the
first build (git ignores ``build/``) and copied into ``build/slides/reveal.js/``; MathJax 2.7
is copied from the PyPI package jupyter-server-mathjax, as the static site does. npm is the
only tool this needs beyond the test set (Node.js 18 or newer; Debian: ``apt install npm``).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
OUT = ROOT / "build" / "slides"
NPM_DIR = ROOT / "build" / "slides-npm"
TEMPLATE_DIR = Path(__file__).resolve().parent / "slides_template"
TEMPLATE_NAME = "bn_slides"
REVEAL_VERSION = "5.2.1"
REVEAL_DIR = "reveal.js"
MATHJAX_DIR = "mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
WIDTH, HEIGHT = 1280, 720
MIN_SLIDES, MAX_SLIDES = 10, 20
LEAD_CHARS = 380          # a section's lead text on its slide: sentences up to about this long
CLAIM_CHARS = 620         # summary bullets per slide: up to about this many characters
QUESTION_CHARS = 640      # recall questions on the discussion slide
#: Sections that get no lead slide of their own (what they hold has its own slides or none).
NO_LEAD = re.compile(r"^(setup|environment check|exercises?\b|exercise \d|recall questions|summary|"
                     r"references|a first widget)", re.IGNORECASE)
SUMMARY = re.compile(r"^summary$", re.IGNORECASE)
RECALL = re.compile(r"^recall questions$", re.IGNORECASE)
EXERCISE = re.compile(r"Exercise (\d+\.\d+)\s*[—–-]\s*([^\n*]+)")
#: An exercise without a title line: "**Exercise 0.1.** Complete `f(x)` so that ..., ..."
EXERCISE_BOLD = re.compile(r"\*\*Exercise (\d+\.\d+)\.?\*\*\s*([^\n.,;]+)")
OBJECTIVES = "**In this notebook you will**"
GUIDE = "docs/instructor-guide.md"


class SlidesError(RuntimeError):
    """A deck could not be built or breaks a rule; the message names the notebook."""


# --------------------------------------------------------------------------- reading a notebook
@dataclass
class Section:
    """A ``##`` section of a notebook: its heading, paragraphs and figures, in order."""
    title: str
    paragraphs: list[str] = field(default_factory=list)
    #: (heading of the (sub)section it is in, PNG as base64, alt text)
    figures: list[tuple[str, str, str]] = field(default_factory=list)
    subtitle: str | None = None       # the last ### heading seen in it


def _paragraphs(markdown: str) -> list[str]:
    """Blocks separated by blank lines; a fenced code block stays whole; answers dropped."""
    markdown = re.sub(r"<details>.*?</details>", "", markdown, flags=re.DOTALL)
    blocks, current, fenced = [], [], False
    for line in markdown.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        if not line.strip() and not fenced:
            if current:
                blocks.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    return [b for b in blocks if b.strip()]


def _alt_texts(cell) -> list[str]:
    alt = cell.get("metadata", {}).get("alt")
    if isinstance(alt, str):
        return [alt]
    return [a for a in alt if isinstance(a, str)] if isinstance(alt, list) else []


def read_sections(nb) -> tuple[str, list[str], list[Section]]:
    """The notebook's title, the paragraphs under it, and its ``##`` sections."""
    title, intro, sections = None, [], []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines, chunk = cell.source.splitlines(), []

            def flush(chunk=chunk):
                text = "\n".join(chunk)
                (sections[-1].paragraphs if sections else intro).extend(_paragraphs(text))
                chunk.clear()

            for line in lines:
                heading = re.match(r"^(#{1,3})\s+(.*)$", line)
                if heading and not any(ln.strip().startswith("```") for ln in chunk[:1]):
                    flush()
                    level, text = len(heading.group(1)), heading.group(2).strip()
                    if level == 1 and title is None:
                        title = text
                    elif level == 2:
                        sections.append(Section(text))
                    elif level == 3 and sections:
                        sections[-1].subtitle = text
                        sections[-1].paragraphs.append(f"### {text}")
                else:
                    chunk.append(line)
            flush()
        elif cell.cell_type == "code":
            alts = _alt_texts(cell)
            pngs = [o["data"]["image/png"] for o in cell.get("outputs", [])
                    if "image/png" in o.get("data", {})]
            for k, png in enumerate(pngs):
                alt = alts[k] if k < len(alts) else (alts[-1] if alts else "Figure")
                where = sections[-1] if sections else None
                if where is None:
                    continue
                heading = where.subtitle or where.title
                where.figures.append((heading, png if isinstance(png, str) else "".join(png), alt))
    if title is None:
        raise SlidesError("the notebook has no '# ' title heading")
    return title, intro, sections


def lead(text: str, limit: int = LEAD_CHARS) -> str:
    """The first sentences of ``text``, up to the one that reaches ``limit`` characters."""
    if len(text) <= limit:
        return text
    sentences = re.split(r"(?<=[.!?:])\s+(?=[A-Z(*$`\"“])", text)
    out = ""
    for s in sentences:
        out = f"{out} {s}".strip()
        if len(out) >= limit * 0.6:
            break
    return out


def _bullets(paragraphs: list[str]) -> list[str]:
    """The items of the markdown lists among ``paragraphs`` (continuation lines joined)."""
    items: list[str] = []
    for p in paragraphs:
        for line in p.splitlines():
            m = re.match(r"^\s*(?:[-*]|\d+\.|\*\*\d+\.\*\*)\s+(.*)$", line)
            if m:
                items.append(m.group(1).strip())
            elif items and line.strip():
                items[-1] += " " + line.strip()
    return items


def _chunks(items: list[str], budget: int, most: int) -> list[list[str]]:
    out: list[list[str]] = []
    for item in items:
        if out and len(out[-1]) < most and sum(map(len, out[-1])) + len(item) <= budget:
            out[-1].append(item)
        else:
            out.append([item])
    return out


# --------------------------------------------------------------------------- composing a deck
@dataclass
class Slide:
    """One slide: its markdown, its speaker notes and what kind it is."""
    kind: str             # title, objectives, section, figure, exercises, discussion, claims
    markdown: str
    notes: str = ""
    section: str = ""     # the ## section it belongs to (section and figure slides)


def _figure_markdown(heading: str, png: str, alt: str) -> str:
    return (f"## {heading}\n\n<p class=\"bn-figure\"><img src=\"data:image/png;base64,{png.strip()}\" "
            f"alt=\"{html.escape(alt, quote=True)}\"></p>")


def compose(nb) -> list[Slide]:
    """The slides of one notebook's deck, by the rule in the module docstring."""
    title, intro, sections = read_sections(nb)
    slides: list[Slide] = []
    about = [p for p in intro if not p.startswith(("*Prerequisites", OBJECTIVES, "- "))]
    prereq = next((p for p in intro if p.startswith("*Prerequisites")), "")
    body = f"# {title}\n\n" + (lead(about[0], 420) if about else "")
    if prereq:
        body += f"\n\n<p class=\"bn-small\">{_inline_md(prereq)}</p>"
    slides.append(Slide("title", body, notes="\n\n".join(about)))
    objectives = next((p for p in intro if p.startswith(OBJECTIVES)), None)
    if objectives:
        slides.append(Slide("objectives", "## In this notebook you will\n\n"
                            + objectives[len(OBJECTIVES):].strip()))
    for sec in sections:
        if not NO_LEAD.match(sec.title):
            text = next((p for p in sec.paragraphs if not p.startswith("### ")), "")
            short = lead(text)
            slides.append(Slide("section", f"## {sec.title}\n\n{short}",
                                notes=text if short != text else "", section=sec.title))
        for heading, png, alt in sec.figures:
            slides.append(Slide("figure", _figure_markdown(heading, png, alt), notes=alt,
                                section=sec.title))
    markdown = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    exercises = exercise_titles(markdown)
    if exercises:
        slides.append(Slide("exercises", "## Exercises in this notebook\n\n"
                            + "\n".join(f"- {e}" for e in exercises)
                            + "\n\n<p class=\"bn-small\">Each is a function with a self-check "
                              "that prints one ✓ or ✗ line.</p>"))
    recall = next((s for s in sections if RECALL.match(s.title)), None)
    if recall:
        questions = _bullets(recall.paragraphs)
        kept, used = [], 0
        for q in questions:
            if kept and used + len(q) > QUESTION_CHARS:
                break
            kept.append(q)
            used += len(q)
        if kept:
            slides.append(Slide("discussion", "## Questions for discussion\n\n"
                                + "\n".join(f"{i}. {q}" for i, q in enumerate(kept, 1)),
                                notes="The notebook's recall questions; its answers are in the "
                                      "instructor edition."))
    summary = next((s for s in sections if SUMMARY.match(s.title)), None)
    if summary:
        claims = _chunks(_bullets(summary.paragraphs), CLAIM_CHARS, 3)
        for k, group in enumerate(claims, 1):
            part = f" ({k}/{len(claims)})" if len(claims) > 1 else ""
            slides.append(Slide("claims", f"## What this notebook showed{part}\n\n"
                                + "\n".join(f"- {c}" for c in group)))
    # Too many: the lead slides of sections with a figure slide go first, last one first.
    for i in range(len(slides) - 1, -1, -1):
        if len(slides) <= MAX_SLIDES:
            break
        s = slides[i]
        if s.kind == "section" and any(f.kind == "figure" and f.section == s.section for f in slides):
            del slides[i]
    return slides


def exercise_titles(markdown: str) -> list[str]:
    """"Exercise N.M — title" for each exercise the markdown names, in number order."""
    found: dict[str, str] = {}
    for pattern in (EXERCISE, EXERCISE_BOLD):
        for number, text in pattern.findall(markdown):
            found.setdefault(number, text.strip())
    order = sorted(found, key=lambda n: tuple(int(k) for k in n.split(".")))
    return [f"Exercise {n} — {found[n]}" for n in order]


def _inline_md(text: str) -> str:
    """A one-paragraph markdown line as HTML: links to notebooks become plain text."""
    text = html.escape(text, quote=False)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _strip_notebook_links(markdown: str) -> str:
    # A link to another notebook (NN_name.ipynb) points at its deck instead.
    return re.sub(r"\]\((\d\d_[a-z0-9_]+)\.ipynb(#[^)]*)?\)", r"](\1.html)", markdown)


def deck_notebook(slides: list[Slide], title: str):
    """The slides as a notebook of markdown cells with reveal.js slide metadata."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["title"] = title
    for s in slides:
        cell = nbformat.v4.new_markdown_cell(_strip_notebook_links(s.markdown))
        cell.metadata["slideshow"] = {"slide_type": "slide"}
        cell.metadata["bn_slide_kind"] = s.kind
        nb.cells.append(cell)
        if s.notes:
            notes = nbformat.v4.new_markdown_cell(s.notes)
            notes.metadata["slideshow"] = {"slide_type": "notes"}
            nb.cells.append(notes)
    return nb


def check_deck(name: str, slides: list[Slide]) -> None:
    """Refuse a deck outside MIN_SLIDES..MAX_SLIDES slides."""
    if not MIN_SLIDES <= len(slides) <= MAX_SLIDES:
        raise SlidesError(f"{name}: {len(slides)} slides, outside {MIN_SLIDES}..{MAX_SLIDES}; "
                          "see the rule in tools/slides.py's docstring")


# --------------------------------------------------------------------------- rendering
def _exporter(reveal_prefix: str = REVEAL_DIR):
    from nbconvert import SlidesExporter

    exporter = SlidesExporter(template_name=TEMPLATE_NAME, extra_template_basedirs=[str(TEMPLATE_DIR)])
    exporter.reveal_url_prefix = reveal_prefix
    exporter.reveal_width, exporter.reveal_height = str(WIDTH), str(HEIGHT)
    exporter.reveal_theme = "white"
    exporter.mathjax_url = f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    # The template loads none of these; empty so that no page can name a CDN.
    exporter.require_js_url = exporter.jquery_url = exporter.mermaid_js_url = ""
    exporter.jupyter_widgets_base_url = exporter.widget_renderer_url = ""
    return exporter


def render(nb) -> str:
    body, _ = _exporter().from_notebook_node(nb)
    return body


def install_reveal(npm_dir: Path = NPM_DIR, log=print) -> Path:
    """npm's reveal.js package, installed into ``npm_dir`` once; returns its folder."""
    pkg = npm_dir / "node_modules" / "reveal.js"
    try:
        if json.loads((pkg / "package.json").read_text())["version"] == REVEAL_VERSION:
            return pkg
    except (OSError, ValueError, KeyError):
        pass
    npm = shutil.which("npm")
    if npm is None:
        raise SlidesError("the slides need reveal.js from npm, and npm is not installed "
                          "(Node.js 18 or newer; Debian/Ubuntu: sudo apt install npm)")
    npm_dir.mkdir(parents=True, exist_ok=True)
    (npm_dir / "package.json").write_text(json.dumps(
        {"name": "bn-course-slides", "private": True,
         "dependencies": {"reveal.js": REVEAL_VERSION}}, indent=2) + "\n")
    log(f"npm install reveal.js@{REVEAL_VERSION} into {npm_dir} ...")
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--omit=dev"],
                          cwd=npm_dir, capture_output=True, text=True)
    if done.returncode != 0 or not (pkg / "dist" / "reveal.js").exists():
        raise SlidesError(f"npm install reveal.js@{REVEAL_VERSION} failed:\n{done.stderr[-2000:]}")
    return pkg


def _copy_assets(out: Path, reveal_pkg: Path) -> None:
    shutil.copytree(reveal_pkg / "dist", out / REVEAL_DIR / "dist", dirs_exist_ok=True)
    shutil.copytree(reveal_pkg / "plugin" / "notes", out / REVEAL_DIR / "plugin" / "notes",
                    dirs_exist_ok=True)
    shutil.copy2(reveal_pkg / "LICENSE", out / REVEAL_DIR / "LICENSE")
    if not (out / MATHJAX_DIR / "MathJax.js").exists():
        try:
            import jupyter_server_mathjax
        except ImportError:
            raise SlidesError("the slides typeset maths with the MathJax files of the PyPI package "
                              "jupyter-server-mathjax, which is not installed") from None
        shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", out / MATHJAX_DIR,
                        dirs_exist_ok=True)


def index_html(decks: list[tuple[str, str, int]]) -> str:
    """The front page: one link per deck (file name, title, slide count), and the guide."""
    rows = "\n".join(f'<li><a href="{html.escape(f)}">{html.escape(t)}</a> '
                     f'<span class="n">({n} slides)</span></li>' for f, t, n in decks)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Batch Normalization course: slides</title>
<style>
body {{ font-family: system-ui, sans-serif; line-height: 1.5; max-width: 900px; margin: 2em auto;
       padding: 0 1em; color: #1f2328; }}
a {{ color: #0550ae; }} .n {{ color: #57606a; }}
</style>
</head>
<body>
<h1>Batch Normalization, from first principles to practice: slides</h1>
<p>One deck per notebook, made from the notebook's stored outputs (<code>make slides</code>).
Arrow keys move between slides; <kbd>s</kbd> opens the speaker notes (alt text of each figure,
the full paragraph a slide shortens), <kbd>f</kbd> full screen. The instructor guide, with a
session plan, is <code>{GUIDE}</code> in the course repository.</p>
<ol start="0">
{rows}
</ol>
</body>
</html>
"""


def has_figures(nb) -> bool:
    """Whether the notebook stores a figure (a PNG output): only those get a deck."""
    return any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []))


def discover(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    return sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb"))


def build(out: Path = OUT, sources: list[Path] | None = None, log=print) -> list[tuple[str, str, int]]:
    """Write one deck per notebook, the assets and index.html to ``out``; returns the decks."""
    import nbformat

    sources = sources or discover()
    reveal_pkg = install_reveal(log=log)
    out.mkdir(parents=True, exist_ok=True)
    _copy_assets(out, reveal_pkg)
    decks = []
    for src in sources:
        nb = nbformat.read(src, as_version=4)
        if not has_figures(nb):
            log(f"{src.name}: no deck (it stores no figure: a quiz, not a lecture)")
            continue
        try:
            slides = compose(nb)
        except SlidesError as err:
            raise SlidesError(f"{src.name}: {err}") from None
        check_deck(src.name, slides)
        title = read_sections(nb)[0]
        name = src.with_suffix(".html").name
        (out / name).write_text(render(deck_notebook(slides, title)), encoding="utf-8")
        decks.append((name, title, len(slides)))
        log(f"{name}: {len(slides)} slides")
    (out / "index.html").write_text(index_html(decks), encoding="utf-8")
    return decks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook")
    parser.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    try:
        build(args.out, [p.resolve() for p in args.notebooks] or None)
    except SlidesError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Open {args.out / 'index.html'} in a browser.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
