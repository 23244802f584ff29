"""Every committed notebook is stored the way strict nbval and readers need it.

Executed top to bottom in one go (execution counts 1..n, as after "Restart Kernel and Run
All"), kernel python3, no widget state or timing metadata (noisy diffs), no errors except
in cells tagged ``raises-exception``, no ``sys.path`` tricks, named ``NN_name.ipynb`` and
listed in the README's course map; every number the prose states is printed by a code cell
above it (or set in one). Plus: no junk tracked by git.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAME = re.compile(r"^\d{2}_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")
SKIP_TAGS = {"skip-execution", "nbval-skip"}
COURSE_MAP_LINK = re.compile(r"\]\((notebooks/[^)\s]+\.ipynb)\)")


def _ids(paths):
    return [p.name for p in paths]


def _tags(cell) -> set[str]:
    return set(cell.metadata.get("tags", []))


def _runs(cell) -> bool:
    """A code cell that a Run All executes (non-empty, not tagged to be skipped)."""
    return cell.cell_type == "code" and cell.source.strip() != "" and not _tags(cell) & SKIP_TAGS


@pytest.fixture(params=NOTEBOOKS, ids=_ids(NOTEBOOKS), scope="module")
def notebook(request):
    path = request.param
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    return path, nb


def test_the_course_has_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb file"


def test_file_name(notebook):
    path, _ = notebook
    assert NAME.match(path.name), f"{path.name}: name notebooks NN_name.ipynb (lower case, _)"


def test_valid_nbformat_4(notebook):
    path, nb = notebook
    assert nb.nbformat == 4, f"{path.name}: nbformat {nb.nbformat}, expected 4"
    nbformat.validate(nb)


def test_kernel_is_python3(notebook):
    path, nb = notebook
    kernelspec = nb.metadata.get("kernelspec", {})
    assert kernelspec.get("name") == "python3", f"{path.name}: kernelspec {kernelspec}"
    assert kernelspec.get("language", "python") == "python"


def test_executed_in_order(notebook):
    path, nb = notebook
    cells = [c for c in nb.cells if _runs(c)]
    counts = [c.execution_count for c in cells]
    assert None not in counts, (
        f"{path.name}: unexecuted code cell(s) "
        f"{[i for i, c in enumerate(nb.cells) if _runs(c) and c.execution_count is None]}; "
        "run make refresh NB=... (strict nbval never compares an unexecuted cell)")
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts}; re-run the whole notebook in a fresh kernel "
        "(make refresh NB=...)")


def test_skipped_and_empty_cells_keep_no_outputs(notebook):
    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and not _runs(cell):
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name}: cell {i} is empty or tagged to be skipped but has stored output")


def test_skip_tags_come_in_pairs(notebook):
    """nbclient (make refresh) knows `skip-execution`, nbval knows `nbval-skip`."""
    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        tags = _tags(cell) & SKIP_TAGS
        assert not tags or tags == SKIP_TAGS, f"{path.name}: cell {i} needs both tags {SKIP_TAGS}"


def test_no_widget_state_or_timing_metadata(notebook):
    path, nb = notebook
    assert "widgets" not in nb.metadata, (
        f"{path.name}: stored widget state (metadata.widgets); use make refresh")
    timed = [i for i, c in enumerate(nb.cells) if "execution" in c.metadata]
    assert not timed, f"{path.name}: per-cell timing metadata in cells {timed}; use make refresh"


def test_no_error_outputs(notebook):
    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "raises-exception" in _tags(cell):
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, (f"{path.name}: cell {i} stores {errors[0].ename}: {errors[0].evalue} "
                            "(tag the cell raises-exception if that is the point)")


def test_no_sys_path_manipulation(notebook):
    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not re.search(r"\bsys\.path\b|\bPYTHONPATH\b", cell.source), (
                f"{path.name}: cell {i} touches sys.path; bnutils is installed (pip install -e .)")


def test_listed_in_the_readme_course_map(notebook):
    path, _ = notebook
    assert f"notebooks/{path.name}" in course_map_links(), (
        f"{path.name} is not in the README's course map")


def course_map_links() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^## Course map\n(.*?)(?=^## )", readme, re.S | re.M)
    assert m, "README.md has no '## Course map' section"
    rows = [line for line in m.group(1).splitlines() if line.startswith("|")]
    assert rows[0].lower().replace(" ", "") == "|notebook|whatyouwilllearn|timetoworkthrough|"
    return [link for row in rows[2:] for link in COURSE_MAP_LINK.findall(row)]


def test_course_map_lists_only_existing_notebooks_in_order():
    links = course_map_links()
    assert links == sorted(links), "course map rows out of order"
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, f"the README's course map links to missing notebooks: {missing}"


def test_no_junk_tracked_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    junk = re.compile(r"(^|/)(\.ipynb_checkpoints|__pycache__|\.pytest_cache|\.venv|student)(/|$)"
                      r"|(^|/)Untitled[^/]*$|\.pyc$|(^|/)\.DS_Store$")
    tracked_junk = [f for f in files if junk.search(f)]
    assert not tracked_junk, f"junk tracked by git: {tracked_junk}"


# --- The evidence rule: every number the prose states is printed by a cell above it ---------

# A decimal number (0.93) or a percentage (96 %, 12.5%) in prose; integers are left alone
# (counts, notebook numbers, years are mostly integers and rarely measurements).
PROSE_NUMBER = re.compile(r"(?<![\w.\-/^])(\d+(?:\.\d+)?\s?%|\d+\.\d+)(?!\w)(?!\.\d)")
OUTPUT_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(\s?%)?(?![\w.]?\d)")
# A number right after these words names a place or a version, not a measurement.
NAMES_SOMETHING = re.compile(
    r"(?:exercises?|sections?|§|python|version|arxiv|figure|table|cells?|notebooks?|eq\.?|equation)"
    r"[\s:]*(?:\d+(?:\.\d+)?\s*(?:,|–|-|and|or|to)\s*)*$", re.I)
# Constants stated in prose that no cell sets or prints (defaults of other libraries, figures
# quoted from papers), with the reason. Keep it short: a measurement never belongs here.
PROSE_NUMBER_ALLOWLIST: dict[str, dict[str, str]] = {
    "00_start_here.ipynb": {"3.10": "the oldest supported Python", "4.0": "the licence, CC BY 4.0"},
}


def _mask_markup(md: str) -> str:
    """Prose only: no maths, code, link targets, HTML tags or heading numbers."""
    md = re.sub(r"\$\$.*?\$\$", " ", md, flags=re.S)
    md = re.sub(r"\$[^$\n]*\$", " ", md)
    md = re.sub(r"`[^`\n]*`", " ", md)
    md = re.sub(r"\]\([^)]*\)", "]", md)
    md = re.sub(r"<[^>]+>", " ", md)
    return re.sub(r"^(#+\s*)[\d.]+", r"\1", md, flags=re.M)


def _decimals(token: str) -> int:
    return len(token.split(".")[1]) if "." in token else 0


def _rounds_to(value: str, target: str, scale: int = 1) -> bool:
    step = Decimal(1).scaleb(-_decimals(target))
    return (Decimal(value) * scale).quantize(step, rounding=ROUND_HALF_UP) == Decimal(target)


def _stated_by(token: str, numbers: list[tuple[str, bool]]) -> bool:
    """Is the prose ``token`` one of ``numbers`` (as printed, or rounded to the prose's digits)?

    A percentage matches a printed percentage, or a printed fraction (0.962 ↔ 96.2 %).
    """
    target = token.rstrip("%").strip()
    for number, is_percent in numbers:
        if token.endswith("%"):
            if (is_percent and _rounds_to(number, target)) or (
                    not is_percent and "." in number and _rounds_to(number, target, 100)):
                return True
        elif not is_percent and _decimals(number) >= _decimals(target) and _rounds_to(number, target):
            return True
    return False


def _output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append(out["text"])
        parts += [out.get("data", {}).get(k, "") for k in ("text/plain", "text/html", "text/markdown")]
    return "\n".join(parts)


def unstated_prose_numbers(nb, allowed=()) -> list[tuple[int, str]]:
    """(cell index, number) for each number in the prose that no code cell above prints or sets."""
    numbers: list[tuple[str, bool]] = []
    missing = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for text in (_output_text(cell), cell.source):
                numbers += [(m.group(1), bool(m.group(2))) for m in OUTPUT_NUMBER.finditer(text)]
        elif cell.cell_type == "markdown":
            md = _mask_markup(cell.source)
            for m in PROSE_NUMBER.finditer(md):
                token = m.group(1).replace(" ", "")
                if NAMES_SOMETHING.search(md[max(0, m.start() - 40):m.start()]) or token in allowed:
                    continue
                if not _stated_by(token, numbers):
                    missing.append((i, token))
    return missing


def test_prose_numbers_are_printed_above(notebook):
    path, nb = notebook
    missing = unstated_prose_numbers(nb, PROSE_NUMBER_ALLOWLIST.get(path.name, {}))
    assert not missing, (
        f"{path.name}: the prose states numbers that no code cell above prints or sets "
        f"(cell, number): {missing}. Print them in the cell that measures them, or correct the prose.")


def test_prose_number_check_can_fail():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("acc = 0.9623\nprint(f'{acc:.3f}')", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="0.962\n")]),
        nbformat.v4.new_markdown_cell("## 2.1 Results\nBN reaches 0.962 (96 %), not 0.97; "
                                      "see Exercise 4.1 and $x^{0.5}$; plain reaches 12.5 %."),
    ])
    assert unstated_prose_numbers(nb) == [(1, "0.97"), (1, "12.5%")]


# --- One way to import: every notebook imports each bnutils name from its concept module ---

BNUTILS_IMPORT = re.compile(r"from (bnutils(?:\.\w+)*) import \(?([^)]*?)\)?\s*\Z", re.S)


def _bnutils_imports(source: str) -> list[tuple[str, list[str]]]:
    """(module, names) for each ``from bnutils... import ...`` statement of a code cell."""
    found = []
    for statement in re.findall(r"^from bnutils[^\n(]*(?:\([^)]*\)|[^\n]*)", source, re.M):
        m = BNUTILS_IMPORT.match(statement)
        assert m, f"cannot read the import {statement!r}"
        body = re.sub(r"#[^\n]*", "", m.group(2))       # comments inside the parentheses
        names = [n.split(" as ")[0].strip() for n in body.replace("\n", " ").split(",")]
        found.append((m.group(1), [n for n in names if n]))
    return found


def test_import_reader_sees_every_name():
    source = ("from bnutils.layers import (\n    Linear,\n    ReLU,  # why\n)\n"
              "from bnutils import BatchNorm, Linear as L\nfrom bnutils.checks import forward as check\n")
    assert _bnutils_imports(source) == [("bnutils.layers", ["Linear", "ReLU"]),
                                        ("bnutils", ["BatchNorm", "Linear"]),
                                        ("bnutils.checks", ["forward"])]


def test_names_are_imported_from_their_concept_module(notebook):
    """``from bnutils.layers import Linear`` everywhere, never ``from bnutils import Linear``
    in one notebook and the module form in another."""
    import importlib.util

    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for module_name, names in _bnutils_imports(cell.source):
            module = importlib.import_module(module_name)
            for name in names:
                obj = getattr(module, name, None)
                if obj is None and importlib.util.find_spec(f"{module_name}.{name}") is not None:
                    continue                    # ``from bnutils.checks import forward as check``
                assert obj is not None, (
                    f"{path.name}: cell {i} imports {name} from {module_name}: no such name")
                if inspect.ismodule(obj):       # ``from bnutils.checks import forward as check``
                    continue
                home = getattr(obj, "__module__", module_name)
                home = re.sub(r"\._\w+$", "", home)   # a private module's names live in its package
                assert home == module_name or not home.startswith("bnutils"), (
                    f"{path.name}: cell {i} imports {name} from {module_name}; "
                    f"import it from its concept module {home}")


def _first_imports() -> dict:
    """``{(module, name): first notebook number importing it}`` over the whole course."""
    first = {}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                for module_name, names in _bnutils_imports(cell.source):
                    for name in names:
                        first.setdefault((module_name, name), path.name[:2])
    return first


def test_introduced_in_names_the_first_notebook_that_imports_it():
    """CONTRIBUTING: every bnutils function or class a notebook imports says "Introduced in
    notebook NN." with NN the first notebook that imports it (a learner reading bnutils
    finds where it is taught)."""
    import importlib

    wrong = []
    for (module_name, name), first in sorted(_first_imports().items()):
        obj = getattr(importlib.import_module(module_name), name, None)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue                                   # modules, constants
        said = re.findall(r"Introduced in notebook (\d\d)\b", inspect.getdoc(obj) or "")
        if said != [first]:
            wrong.append(f"{module_name}.{name}: says {said or 'nothing'}, first imported in {first}")
    assert not wrong, "\n".join(wrong)


def test_course_map_times_follow_the_estimate_rule():
    """The README's "time to work through" is tools/time_estimate.py's number (CONTRIBUTING's
    rule: words, exercises, figures), not a guess."""
    from tools import time_estimate

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for link in course_map_links():
        row = next(line for line in readme.splitlines() if f"]({link})" in line)
        stated = int(re.search(r"\|\s*(\d+) min\s*\|\s*$", row).group(1))
        nb = nbformat.read(ROOT / link, as_version=4)
        assert stated == time_estimate.minutes(nb), (
            f"README says {stated} min for {link}; the rule gives {time_estimate.minutes(nb)} "
            f"({time_estimate.counts(nb)}): run python tools/time_estimate.py and update the map")


def _exercise_functions(nb) -> set[str]:
    cells = [c for c in nb.cells if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source]
    return {m.group(1) for cell in cells for m in re.finditer(r"^\s*def (\w+)\(", cell.source, re.M)}


def test_every_solution_passes_its_self_check(notebook):
    """In the instructor edition every check of an exercise function reads ✓: a change to a
    check (or to bnutils) that fails a reference solution would otherwise be stored by
    make refresh as a ✗ line, and strict nbval would then defend it."""
    path, nb = notebook
    exercises = _exercise_functions(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        calls = [m.group(1) for m in re.finditer(r"\bcheck\.\w+\(\s*(\w+)", cell.source)
                 if m.group(1) in exercises]
        if not calls:
            continue
        text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        passed = sum(line.startswith("✓") for line in text.splitlines())
        assert passed >= len(calls), (
            f"{path.name}: cell {i} checks {calls} but stores {passed} ✓ line(s):\n{text}")


def test_the_notebook_states_the_same_time_as_the_course_map(notebook):
    """A notebook's "About N minutes" (near its top) is the course map's number."""
    from tools import time_estimate

    path, nb = notebook
    top = " ".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown")
    stated = re.findall(r"About (\d+) minutes", top)
    if path.name.startswith("00_") and not stated:
        return                                  # the start page lists the map instead
    assert stated, f"{path.name}: no 'About N minutes' near the top"
    assert int(stated[0]) == time_estimate.minutes(nb), (
        f"{path.name} says about {stated[0]} minutes; the rule gives {time_estimate.minutes(nb)}")
