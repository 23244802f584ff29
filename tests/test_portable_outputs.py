"""The stored outputs hold on every machine, and the prose quotes them only as precisely as they hold.

A cell whose numbers depend on the BLAS kernel declares an ``nbval-tolerance`` (the root
conftest.py compares it within that tolerance; CONTRIBUTING.md, "Results that hold on every
machine"). Here:

* every spec is well formed and says why, and covers some number of the cell's output (a
  tolerance that covers nothing hides nothing, but it misleads);
* ``nbval-ignore-output`` (no comparison at all) stays on the few cells that print timings
  or describe the machine;
* a number the prose takes from a tolerant part of an output, and from nowhere exact, is
  quoted with "about" (or "roughly", "≈", ...) and with no more digits than the tolerance
  supports: one step of its last digit at least a third of the tolerance (about 0.4 for
  ±0.08, not 0.44 or 0.437).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
from test_notebook_hygiene import (
    NAMES_SOMETHING,
    NOTEBOOKS,
    OUTPUT_NUMBER,
    PROSE_NUMBER,
    _decimals,
    _ids,
    _mask_markup,
    _output_text,
    _stated_by,
)

from tools import portability_probe as probe

ROOT = Path(__file__).resolve().parents[1]


def _root_conftest():
    spec = importlib.util.spec_from_file_location("bn_root_conftest_outputs", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conftest = _root_conftest()

# Cells whose output is not compared at all, with the reason (notebook -> first line of code).
IGNORED_OUTPUTS = {
    "00_start_here.ipynb": ("import platform", "the environment check prints this machine's versions"),
    "04_batchnorm_backward.ipynb": ("# Forward + backward, three ways, timed", "raw timings"),
    "05_training_with_batchnorm.ipynb": ('net = make_mlp([64, 32, 10], "relu", rng=0)', "a timing ratio"),
}
QUALIFIER = re.compile(r"(?:about|approximately|roughly|around|near|nearly|some|≈|~)\s*$|"
                       r"(?:about|approximately|roughly|around|≈|~)\s+\S*\s*$", re.I)


@pytest.fixture(params=NOTEBOOKS, ids=_ids(NOTEBOOKS), scope="module")
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_every_tolerance_spec_is_valid_and_covers_some_number(notebook):
    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        spec = conftest.tolerance_of(cell) if cell.cell_type == "code" else None
        if spec is None:
            continue
        text = _output_text(cell)
        covered = [flag for line in text.split("\n") for flag in conftest.tolerant_numbers(line, spec)]
        assert any(covered), f"{path.name}: cell {i}'s tolerance covers no number of its stored output"


def test_ignore_output_is_kept_for_timings_and_the_environment(notebook):
    path, nb = notebook
    ignored = [c.source.splitlines()[0] for c in nb.cells
               if c.cell_type == "code" and "nbval-ignore-output" in c.metadata.get("tags", [])]
    allowed = IGNORED_OUTPUTS.get(path.name)
    assert all(allowed and line.startswith(allowed[0]) for line in ignored), (
        f"{path.name}: outputs not compared at all: {ignored}. Declare a tolerance instead "
        "(CONTRIBUTING.md, 'Results that hold on every machine'); only timings and the "
        "environment check may skip the comparison (IGNORED_OUTPUTS here, with the reason).")


def printed_numbers(nb):
    """Per cell: [(number, is_percent, tolerance or None)] of what a code cell prints or sets.

    ``tolerance`` is the absolute tolerance at that number when a spec covers it."""
    per_cell = []
    for cell in nb.cells:
        found = []
        if cell.cell_type == "code":
            spec = conftest.tolerance_of(cell)
            for line in _output_text(cell).split("\n"):
                covered = []
                if spec is not None:
                    flags = conftest.tolerant_numbers(line, spec)
                    covered = [m.span() for m, f in zip(conftest.NUMBER.finditer(line), flags) if f]
                for m in OUTPUT_NUMBER.finditer(line):
                    number, is_percent = m.group(1), bool(m.group(2))
                    tolerant = any(a <= m.start(1) < b for a, b in covered)
                    tol = (spec.get("abs", 0) + spec.get("rel", 0) * abs(float(number))) if tolerant else None
                    found.append((number, is_percent, tol))
            found += [(m.group(1), bool(m.group(2)), None) for m in OUTPUT_NUMBER.finditer(cell.source)]
        per_cell.append(found)
    return per_cell


def fragile_quotes(nb) -> list[tuple[int, str, str]]:
    """(cell, number, what is wrong) for each prose number taken only from tolerant outputs
    and quoted more precisely than they hold, or without "about"."""
    problems, seen = [], []
    for i, (cell, printed) in enumerate(zip(nb.cells, printed_numbers(nb))):
        seen += printed
        if cell.cell_type != "markdown":
            continue
        md = _mask_markup(cell.source)
        for m in PROSE_NUMBER.finditer(md):
            token = m.group(1).replace(" ", "")
            if NAMES_SOMETHING.search(md[max(0, m.start() - 40):m.start()]):
                continue
            sources = [(n, p, tol) for n, p, tol in seen if _stated_by(token, [(n, p)])]
            if not sources or any(tol is None for _, _, tol in sources):
                continue                          # unstated (another test), or stated exactly
            tol = min(tol for _, _, tol in sources) * (100 if token.endswith("%") else 1)
            step = 10.0 ** -_decimals(token.rstrip("%").strip())
            if step < tol / 3:
                problems.append((i, token, f"more digits than its tolerance ±{tol:g} supports"))
            if not QUALIFIER.search(md[max(0, m.start() - 30):m.start()]):
                problems.append((i, token, 'its value moves between machines: say "about"'))
    return problems


def test_prose_quotes_tolerant_numbers_only_as_precisely_as_they_hold(notebook):
    path, nb = notebook
    problems = fragile_quotes(nb)
    assert not problems, f"{path.name}: (cell, number, problem): {problems}"


def test_the_fragile_quote_check_can_fail():
    cell = nbformat.v4.new_code_cell("print(acc)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="BN 0.437, LN 0.884\n")])
    cell.metadata["nbval-tolerance"] = {"abs": 0.08, "spans": r"(?<=BN )\S+(?=,)", "why": "test"}
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell(
        "BN reaches 0.437 and about 0.437, roughly 0.44, about 0.4 and 0.4; LN 0.884.")])
    assert fragile_quotes(nb) == [
        (1, "0.437", "more digits than its tolerance ±0.08 supports"),
        (1, "0.437", 'its value moves between machines: say "about"'),
        (1, "0.437", "more digits than its tolerance ±0.08 supports"),
        (1, "0.44", "more digits than its tolerance ±0.08 supports"),
        (1, "0.4", 'its value moves between machines: say "about"'),
    ]


def test_the_probe_reports_strict_cells_that_moved_and_tolerant_cells_against_their_tolerance():

    def notebook(texts):
        cells = []
        for i, text in enumerate(texts):
            cell = nbformat.v4.new_code_cell("print(x)", execution_count=i + 1, outputs=[
                nbformat.v4.new_output("stream", name="stdout", text=text)])
            if i < 2:
                cell.metadata["nbval-tolerance"] = {"abs": 0.05, "why": "test"}
            cells.append(cell)
        return nbformat.v4.new_notebook(cells=cells)

    stored = notebook(["acc 0.437\n", "acc 0.437\n", "acc 0.437\n", "same\n"])
    moved = notebook(["acc 0.451\n", "acc 0.501\n", "acc 0.438\n", "same\n"])
    report = probe.compare(stored, moved, conftest)
    assert [(i, verdict) for i, verdict, _ in report] == [(0, "within"), (1, "BEYOND"), (2, "STRICT")]
    assert "largest deviation 0.014 (abs 0.05)" in report[0][2]
    assert "+acc 0.438" in report[2][2]
    assert set(probe.variants(Path("/x"))) == {"default", "prescott", "haswell", "sandybridge", "nosimd",
                                                "plus", "minus"}
