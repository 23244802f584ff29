"""The student edition: solutions become stubs, checks say "not done yet", edits are kept."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools import _notebooks, make_student, nbgrader_cells

ROOT = Path(__file__).resolve().parents[1]

NOTEBOOKS = _notebooks.discover()
PASS, FAIL = "✓", "✗"


def _nb(*sources):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def _exercise_names(nb) -> set[str]:
    """Names of the functions that contain a solution region."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and make_student.BEGIN in cell.source:
            lines = cell.source.split("\n")
            for i, line in enumerate(lines):
                if line.strip() == make_student.BEGIN:
                    names.add(make_student._exercise_label(lines, i).split("(")[-1].rstrip(")"))
    return names


def _check_lines(cell) -> list[str]:
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    return [line for line in text.splitlines() if line.startswith((PASS, FAIL))]


# --- the transformation -----------------------------------------------------------------

def test_solution_region_becomes_a_stub_naming_the_exercise():
    src = ('def f(x):\n    """Exercise 3.1 - double it."""\n    ### BEGIN SOLUTION\n'
           '    y = 2 * x\n    return y\n    ### END SOLUTION\n\ncheck(f)')
    new, n = make_student.strip_solutions(src)
    assert n == 1
    assert "2 * x" not in new and "SOLUTION" not in new
    assert '    raise NotImplementedError("Exercise 3.1 (f): replace this line with your solution")' in new
    assert new.endswith("check(f)")
    namespace = {}
    exec(new.replace("check(f)", ""), namespace)
    with pytest.raises(NotImplementedError, match="Exercise 3.1"):
        namespace["f"](1)


def test_two_regions_in_one_cell_and_nested_indentation():
    src = ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
           "class A:\n    def g(self):\n        ### BEGIN SOLUTION\n"
           "        return 2\n        ### END SOLUTION\n")
    new, n = make_student.strip_solutions(src)
    assert n == 2
    assert '        raise NotImplementedError("g: replace' in new


@pytest.mark.parametrize("src, message", [
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "inside a function body"),
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "without a matching"),
    ("def f():\n    return 1\n    ### END SOLUTION\n", "without a ### BEGIN SOLUTION"),
    ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n", "nested"),
])
def test_bad_markers_are_refused_with_the_place(src, message):
    with pytest.raises(make_student.SolutionMarkerError, match=message) as info:
        make_student.strip_solutions(src, "nb.ipynb, cell 4")
    assert "nb.ipynb, cell 4, line" in str(info.value)


