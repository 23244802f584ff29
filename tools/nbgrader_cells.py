"""Make the course notebooks valid nbgrader source notebooks; safe to run again and again.

    python tools/nbgrader_cells.py                 # notebooks/*.ipynb, rewritten in place
    python tools/nbgrader_cells.py --check         # exit 1 if a notebook would change
    python tools/nbgrader_cells.py path/to/NN_x.ipynb ...

For every exercise cell (a code cell with ``### BEGIN SOLUTION``) it

- sets the cell's nbgrader metadata: an autograded-answer cell (``solution: true``,
  ``grade: false``, ``locked: false``, ``schema_version: 3``), its ``grade_id`` the name of
  the function the solution sits in;
- finds the exercise's self-check, the ``check.<name>(<function>)`` call after the
  function (in the same cell or a later one, before the next exercise), and puts right
  after that cell a locked, graded test cell (``grade: true``, ``locked: true``,
  ``solution: false``, ``task: false``, its points from ``POINTS``) that asserts the
  same check as a test::

      assert check.bn_forward.evaluate(bn_forward).passed, "..."

  A self-check prints its ✓/✗ line and never raises, so nbgrader would give points for
  any answer; ``evaluate`` returns the ``CheckResult`` and the ``assert`` fails for a stub
  or a wrong answer. The learner-facing ✓/✗ cell is not changed.

Running it again changes nothing. Test cells it wrote earlier are recognised by their
first line (``TEST_HEADER``) and rewritten in place, moved if the exercise moved, and
removed if their exercise is gone; points an instructor changed are kept (a test cell
records the table's points it was given under ``TABLE_POINTS_KEY``; other points are the
instructor's). Outputs of
other cells are not touched, so a refreshed notebook stays refreshed (a new test cell has
no output, and prints none when run).

nbgrader itself is not needed to run this script (tests/test_nbgrader.py runs nbgrader on
the result).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

if not __package__:  # run as a file (python tools/x.py): import tools from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from tools import _notebooks  # noqa: E402

ROOT = _notebooks.ROOT
BEGIN = "### BEGIN SOLUTION"
SCHEMA_VERSION = 3
TEST_HEADER = "# Graded test (nbgrader; instructors only): the self-check above, as an assertion."
#: Points of an exercise missing from POINTS.
DEFAULT_POINTS = 1
#: Points per exercise (the ``grade_id`` of its answer cell: the function's name), by
#: difficulty: 1 recalls or applies one formula, 2 needs the right axes, shapes or a case
#: analysis, 3 derives something (a backward pass, a scaling law) or builds a layer. An
#: instructor who changes a test cell's points keeps them (see ``stamp``); edit this table
#: to change the course's defaults.
POINTS = {
    "standardize": 1,
    "scale_features": 2, "hessian_condition_number": 2, "fastest_lr": 2,
    "compounding_factor": 1, "layers_to_grow": 2, "most_saturated_layer": 1,
    "bn_by_hand": 1, "bn_forward": 2, "bn_forward_spatial": 2, "output_stats": 2,
    "dgamma_dbeta": 1, "bn_backward": 3, "fixed_backward": 2, "project_out": 2,
    "scaled_gradient": 3, "scaled_gradient_per_feature": 3, "ln_backward": 3,
    "add_batchnorm": 2, "largest_stable_lr": 1, "update_ratios": 1,
    "update_running": 1, "fold_linear_bn": 3, "predict": 1,
    "effective_lr": 2, "train_mode_variance": 2,
    "spatial_bn_backward": 3, "zero_gamma_block": 2, "predict_stream_variance": 1,
    "survivors_at_batch_size_2": 1, "merge_stats": 3, "adabn": 3, "group_norm_forward": 2,
    "my_answers": 1,                # the concept inventory, before 01 and after 09
}
#: The cell metadata key (outside nbgrader's) that records the points this script wrote,
#: so that points an instructor changed are told from the table's.
TABLE_POINTS_KEY = "bn_table_points"


class ExerciseError(ValueError):
    """An exercise cell this script cannot turn into an nbgrader exercise."""


@dataclass(frozen=True)
class Exercise:
    """One exercise cell and the self-checks that grade it."""

    cell_index: int                  # the cell with the solution region(s)
    functions: tuple[str, ...]       # the functions the solution regions sit in
    check_cell_index: int            # the (last) cell holding their self-check calls
    assertions: tuple[str, ...]      # one ``check.x.evaluate(f)`` expression per function


def solution_functions(source: str, where: str) -> tuple[str, ...]:
    """Names of the functions that contain a solution region, in source order.

    Raises ExerciseError if a region is not inside a function (tools/make_student.py
    refuses those too) or the cell does not parse.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ExerciseError(
            f"{where}: the exercise cell does not parse ({exc.msg}, line {exc.lineno})") from None
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    names = []
    for lineno, line in enumerate(source.split("\n"), start=1):
        if line.strip() != BEGIN:
            continue
        enclosing = [f for f in functions if f.lineno < lineno <= f.end_lineno]
        if not enclosing:
            raise ExerciseError(f"{where}, line {lineno}: a solution region outside a function body")
        innermost = max(enclosing, key=lambda f: f.lineno)
        if innermost.name not in names:
            names.append(innermost.name)
    return tuple(names)


