"""Alt text for the course's figures: the convention, and which figures still lack it.

    python tools/figure_alt.py                      # every notebook: figure cells without alt text
    python tools/figure_alt.py notebooks/05_*.ipynb # some notebooks
    python tools/figure_alt.py --all                # every figure cell, with its alt text

**The convention.** A code cell that shows figures carries ``"alt"`` in its cell metadata:
a string when it shows one figure, or a list of strings, one per figure in output order,
when it shows several. A figure is an ``image/png`` output, or a widget view (the figure
the widget draws in its initial state, which the static site shows as a snapshot). Each
text says what the figure shows - its axes, what is compared, what to look at - in at
least ``MIN_LENGTH`` characters; never a placeholder such as "a plot". In the notebook's
JSON::

    {"cell_type": "code", "metadata": {"alt": "Test accuracy (y, 0 to 1) against the learning
     rate (x, log scale) for networks with and without BN: ..."}, ...}

The static site (``tools/build_html.py``) puts each text into its figure's ``<img alt>``
via ``attach_alt_text``; ``tests/test_figure_alt_text.py`` fails on a figure without one.
Metadata is the only thing that changes when alt text is added: write it with nbformat
(``set_alt_text``), never by re-executing the notebook.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a file (python tools/x.py): import tools from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from tools import _notebooks  # noqa: E402

ROOT = _notebooks.ROOT
PNG = "image/png"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
KEY = "alt"
MIN_LENGTH = 40
#: Texts that say nothing about a figure (compared lower-case, without end punctuation).
PLACEHOLDERS = {
    "no description has been provided for this image",      # nbconvert's
    "figure drawn by the widget in its initial state",       # build_html's widget snapshot
    "describe this figure", "alt text", "image", "figure", "plot", "a plot", "a figure",
}
GENERIC = re.compile(r"^(todo|fixme|xxx|tbd)\b|^(an? |the )?(plot|figure|image|graph|chart|picture)s?"
                     r"( (of|showing) (the )?(results?|data|output|figure|plot))?$")


@dataclass(frozen=True)
class Problem:
    """One figure cell whose alt text is missing or unusable."""
    cell: int               # index in nb.cells
    figures: int            # figures the cell shows
    title: str | None       # the figure's title, read from the source, if any
    message: str

    def __str__(self) -> str:
        title = f' "{self.title}"' if self.title else ""
        return f"cell {self.cell} ({self.figures} figure{'s' * (self.figures != 1)}{title}): {self.message}"


def figure_outputs(cell) -> list[int]:
    """Indices of the outputs of ``cell`` that are figures (PNG images and widget views)."""
    if cell.get("cell_type") != "code":
        return []
    return [i for i, out in enumerate(cell.get("outputs", []))
            if PNG in out.get("data", {}) or WIDGET_VIEW in out.get("data", {})]


def alt_texts(cell) -> list | None:
    """The cell's alt text as a list (one entry per figure), or None when it has none."""
    alt = cell.get("metadata", {}).get(KEY)
    if alt is None:
        return None
    return [alt] if isinstance(alt, str) else list(alt) if isinstance(alt, list) else [alt]


def text_problem(text) -> str | None:
    """Why ``text`` is not a usable alt text, or None when it is."""
    if not isinstance(text, str):
        return f"alt text must be a string, got {type(text).__name__}"
    plain = " ".join(text.split())
    if len(plain) < MIN_LENGTH:
        return f"alt text {plain!r} is {len(plain)} characters; say what it shows in at least {MIN_LENGTH}"
    key = plain.lower().rstrip(".!")
    if key in PLACEHOLDERS or GENERIC.search(key):
        return f"alt text {plain!r} is a placeholder; say what the figure shows"
    return None


_TITLE = re.compile(r"""(?:suptitle|set_title|title)\s*[(=]\s*[rfbu]{0,2}(["'])(.*?)(?<!\\)\1""", re.S)


