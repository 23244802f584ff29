"""Every committed notebook is stored the way strict nbval and readers need it.

Executed top to bottom in one go (execution counts 1..n, as after "Restart Kernel and Run
All"), kernel python3, no widget state or timing metadata (noisy diffs), no errors except
in cells tagged ``raises-exception``, no ``sys.path`` tricks, named ``NN_name.ipynb`` and
listed in the README's course map. Plus: no junk tracked by git.
"""

from __future__ import annotations

import re
import shutil
import subprocess
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
