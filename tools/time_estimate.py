"""Estimate how long a notebook takes to work through, by the rule in CONTRIBUTING.md.

    python tools/time_estimate.py                 # every course notebook
    python tools/time_estimate.py notebooks/03_*.ipynb

Reading at about 100 words of prose per minute (markdown cells without maths, code, HTML
tags or the collapsed answers to recall questions), plus about 8 minutes per exercise (a
solution region) and 1 minute per figure or widget to study, rounded up to the next
5 minutes. The README's course map states these numbers (a test keeps them in step).
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import nbformat

if not __package__:  # run as a file (python tools/x.py): import tools from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from tools import _notebooks  # noqa: E402

WORDS_PER_MINUTE = 100
MINUTES_PER_EXERCISE = 8
MINUTES_PER_FIGURE = 1
ANSWER = re.compile(r"<details>.*?</details>", re.S)
MARKUP = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$|`[^`\n]*`|<[^>]+>|\]\([^)]*\)", re.S)
VISUAL = ("image/png", "application/vnd.jupyter.widget-view+json")


def prose_words(nb) -> int:
    """Words a learner reads in the markdown cells (no maths, code, tags or answers)."""
    text = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return len(re.findall(r"[^\W\d_][\w'’-]*", MARKUP.sub(" ", ANSWER.sub(" ", text))))


def counts(nb) -> dict:
    """Words of prose, exercises (solution regions) and figures/widgets (stored outputs)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    return {
        "words": prose_words(nb),
        "exercises": sum(c.source.count("### BEGIN SOLUTION") for c in code),
        "figures": sum(1 for c in code for o in c.get("outputs", [])
                       if any(k in o.get("data", {}) for k in VISUAL)),
    }


def minutes(nb) -> int:
    """The estimate in minutes, rounded up to a multiple of 5."""
    n = counts(nb)
    raw = (n["words"] / WORDS_PER_MINUTE + MINUTES_PER_EXERCISE * n["exercises"]
           + MINUTES_PER_FIGURE * n["figures"])
    return 5 * math.ceil(raw / 5)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])] or _notebooks.discover()
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        n = counts(nb)
        print(f"{path.name:40s} {n['words']:5d} words  {n['exercises']:2d} exercises  "
              f"{n['figures']:2d} figures/widgets  -> {minutes(nb)} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