def test_outputs_and_counts_are_cleared_and_the_source_is_not_modified():
    nb = _nb("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="✓ ok\n")]
    nb.cells[0].execution_count = 3
    before = json.dumps(nb, sort_keys=True)
    student, n = make_student.student_notebook(nb, "x.ipynb")
    assert n == 1 and student.cells[0].outputs == [] and student.cells[0].execution_count is None
    assert json.dumps(nb, sort_keys=True) == before


# --- never losing a learner's work ---------------------------------------------------------

def _write_source(tmp_path):
    src = tmp_path / "notebooks" / "01_demo.ipynb"
    src.parent.mkdir()
    nbformat.write(_nb("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"), src)
    return src


def test_edited_student_notebook_is_kept_unless_forced(tmp_path):
    src, out = _write_source(tmp_path), tmp_path / "student"
    assert make_student.build([src], out, log=lambda *a: None) == []
    target = out / "01_demo.ipynb"
    # Regenerating an untouched edition is fine (e.g. after the course was updated).
    assert make_student.build([src], out, log=lambda *a: None) == []
    # The learner writes a solution ...
    nb = nbformat.read(target, as_version=4)
    nb.cells[0].source = "def f():\n    return 42  # my answer"
    nbformat.write(nb, target)
    edited = target.read_bytes()
    # ... and a second build refuses to overwrite it.
    assert make_student.build([src], out, log=lambda *a: None) == [target]
    assert target.read_bytes() == edited
    # With force, the edit is backed up first.
    logs = []
    assert make_student.build([src], out, force=True, log=logs.append) == []
    assert b"my answer" not in target.read_bytes()
    backups = list((out / ".backup").glob("01_demo.*.ipynb"))
    assert len(backups) == 1 and backups[0].read_bytes() == edited
    assert any("backed up" in line for line in logs)


def test_unknown_student_notebook_counts_as_edited(tmp_path):
    src, out = _write_source(tmp_path), tmp_path / "student"
    out.mkdir()
    (out / "01_demo.ipynb").write_text("{}  my own file")
    assert make_student.build([src], out, log=lambda *a: None) == [out / "01_demo.ipynb"]
    assert (out / "01_demo.ipynb").read_text() == "{}  my own file"


def test_command_line_keeps_edits_with_exit_0_and_says_how_to_force(tmp_path):
    """Keeping a learner's edits is the normal case: exit 0, saying what was kept (issue 19)."""
    src, out = _write_source(tmp_path), tmp_path / "student"
    cmd = [sys.executable, str(ROOT / "tools" / "make_student.py"), str(src), "--out", str(out)]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    (out / "01_demo.ipynb").write_text((out / "01_demo.ipynb").read_text().replace("raise", "return 1  #"))
    edited = (out / "01_demo.ipynb").read_text()
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Kept your work" in run.stdout and "01_demo.ipynb" in run.stdout
    assert "FORCE=1" in run.stdout
    assert (out / "01_demo.ipynb").read_text() == edited
    assert subprocess.run(cmd + ["--force"], capture_output=True, text=True).returncode == 0
    assert (out / "01_demo.ipynb").read_text() != edited


@pytest.mark.parametrize("damage", [b"{not json", b"\xff\xfe", b'["a list"]', b'{"01_demo.ipynb": 3}'])
def test_damaged_manifest_is_reported_and_every_notebook_kept(tmp_path, damage):
    src, out = _write_source(tmp_path), tmp_path / "student"
    assert make_student.build([src], out, log=lambda *a: None) == []
    target = out / "01_demo.ipynb"
    target.write_text(target.read_text().replace("raise", "return 1  #"))
    edited = target.read_bytes()
    (out / make_student.MANIFEST).write_bytes(damage)
    logs = []
    assert make_student.build([src], out, log=logs.append) == [target]
    assert target.read_bytes() == edited
    assert any(line.startswith("warning:") and "damaged" in line for line in logs), logs
    # The manifest is valid again afterwards (for the notebooks written this time).
    json.loads((out / make_student.MANIFEST).read_text())


def test_damaged_manifest_on_the_command_line_is_no_traceback(tmp_path):
    src, out = _write_source(tmp_path), tmp_path / "student"
    cmd = [sys.executable, str(ROOT / "tools" / "make_student.py"), str(src), "--out", str(out)]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    (out / make_student.MANIFEST).write_text("{truncated")
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0 and "Traceback" not in run.stderr
    assert "damaged" in run.stderr


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_unwritable_student_folder_is_reported_before_writing_anything(tmp_path, monkeypatch):
    """Simulated (the tests may run as root, for whom chmod does not protect a folder)."""
    src, out = _write_source(tmp_path), tmp_path / "student"
    second = src.with_name("02_more.ipynb")
    second.write_bytes(src.read_bytes())
    assert make_student.build([src], out, log=lambda *a: None) == []
    before = _snapshot(out)
    real_access = make_student.os.access

    def access(path, mode, *args, **kwargs):      # student/ itself is read-only
        if mode & make_student.os.W_OK and make_student.Path(path) == out:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(make_student.os, "access", access)
    with pytest.raises(make_student.StudentEditionError, match="nothing was written") as info:
        make_student.build([src, second], out, force=True, log=lambda *a: None)
    assert "02_more.ipynb" in str(info.value) or str(out) in str(info.value)
    assert _snapshot(out) == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can write a read-only folder")
def test_read_only_student_folder_on_the_command_line(tmp_path):
    src, out = _write_source(tmp_path), tmp_path / "student"
    cmd = [sys.executable, str(ROOT / "tools" / "make_student.py"), str(src), "--out", str(out)]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    (out / "01_demo.ipynb").unlink()
    out.chmod(0o555)
    try:
        run = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        out.chmod(0o755)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "nothing was written" in run.stderr


def test_graded_test_cells_and_recall_answers_are_left_out():
    """An nbgrader test cell would stop Run All at the first unfinished exercise; the
    answers to recall questions are the instructor's. Both stay in the full edition."""
    graded = nbformat.v4.new_code_cell("assert check.f.evaluate(f).passed", metadata={
        "nbgrader": {"grade": True, "solution": False, "locked": True, "points": 1,
                     "grade_id": "test-f", "schema_version": 3}})
    recall = nbformat.v4.new_markdown_cell(
        "**1.** Why is the bias redundant?\n\n<details><summary>Answer</summary>\n\n"
        "β absorbs it.\n</details>\n\n**2.** Where does ε go?\n\n"
        "<details>\n<summary><b>Answer</b></summary>Inside the square root.</details>")
    exercise = nbformat.v4.new_code_cell('def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n'
                                         '    ### END SOLUTION')
    nb = nbformat.v4.new_notebook(cells=[exercise, graded, recall])
    student, n = make_student.student_notebook(nb, "demo.ipynb")
    assert n == 1 and len(student.cells) == 2
    text = student.cells[1].source
    assert "Why is the bias redundant?" in text and "Where does ε go?" in text
    assert "absorbs" not in text and "square root" not in text and "<details>" not in text
    assert "absorbs" in nb.cells[2].source                  # the source is untouched


def test_worked_answers_revealed_after_an_exercise_are_left_out_too():
    """Issue 24 reveals a derivation after the attempt; a class graded on the exercise must
    not get it (the student edition and every nbgrader release use ANSWER_BLOCK)."""
    for summary in ("The answer, to compare with yours", "The derivation (open it after your "
                    "attempt)", "The formula (open it after your attempt)"):
        cell = f"Try it first.\n\n<details><summary>{summary}</summary>\n\nγσ/√(σ²+ε)\n</details>\n"
        assert make_student.strip_answers(cell) == "Try it first.\n", summary
    kept = "<details><summary>More on ε</summary>\n\nBackground.\n</details>\n"
    assert make_student.strip_answers(kept) == kept      # an aside that answers nothing stays


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_collapsed_answer_in_the_course_is_one_the_editions_strip(path):
    """A new kind of collapsed answer (another <summary> wording) would leak into the student
    edition and the releases: every <details> block whose summary offers an answer matches."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        rest = make_student.strip_answers(cell.source)
        for summary in re.findall(r"<summary>(.*?)</summary>", rest, re.S):
            assert not re.search(r"answer|derivation|formula|solution|compare with yours|after your "
                                 r"attempt", summary, re.I), (
                f"{path.name}, cell {index}: <summary>{summary}</summary> is not left out of "
                f"the student edition (tools/make_student.py ANSWER_BLOCK)")


# --- the real course ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    assert make_student.build(NOTEBOOKS, out, log=lambda *a: None) == []
    return out


def test_every_notebook_has_exercises_and_no_solution_survives(student_dir):
    for path in NOTEBOOKS:
        full = nbformat.read(path, as_version=4)
        n_regions = sum(c.source.count(make_student.BEGIN) for c in full.cells if c.cell_type == "code")
        assert n_regions >= 1, f"{path.name} has no exercise"
        student = (student_dir / path.name).read_text()
        assert "BEGIN SOLUTION" not in student and "END SOLUTION" not in student
        assert student.count("raise NotImplementedError(") >= n_regions


@pytest.mark.slow          # every student notebook to its end (make check leaves it to make test)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_notebook_runs_to_the_end_and_every_check_fails(path, student_dir, tmp_path):
    """Every check line that reads ✓ in the full edition reads ✗ "not done yet" here."""
    full = nbformat.read(path, as_version=4)
    executed = tmp_path / path.name          # run as make refresh runs notebooks
    _notebooks.run(student_dir / path.name, executed, workdir=student_dir, timeout=300)
    student = nbformat.read(executed, as_version=4)
    exercises = _exercise_names(full)
    checked = 0
    kept = [cell for cell in full.cells if not nbgrader_cells.is_graded_test(cell)]
    for index, (f_cell, s_cell) in enumerate(zip(kept, student.cells)):
        if f_cell.cell_type != "code":
            continue
        errors = [o for o in s_cell.outputs if o.output_type == "error"]
        assert not errors, f"{path.name} cell {index} raised in the student edition: {errors[0].ename}"
        if not any(re.search(rf"\b{name}\b", f_cell.source) for name in exercises):
            continue  # a cell that uses no exercise function (its ✓ lines are not self-checks)
        full_lines, student_lines = _check_lines(f_cell), _check_lines(s_cell)
        passes = [line for line in full_lines if line.startswith(PASS)]
        for line in passes:
            title = line[2:].split(":")[0]
            match = [s for s in student_lines if s[2:].split(":")[0] == title]
            assert match, f"{path.name} cell {index}: no check line for {title!r} in the student edition"
            assert all(s.startswith(FAIL) and "not done yet" in s for s in match), match
            checked += 1
    assert checked >= 1, f"{path.name}: no passing self-check found in the full edition"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_full_edition_checks_pass(path):
    """In the committed (solved) notebooks, every self-check of an exercise reads ✓."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and make_student.BEGIN in cell.source:
            lines = _check_lines(cell)
            assert lines, f"{path.name} cell {index}: an exercise cell should print its self-check line"
            assert all(line.startswith(PASS) for line in lines), (path.name, index, lines)