def _check_calls(source: str, function: str) -> list[str]:
    """The ``evaluate`` expressions of the self-check calls in ``source`` that grade ``function``.

    A self-check call is a top-level statement ``<module>.<check>(function, ...)``: an
    attribute call whose first argument is the exercise's function itself (the ``def``
    in the exercise's own cell is not an expression, so that cell can be searched whole).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in tree.body:
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        if not (isinstance(call.func, ast.Attribute) and call.args
                and isinstance(call.args[0], ast.Name) and call.args[0].id == function):
            continue
        func = ast.get_source_segment(source, call.func)
        args = [ast.get_source_segment(source, a) for a in call.args]
        args += [ast.get_source_segment(source, k) if k.arg is None else
                 f"{k.arg}={ast.get_source_segment(source, k.value)}" for k in call.keywords]
        found.append(f"{func}.evaluate({', '.join(args)})")
    return found


def is_graded_test(cell) -> bool:
    """An nbgrader graded test cell (a code cell, ``grade`` true, ``solution`` false): it
    asserts on the self-check, for autograding only, so the student edition and the site
    leave it out. The one definition of the rule."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and meta.get("grade") is True and not meta.get("solution")


def is_generated_test_cell(cell) -> bool:
    """True for a graded test cell that this script wrote."""
    return is_graded_test(cell) and cell.source.startswith(TEST_HEADER)


def find_exercises(cells, name: str) -> list[Exercise]:
    """Every exercise of a notebook (given as its list of cells) with its self-check."""
    exercise_cells = [i for i, c in enumerate(cells) if c.cell_type == "code" and BEGIN in c.source]
    exercises = []
    for k, index in enumerate(exercise_cells):
        where = f"{name}, cell {index}"
        functions = solution_functions(cells[index].source, where)
        stop = exercise_cells[k + 1] if k + 1 < len(exercise_cells) else len(cells)
        assertions, last = [], index
        for function in functions:
            for j in range(index, stop):
                cell = cells[j]
                if cell.cell_type != "code" or is_generated_test_cell(cell):
                    continue
                calls = _check_calls(cell.source, function)
                if calls:
                    assertions.append(calls[0])
                    last = max(last, j)
                    break
            else:
                raise ExerciseError(
                    f"{where}: no self-check call for {function}() before the next exercise "
                    f"(expected a line like `check.{function}({function})`)")
        exercises.append(Exercise(index, functions, last, tuple(assertions)))
    return exercises


def solution_metadata(grade_id: str) -> dict:
    return {"grade": False, "grade_id": grade_id, "locked": False,
            "schema_version": SCHEMA_VERSION, "solution": True, "task": False}


def graded_test_metadata(grade_id: str, points: float) -> dict:
    return {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
            "schema_version": SCHEMA_VERSION, "solution": False, "task": False}


def table_points(functions) -> float:
    """The points of an exercise grading ``functions``: the sum of their ``POINTS``."""
    return sum(POINTS.get(f, DEFAULT_POINTS) for f in functions)


