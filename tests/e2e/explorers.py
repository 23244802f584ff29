"""The course notebooks that show explorers, and the small notebooks the browser tests run.

Shared by tests/e2e/conftest.py (the JupyterLab server's ``explorers/`` folder),
test_lab_widgets.py, test_static_site.py and test_explorer_notebooks.py.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from tools import _notebooks

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


#: A code cell that shows an explorer: its last line calls a ``*_explorer(...)`` function.
EXPLORER_CALL = re.compile(r"^\s*(?:display\()?\w*_explorer\(.*\)\)?\s*;?\s*$")


def shows_explorer(cell) -> bool:
    """True for a code cell whose last line calls an explorer (read from its source, not
    from stored outputs, which a save in JupyterLab rewrites)."""
    if cell.get("cell_type") != "code":
        return False
    lines = [line for line in "".join(cell.get("source", "")).splitlines() if line.strip()]
    return bool(lines) and EXPLORER_CALL.match(lines[-1]) is not None


def explorer_cells(path: Path) -> int:
    """How many code cells of notebook ``path`` show an explorer."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return sum(shows_explorer(cell) for cell in nb.get("cells", []))


TITLE = re.compile(r"^#\s", re.M)


def explorer_notebook(path: Path):
    """A small notebook with what the explorers of course notebook ``path`` need, outputs cleared.

    Its cells: the notebook's title (its first markdown cell with a level-1 heading), its
    setup cell (the first code cell: every import, the course's figure style, the data)
    and every cell that shows an explorer, with their metadata (alt text, tags), in order.
    The explorers are functions of no argument that build their own data, so they draw
    here what they draw in the course (the notebooks set no matplotlib option outside the
    setup cell; ``test_explorer_notebooks_hold_every_explorer`` checks what it can), and
    a browser test need not run a whole notebook (minutes of training) to reach them.
    Whole notebooks run under nbval, and one whole notebook in JupyterLab
    (test_student_edition_browser.py).
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    title = [c for c in nb.cells if c.cell_type == "markdown" and TITLE.search(c.source)][:1]
    code = [c for c in nb.cells if c.cell_type == "code"]
    cells = title + code[:1] + [c for c in code[1:] if shows_explorer(c)]
    small = nbformat.v4.new_notebook(cells=copy.deepcopy(cells), metadata=copy.deepcopy(nb.metadata))
    return _notebooks.clear_outputs(small)


def write_explorer_notebooks(folder: Path) -> list[Path]:
    """``explorer_notebook`` of every course notebook that shows an explorer, written to
    ``folder`` under the course notebook's name; returns their paths."""
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in widget_notebooks():
        nbformat.write(explorer_notebook(path), folder / path.name)
        written.append(folder / path.name)
    return written


def widget_notebooks() -> list[Path]:
    """The course notebooks that show at least one explorer widget."""
    return [path for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) if explorer_cells(path)]