def figure_title(source: str) -> str | None:
    """The first title a cell's source gives a figure (``title=``, ``set_title(``, ``suptitle(``)."""
    titles = [m.group(2) for m in _TITLE.finditer(source)]
    return titles[0].strip() if titles else None


def alt_problems(nb) -> list[Problem]:
    """Every figure cell of ``nb`` whose alt text is missing, miscounted, unusable or repeated."""
    problems, seen = [], {}
    for index, cell in enumerate(nb.get("cells", [])):
        figures = figure_outputs(cell)
        texts = alt_texts(cell)
        if not figures:
            if texts is not None:
                problems.append(Problem(index, 0, None, "has alt text but shows no figure"))
            continue
        title = figure_title(cell.get("source", "") if isinstance(cell.get("source"), str)
                             else "".join(cell.get("source", [])))
        if texts is None:
            problems.append(Problem(index, len(figures), title, "no alt text"))
            continue
        if len(texts) != len(figures):
            problems.append(Problem(index, len(figures), title,
                                    f"{len(texts)} alt text(s) for {len(figures)} figure(s)"))
            continue
        for text in texts:
            why = text_problem(text)
            if why is None and text in seen:
                why = f"alt text repeats the one of cell {seen[text]}"
            if why:
                problems.append(Problem(index, len(figures), title, why))
            elif isinstance(text, str):
                seen[text] = index
    return problems


def set_alt_text(cell, alt) -> None:
    """Write ``alt`` (a string, or a list with one string per figure) into the cell's metadata.

    Raises ValueError if the number of texts does not match the figures the cell shows or a
    text is unusable; changes nothing but ``cell.metadata["alt"]``.
    """
    figures = figure_outputs(cell)
    texts = [alt] if isinstance(alt, str) else list(alt)
    if len(texts) != len(figures):
        raise ValueError(f"alt: {len(texts)} text(s) for a cell that shows {len(figures)} figure(s)")
    for text in texts:
        why = text_problem(text)
        if why:
            raise ValueError(f"alt: {why}")
    cell.metadata[KEY] = texts[0] if len(texts) == 1 else texts


def attach_alt_text(nb) -> int:
    """Copy each figure cell's alt text onto its outputs (in place), for the HTML exporter.

    A PNG output gets it as ``output.metadata["image/png"]["alt"]`` (the course's nbconvert
    template writes that into ``<img alt>``); a widget view gets ``output.metadata["alt"]``
    (``build_html.staticize_widgets`` uses it for the snapshot's figure). Cells whose alt
    texts do not match their figures are left alone (the hygiene test reports them).
    Returns the number of figures that received a text.
    """
    done = 0
    for cell in nb.cells:
        figures, texts = figure_outputs(cell), alt_texts(cell)
        if not figures or texts is None or len(texts) != len(figures):
            continue
        for i, text in zip(figures, texts):
            if not isinstance(text, str):
                continue
            out = cell.outputs[i]
            meta = out.setdefault("metadata", {})
            if PNG in out.get("data", {}):
                meta.setdefault(PNG, {})[KEY] = text
            else:
                meta[KEY] = text
            done += 1
    return done


def main(argv: list[str] | None = None) -> int:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to check (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--all", action="store_true", help="list every figure cell with its alt text")
    args = parser.parse_args(argv)
    paths = args.notebooks or _notebooks.discover()
    missing = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        problems = alt_problems(nb)
        missing += len(problems)
        figures = sum(len(figure_outputs(c)) for c in nb.cells)
        print(f"{path.name}: {figures} figure(s), {len(problems)} problem(s)")
        for p in problems:
            print(f"  {p}")
        if args.all:
            bad = {p.cell for p in problems}
            for index, cell in enumerate(nb.cells):
                if figure_outputs(cell) and index not in bad:
                    for text in alt_texts(cell):
                        print(f"  cell {index}: {text}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