def _points(old_cell, table: float) -> float:
    """The points a rewritten test cell gets: the instructor's if they changed them (they
    differ from the table's points the cell was written with), else the table's."""
    if old_cell is None:
        return table
    meta = old_cell.metadata["nbgrader"]
    old = meta.get("points", DEFAULT_POINTS)
    written = old_cell.metadata.get(TABLE_POINTS_KEY, DEFAULT_POINTS)
    return table if old == written else old


def graded_test_source(exercise: Exercise) -> str:
    lines = [TEST_HEADER]
    for function, expression in zip(exercise.functions, exercise.assertions):
        lines.append(f'assert {expression}.passed, "{function}: the self-check above says what to fix"')
    return "\n".join(lines)


def _cell_id(base: str, taken: set[str]) -> str:
    """A valid nbformat cell id (1-64 of [A-Za-z0-9-_]) from ``base``, unique in ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_-]", "-", base)[:60]
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base[:57]}-{n}", n + 1
    return candidate


def stamp(nb: nbformat.NotebookNode, name: str = "notebook") -> tuple[nbformat.NotebookNode, int]:
    """Return a stamped copy of ``nb`` (the input is not modified) and its number of exercises."""
    nb = copy.deepcopy(nb)
    old_cells = {}
    kept = []
    for cell in nb.cells:
        if is_generated_test_cell(cell):
            old_cells[cell.metadata["nbgrader"].get("grade_id")] = cell
        else:
            kept.append(cell)
    exercises = find_exercises(kept, name)
    taken_ids = {c.get("id") for c in kept if c.get("id")}
    inserts = {}
    for exercise in exercises:
        cell = kept[exercise.cell_index]
        grade_id = "_".join(exercise.functions)
        nbgrader = solution_metadata(grade_id)
        cell.metadata["nbgrader"] = nbgrader
        test_id = f"test_{grade_id}"
        old = old_cells.get(test_id)
        table = table_points(exercise.functions)
        points = _points(old, table)
        old_cell_id = old.get("id") if old is not None else None
        cell_id = old_cell_id if old_cell_id and old_cell_id not in taken_ids else _cell_id(
            f"nbgrader-{test_id}", taken_ids)
        taken_ids.add(cell_id)
        test = nbformat.v4.new_code_cell(source=graded_test_source(exercise),
                                         metadata={"nbgrader": graded_test_metadata(test_id, points),
                                                   TABLE_POINTS_KEY: table})
        test["id"] = cell_id
        if old is not None and (old.source, old.metadata, old.get("id")) == (
                test.source, test.metadata, cell_id):
            test = old          # unchanged: keep its execution count (make refresh ran it)
        elif old is not None and old.source == test.source:
            test["execution_count"] = old.get("execution_count")     # only its metadata changed:
            test["outputs"] = old.get("outputs", [])                  # it ran as it is
        inserts.setdefault(exercise.check_cell_index, []).append(test)
    cells = []
    for index, cell in enumerate(kept):
        cells.append(cell)
        cells.extend(inserts.get(index, []))
    nb.cells = cells
    return nb, len(exercises)


def _serialize(nb) -> str:
    return nbformat.writes(nb) + "\n"


def stamp_files(paths: list[Path], check_only: bool = False, log=print) -> list[Path]:
    """Stamp notebook files in place; return those that changed (or, with check_only,
    would change). Every notebook is stamped first, so an ExerciseError writes nothing."""
    results = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        stamped, n = stamp(nbformat.reads(text, as_version=4), path.name)
        new_text = _serialize(stamped)
        results.append((path, n, json.loads(new_text) != json.loads(text), new_text))
    changed = []
    for path, n, differs, new_text in results:
        if differs:
            changed.append(path)
            if not check_only:
                path.write_text(new_text, encoding="utf-8")
        state = ("would change" if check_only else "updated") if differs else "already up to date"
        log(f"{path.name}: {n} exercise{'s' if n != 1 else ''}, {state}")
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to stamp (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook is not stamped yet")
    args = parser.parse_args(argv)
    paths = args.notebooks or _notebooks.discover()
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 2
    try:
        changed = stamp_files(paths, check_only=args.check)
    except ExerciseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check and changed:
        print(f"{len(changed)} notebook(s) need `python tools/nbgrader_cells.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
