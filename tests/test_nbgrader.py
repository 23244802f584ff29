"""The notebooks as nbgrader sources: tools/nbgrader_cells.py and the nbgrader round trip.

The first part tests the stamping script on small notebooks and on copies of the course
notebooks (it never writes to notebooks/). The second part (needs nbgrader, the `grade`
extra that `make test` installs) builds an nbgrader course from copies of every course
notebook with tools/nbgrader_course.py (nbgrader's generate_assignment through its Python
API), checks that the release stubs the same cells as `make student`, and autogrades two
notebooks (``AUTOGRADED``) twice: the solved source gets full marks, the release zero.
Autograding every notebook took 6-80 s per run here (about 7 minutes for all, each
edition once); the two chosen take about 35 s together.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import nbformat
import pytest

from bnutils.checks import self_check

# nbgrader's gradebook (SQLAlchemy) warns about its own session handling on every autograde.
from tools import make_student, nbgrader_cells, nbgrader_course

pytestmark = pytest.mark.filterwarnings("ignore:Object of type <Submitted")

ROOT = Path(__file__).resolve().parents[1]

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# Autograded both ways: the first notebook (one exercise) and the BN forward pass (four).
AUTOGRADED = ("00_start_here", "00_test_yourself_before", "03_batchnorm_forward")
STUB = re.compile(r'^([ \t]*)raise NotImplementedError\(".*"\)$', re.M)


def _running_in_ci() -> bool:
    spec = importlib.util.spec_from_file_location("tests_conftest_for_nbgrader",
                                                  Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.running_in_ci()


def _require_nbgrader():
    """Skip without nbgrader, except under CI=true, where `make test` installs it."""
    if importlib.util.find_spec("nbgrader") is None:
        message = ("nbgrader is not installed (the grade extra: pip install -e '.[grade]'; "
                   "make test installs it)")
        if _running_in_ci():
            pytest.fail(f"{message}, but CI must run the nbgrader round trip")
        pytest.skip(message)


def _code(source, **metadata):
    return nbformat.v4.new_code_cell(source, metadata=metadata)


def _nb(*cells):
    nb = nbformat.v4.new_notebook(cells=list(cells))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    return nb


EXERCISE = ('def double(x):\n    """Exercise 9.1 - double it."""\n    ### BEGIN SOLUTION\n'
            '    return 2 * x\n    ### END SOLUTION\n\n\ncheck.double(double)')


def _meta(cell) -> dict:
    return dict(cell.metadata.get("nbgrader", {}))


def _generated(nb):
    return [c for c in nb.cells if nbgrader_cells.is_generated_test_cell(c)]


# --- the stamping script on small notebooks ------------------------------------------------

def test_exercise_cell_becomes_an_answer_cell_with_a_locked_test_after_it():
    nb = _nb(nbformat.v4.new_markdown_cell("Exercise 9.1"), _code(EXERCISE), _code("print('after')"))
    stamped, n = nbgrader_cells.stamp(nb, "demo.ipynb")
    assert n == 1 and len(stamped.cells) == 4
    assert _meta(stamped.cells[1]) == {"grade": False, "grade_id": "double", "locked": False,
                                       "schema_version": 3, "solution": True, "task": False}
    test = stamped.cells[2]
    assert _meta(test) == {"grade": True, "grade_id": "test_double", "locked": True, "points": 1,
                           "schema_version": 3, "solution": False, "task": False}
    assert test.source.splitlines() == [
        nbgrader_cells.TEST_HEADER,
        'assert check.double.evaluate(double).passed, "double: the self-check above says what to fix"']
    assert stamped.cells[1].source == EXERCISE           # the ✓/✗ cell is not changed
    assert stamped.cells[3].source == "print('after')"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", test["id"]) and test["id"] not in {
        c["id"] for c in stamped.cells if c is not test}


def test_stamping_again_changes_nothing_and_the_input_is_not_modified():
    nb = _nb(_code(EXERCISE), _code("x = 1"))
    before = json.dumps(nb, sort_keys=True)
    once, _ = nbgrader_cells.stamp(nb)
    assert json.dumps(nb, sort_keys=True) == before
    twice, _ = nbgrader_cells.stamp(once)
    assert json.dumps(twice, sort_keys=True) == json.dumps(once, sort_keys=True)


def test_the_test_goes_after_a_separate_self_check_cell():
    exercise = EXERCISE.replace("\n\n\ncheck.double(double)", "")
    nb = _nb(_code(exercise), nbformat.v4.new_markdown_cell("Now check it:"),
             _code("check.double(double)"), _code("y = 2"))
    stamped, _ = nbgrader_cells.stamp(nb)
    assert [c.source.split("\n")[0] for c in stamped.cells] == [
        "def double(x):", "Now check it:", "check.double(double)", nbgrader_cells.TEST_HEADER, "y = 2"]


def test_points_an_instructor_set_are_kept_and_the_test_moves_with_its_exercise():
    stamped, _ = nbgrader_cells.stamp(_nb(_code(EXERCISE), _code("x = 1")))
    stamped.cells[1].metadata["nbgrader"]["points"] = 5
    moved = copy.deepcopy(stamped)
    moved.cells = [moved.cells[2], moved.cells[1], moved.cells[0]]    # x = 1, test, exercise
    again, _ = nbgrader_cells.stamp(moved)
    assert [c.source.split("\n")[0] for c in again.cells] == [
        "x = 1", "def double(x):", nbgrader_cells.TEST_HEADER]
    assert _meta(again.cells[2])["points"] == 5
    assert again.cells[2]["id"] == stamped.cells[1]["id"]


def test_a_test_whose_exercise_is_gone_is_removed_and_other_graded_cells_stay():
    stamped, _ = nbgrader_cells.stamp(_nb(_code(EXERCISE)))
    own = _code("assert True", nbgrader={"grade": True, "grade_id": "mine", "locked": True,
                                         "points": 2, "schema_version": 3, "solution": False})
    stamped.cells = [stamped.cells[1], own]        # the exercise deleted, an instructor's test added
    again, n = nbgrader_cells.stamp(stamped)
    assert n == 0 and [c.source for c in again.cells] == ["assert True"]


def test_two_solutions_in_one_cell_are_graded_by_one_test_cell():
    source = ('def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n\n\n'
              'def g():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION\n\n\n'
              'check.f(f)\ncheck.g_check(g, data, tol=1e-3)')
    stamped, _ = nbgrader_cells.stamp(_nb(_code(source)))
    assert _meta(stamped.cells[0])["grade_id"] == "f_g"
    assert _meta(stamped.cells[1])["grade_id"] == "test_f_g"
    assert stamped.cells[1].source.splitlines()[1:] == [
        'assert check.f.evaluate(f).passed, "f: the self-check above says what to fix"',
        'assert check.g_check.evaluate(g, data, tol=1e-3).passed, "g: the self-check above says what to fix"']


@pytest.mark.parametrize("cells, message", [
    ([_code(EXERCISE.replace("check.double(double)", "print(double(2))"))],
     "no self-check call for double()"),
    ([_code(EXERCISE.replace("check.double(double)", "")), _code(EXERCISE.replace("double", "triple")),
      _code("check.double(double)")], "no self-check call for double()"),     # not after the next exercise
    ([_code("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")], "outside a function body"),
    ([_code("def f(:\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION")], "does not parse"),
])
def test_exercises_that_cannot_be_graded_are_refused_naming_the_cell(cells, message):
    with pytest.raises(nbgrader_cells.ExerciseError, match=re.escape(message)) as info:
        nbgrader_cells.stamp(_nb(*cells), "demo.ipynb")
    assert "demo.ipynb, cell 0" in str(info.value)


def test_the_graded_test_fails_for_a_wrong_answer_and_passes_for_a_right_one():
    """The test cell asserts on the CheckResult; the self-check itself only prints."""

    @self_check("Exercise 9.1 · double it")
    def double_check(fn):
        assert fn(3) == 6, "double 3"
        return "doubles"

    test_source = nbgrader_cells.stamp(_nb(_code(EXERCISE.replace("check.double(", "check.double_check(")))
                                       )[0].cells[1].source
    check = types.SimpleNamespace(double_check=double_check)

    def run(double):
        exec(test_source, {"check": check, "double": double})

    run(lambda x: 2 * x)
    for wrong in (lambda x: x + 2, lambda x: 3 * x):
        with pytest.raises(AssertionError, match="the self-check above says what to fix"):
            run(wrong)

    def stub(x):
        raise NotImplementedError("Exercise 9.1 (double): replace this line with your solution")

    with pytest.raises(AssertionError):
        run(stub)


def test_the_command_line_rewrites_in_place_and_check_mode_writes_nothing(tmp_path, capsys):
    path = tmp_path / "09_demo.ipynb"
    nbformat.write(_nb(_code(EXERCISE)), path)
    before = path.read_bytes()
    assert nbgrader_cells.main(["--check", str(path)]) == 1
    assert "would change" in capsys.readouterr().out and path.read_bytes() == before
    assert nbgrader_cells.main([str(path)]) == 0
    stamped = path.read_bytes()
    assert stamped != before
    assert nbgrader_cells.main([str(path)]) == 0
    assert "already up to date" in capsys.readouterr().out and path.read_bytes() == stamped
    assert nbgrader_cells.main(["--check", str(path)]) == 0
    bad = tmp_path / "10_bad.ipynb"
    nbformat.write(_nb(_code(EXERCISE.replace("check.double(double)", ""))), bad)
    assert nbgrader_cells.main([str(path), str(bad)]) == 2
    assert "10_bad.ipynb, cell 0" in capsys.readouterr().err


# --- the stamping script on the course notebooks (copies) ----------------------------------

@pytest.fixture(scope="module")
def stamped_course(tmp_path_factory):
    """Copies of the course notebooks, stamped in place by the command line (and, in
    ``original/``, the copies as they were before)."""
    out = tmp_path_factory.mktemp("stamped")
    (out / "original").mkdir()
    copies = []
    for path in NOTEBOOKS:          # the course notebooks as they were before stamping
        nb = nbformat.read(path, as_version=4)
        nb.cells = [c for c in nb.cells if not nbgrader_cells.is_generated_test_cell(c)]
        for cell in nb.cells:
            cell.metadata.pop("nbgrader", None)
        nbformat.write(nb, out / path.name)
        copies.append(Path(shutil.copy2(out / path.name, out / "original" / path.name)).parent.parent
                      / path.name)
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "nbgrader_cells.py"), *map(str, copies)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stamping_keeps_every_cell_and_output_of_the_course(path, stamped_course):
    """Only nbgrader metadata is added, and test cells: the ✓/✗ lines stay as they are."""
    original = nbformat.read(stamped_course / "original" / path.name, as_version=4)
    stamped = nbformat.read(stamped_course / path.name, as_version=4)
    kept = [c for c in stamped.cells if not nbgrader_cells.is_generated_test_cell(c)]
    assert len(kept) == len(original.cells)
    exercises = 0
    for before, after in zip(original.cells, kept):
        after = copy.deepcopy(after)
        if after.metadata.pop("nbgrader", None) is not None:
            exercises += 1
            assert nbgrader_cells.BEGIN in after.source
        assert after == before
    assert exercises == len(_generated(stamped)) >= 1
    for test in _generated(stamped):                      # every test cell follows its check
        index = stamped.cells.index(test)
        assert "check." in stamped.cells[index - 1].source
    again, _ = nbgrader_cells.stamp(stamped, path.name)
    assert again == stamped


def test_the_course_notebooks_are_stamped(capsys):
    assert nbgrader_cells.main(["--check"]) == 0, capsys.readouterr()


def test_make_student_builds_the_student_edition_of_stamped_notebooks(stamped_course, tmp_path):
    sources = sorted(stamped_course.glob("*.ipynb"))
    assert make_student.build(sources, tmp_path / "student", log=lambda *a: None) == []
    for path in sources:
        text = (tmp_path / "student" / path.name).read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in text and "raise NotImplementedError(" in text


@pytest.mark.parametrize("path", NOTEBOOKS[:1], ids=lambda p: p.stem)
def test_the_student_edition_leaves_out_the_graded_tests(path, stamped_course):
    """In the student edition a graded test cell would raise AssertionError for every
    unfinished exercise; its learners have the ✓/✗ line (tests/test_student_edition.py
    runs every student notebook to the end)."""
    source = nbformat.read(stamped_course / path.name, as_version=4)
    student, _ = make_student.student_notebook(source, path.name)
    assert _generated(student) == []
    assert len(student.cells) == len(source.cells) - len(_generated(source))


def test_the_course_keeps_a_source_notebook_the_instructor_edited(tmp_path):
    """tools/nbgrader_course.py: a course source edited since it was written (e.g. other
    points) is kept unless forced; an untouched one follows the course notebook."""
    src = tmp_path / "09_demo.ipynb"
    nbformat.write(_nb(_code(EXERCISE)), src)
    course = tmp_path / "course"
    quiet = {"log": lambda *a: None}
    assert nbgrader_course.write_sources([src], course, **quiet) == []
    target = course / "source" / "09_demo" / "09_demo.ipynb"
    assert _generated(nbformat.read(target, as_version=4))          # stamped on the way
    nbformat.write(_nb(_code(EXERCISE), _code("x = 1")), src)        # the course changes
    assert nbgrader_course.write_sources([src], course, **quiet) == []
    assert "x = 1" in target.read_text()
    edited = target.read_text().replace('"points": 1', '"points": 3')
    target.write_text(edited)                                        # the instructor edits
    assert nbgrader_course.write_sources([src], course, **quiet) == [target]
    assert target.read_text() == edited
    assert nbgrader_course.write_sources([src], course, force=True, **quiet) == []
    assert '"points": 1' in target.read_text()


# --- the nbgrader round trip ---------------------------------------------------------------

@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """An nbgrader course built from every course notebook, as `make nbgrader` builds it."""
    _require_nbgrader()
    root = tmp_path_factory.mktemp("nbgrader_course")
    logs = []
    start = time.perf_counter()
    assert nbgrader_course.build(NOTEBOOKS, root, log=logs.append) == 0, "\n".join(logs)
    print(f"nbgrader course built in {time.perf_counter() - start:.1f} s")
    return root


def _release(course, name):
    return nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)


def _source(course, name):
    return nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4)


def test_nbgrader_accepts_every_source_notebook(course):
    from nbgrader.nbgraderformat import MetadataValidator

    for path in NOTEBOOKS:
        MetadataValidator().validate_nb(_source(course, path.stem))
        assert (course / "release" / path.stem / path.name).is_file()
    assert (course / "nbgrader_config.py").read_text() == (ROOT / "nbgrader_config.py").read_text()


def _normalized(source: str) -> str:
    return STUB.sub(r"\1raise NotImplementedError(...)", source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_release_stubs_the_same_cells_as_the_student_edition(path, course):
    release = _release(course, path.stem)
    student, _ = make_student.student_notebook(_source(course, path.stem), path.name)
    by_id = {c["id"]: c for c in student.cells}
    stubbed_release, stubbed_student = set(), set()
    for cell in release.cells:
        twin = by_id.get(cell["id"])
        if twin is None:        # a cell the student edition leaves out may only be a graded test
            assert nbgrader_cells.is_generated_test_cell(cell), cell.source[:80]
            continue
        assert _normalized(cell.source) == _normalized(twin.source), (path.name, cell["id"])
        if cell.cell_type == "code":
            assert cell.outputs == [] and "SOLUTION" not in cell.source
            stubbed_release |= {cell["id"]} if STUB.search(cell.source) else set()
            stubbed_student |= {twin["id"]} if STUB.search(twin.source) else set()
    exercise_ids = {c["id"] for c in _source(course, path.stem).cells if _meta(c).get("solution")}
    assert stubbed_release == stubbed_student == exercise_ids != set()
    locked_tests = {c["id"] for c in release.cells if _meta(c).get("grade") and _meta(c).get("locked")}
    assert len(locked_tests) == len(exercise_ids)


@pytest.fixture(scope="module")
def api(course):
    api = nbgrader_course.nbgrader_api(course)
    api.config.Execute.timeout = 120
    # nbclient's occasional missed wake-up (tools/_notebooks.py, "the hang policy"): poll
    # in slices here too, or a run now and then waits out the cell timeout (seen: 300 s).
    notebooks = importlib.import_module("tools._notebooks")
    poll = getattr(notebooks, "_poll_in_slices", None)
    if poll is not None:
        poll()
    return api


def _autograde(api, course, name, student, submitted):
    from nbgrader.api import Gradebook

    folder = course / "submitted" / student / name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(submitted, folder / f"{name}.ipynb")
    start = time.perf_counter()
    result = api.autograde(name, student)
    elapsed = time.perf_counter() - start
    assert result["success"], result.get("error") or result.get("log")
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gradebook:
        notebook = gradebook.find_submission_notebook(name, name, student)
        grades = {g.name: (g.score, g.max_score) for g in notebook.grades}
    print(f"autograded {name} ({student}) in {elapsed:.1f} s: {grades}")
    return grades


@pytest.mark.parametrize("name", AUTOGRADED)
def test_autograding_gives_full_marks_to_the_solutions_and_zero_to_the_release(name, api, course):
    assert name in {p.stem for p in NOTEBOOKS}, f"AUTOGRADED names a notebook that is gone: {name}"
    solved = _autograde(api, course, name, "solved", course / "source" / name / f"{name}.ipynb")
    assert solved and all(score == max_score > 0 for score, max_score in solved.values()), solved
    blank = _autograde(api, course, name, "release", course / "release" / name / f"{name}.ipynb")
    assert blank.keys() == solved.keys()
    assert all(score == 0 for score, _ in blank.values()), blank
