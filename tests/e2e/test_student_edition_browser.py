"""The student edition runs in JupyterLab: the self-checks print ✗ "not done yet".

The edition is built by tools/make_student.py into the test server's root (see the
``lab`` fixture), never into the repository's ``student/``. The notebook runs to its last
cell (the exercises are stubs that raise NotImplementedError, which the self-checks
catch), with no traceback, and every self-check of an exercise says "not done yet".
Screenshot: ``screenshots/student_<notebook>.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

pytestmark = pytest.mark.e2e

# The notebook whose student edition is run: the BN forward pass (the most exercises),
# or the warm-up notebook until 03 exists.
CANDIDATES = ["03_batchnorm_forward.ipynb", "00_start_here.ipynb"]


def _expected_checks(path) -> int:
    """Self-check lines (✓) that the solved notebook prints in its exercise cells."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    count = 0
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "### BEGIN SOLUTION" in "".join(cell["source"]):
            for out in cell.get("outputs", []):
                text = "".join(out.get("text", ""))
                count += sum(1 for line in text.splitlines() if line.startswith("✓"))
    return count


def test_student_edition_shows_not_done_yet(lab_page, console, screenshots):
    name = next(n for n in CANDIDATES if (NOTEBOOKS / n).exists())
    expected = _expected_checks(NOTEBOOKS / name)
    assert expected >= 1, f"{name} has no self-checked exercise"

    lab_page.open(f"student/{name}")
    lab_page.run_all()

    texts = lab_page.output_texts()
    assert not [t for t in texts if "Traceback" in t], "a cell of the student edition raised"
    lines = [line for t in texts for line in t.splitlines()]
    not_done = [line for line in lines if line.startswith("✗") and "not done yet" in line]
    assert len(not_done) == expected, (
        f"expected {expected} '✗ … not done yet' lines, got {len(not_done)}:\n" + "\n".join(not_done))

    first = lab_page.code_cells().filter(has_text="not done yet").first
    lab_page.screenshot(first, screenshots / f"student_{name.removesuffix('.ipynb')}.png")
    console.assert_clean()
    print(f"student/{name}: {len(not_done)} self-checks say not done yet, e.g. {not_done[0]!r}")
