"""Repository-wide pytest setup for the notebooks that nbval runs.

`pytest` (see ``[tool.pytest.ini_options]`` in pyproject.toml) collects the unit tests in
``tests/`` and every cell of ``notebooks/*.ipynb`` (``--nbval``, strict: each cell's new
output is compared with the stored one). This file adds what the measurements in
the course's measurements of nbval (kept in CONTRIBUTING.md's determinism rules) showed strict nbval needs:

* the sanitize file ``tests/nbval_sanitize.cfg`` by absolute path, so `pytest` works
  from any directory;
* cells run with ``store_history=True`` as in JupyterLab, so a trailing ``;`` hides a
  result (nbval#194);
* no output comparison for cells whose stored output is a widget view. Without a
  frontend, what the widget's Output area shows comes back to nbval as ordinary cell
  output. Such cells still run, and an exception inside a widget callback still fails
  them.

* a cell whose numbers come from chaotic training or from reductions that another BLAS
  kernel orders differently declares a tolerance in its metadata,
  ``"nbval-tolerance": {"abs": 0.03, "why": "..."}`` (optionally ``"rel"``): its text is
  compared exactly with every number masked, and each number within
  ``abs + rel * |stored|`` of the stored one (see ``tolerant_equal``). CONTRIBUTING.md
  ("Results that hold on every machine") says when to use it.

It relies on nbval 0.11 internals (``RunningKernel.execute_cell_input``, ``item.cell``,
``item.options``, ``IPyNbCell.compare_outputs``); pyproject.toml pins ``nbval==0.11.*``.
``tests/test_harness.py`` and ``tests/test_nbval_tolerance.py`` check each point.
"""

import math
import os
import re
from pathlib import Path

# One BLAS thread for the unit tests and for every kernel nbval starts (kernels inherit
# this environment). Measured on the 2-core machine under load: OpenBLAS's default two
# threads made notebook 02 take 36-73 s instead of 9-11 s, because the course's matrices
# are small and two threads per process oversubscribe the cores. Set before anything
# imports NumPy; an explicit setting in the caller's environment wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import nbval.kernel  # noqa: E402
import nbval.plugin  # noqa: E402

HERE = Path(__file__).resolve().parent
SANITIZE_FILE = HERE / "tests" / "nbval_sanitize.cfg"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# `pytester` runs pytest inside a test (tests/test_ci_policy.py uses it).
pytest_plugins = ["pytester"]


def pytest_configure(config):
    if getattr(config.option, "nbval_sanitize_with", "absent") is None:
        config.option.nbval_sanitize_with = str(SANITIZE_FILE)
    # Kernels inherit our environment; MPLBACKEND=Agg there would suppress every inline
    # figure and fail the comparison ("Missing output fields"). Unit tests that draw
    # call matplotlib.use("Agg") themselves.
    os.environ.pop("MPLBACKEND", None)


def _execute_cell_input(self, cell_input, allow_stdin=None):
    """nbval's RunningKernel.execute_cell_input with store_history=True (as JupyterLab runs
    cells); with False, IPython ignores a trailing ';' (nbval#194, ipython#14162)."""
    return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin,
                           stop_on_error=False)


nbval.kernel.RunningKernel.execute_cell_input = _execute_cell_input


def shows_widget(cell) -> bool:
    """True when one of the cell's stored outputs is a widget view."""
    return any(WIDGET_MIME in out.get("data", {}) for out in cell.get("outputs", []))


def pytest_collection_modifyitems(config, items):
    """Run widget cells but do not compare their output (see the module docstring).

    A cell that moves a slider of a widget shown earlier also redraws, but its stored
    output is empty, so this rule cannot see it: tag such cells ``nbval-ignore-output``.
    """
    for item in items:
        cell, options = getattr(item, "cell", None), getattr(item, "options", None)
        if cell is not None and options is not None and shows_widget(cell):
            options["check"] = False


# --- Tolerant comparison for the cells that declare it ------------------------------------

TOLERANCE_KEY = "nbval-tolerance"
# A number as the course prints it: 0.831, -1.2e-05, 17810, 96 (in "96 %"). A "-" right
# after a digit or a letter is a dash ("0.63-0.97"), not a sign.
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.]?\d)")


def tolerance_of(cell) -> dict | None:
    """The cell's tolerance spec, checked: ``{"abs": a, "rel": r, "why": text}`` and at most
    one of ``"lines"`` and ``"spans"``.

    ``abs`` and ``rel`` (at least one above 0): a number agrees if it is within
    ``abs + rel * |stored|``. Which numbers: every number of the output; with ``lines`` (a
    regular expression), the numbers of the stored lines it finds something in; with
    ``spans`` (a regular expression), the numbers inside what it matches on a stored line
    (inside its first group, if it has one). Every other number, and every word, is
    compared exactly. ``why``: what makes these numbers depend on the machine, and the
    spread measured across kernels.
    """
    spec = cell.get("metadata", {}).get(TOLERANCE_KEY)
    if spec is None:
        return None
    if not isinstance(spec, dict) or not str(spec.get("why", "")).strip():
        raise ValueError(f"{TOLERANCE_KEY} must be an object with a non-empty 'why', got {spec!r}")
    unknown = set(spec) - {"abs", "rel", "lines", "spans", "why"}
    if unknown:
        raise ValueError(f"{TOLERANCE_KEY}: unknown keys {sorted(unknown)}")
    for key in ("abs", "rel"):
        value = spec.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise ValueError(f"{TOLERANCE_KEY}: {key!r} must be a number >= 0, got {value!r}")
    if not spec.get("abs") and not spec.get("rel"):
        raise ValueError(f"{TOLERANCE_KEY}: give 'abs' or 'rel' (or both) above 0")
    if "lines" in spec and "spans" in spec:
        raise ValueError(f"{TOLERANCE_KEY}: give 'lines' or 'spans', not both")
    for key in ("lines", "spans"):
        if key in spec:
            try:
                re.compile(spec[key])
            except (TypeError, re.error) as err:
                raise ValueError(f"{TOLERANCE_KEY}: {key!r} must be a regular expression ({err})") from None
    return spec


def tolerant_numbers(line: str, spec: dict) -> list[bool]:
    """For each number of ``line`` (a line of stored output): is it compared within the
    tolerance?"""
    starts = [m.start() for m in NUMBER.finditer(line)]
    if "lines" in spec:
        return [re.search(spec["lines"], line) is not None] * len(starts)
    if "spans" in spec:
        spans = [m.span(1 if m.re.groups else 0) for m in re.finditer(spec["spans"], line)]
        return [any(a <= start < b for a, b in spans) for start in starts]
    return [True] * len(starts)


def _skeleton(text: str) -> str:
    """The text with every number masked and runs of spaces folded (a wider number shifts
    the columns of a table)."""
    return re.sub(r"[ \t]+", " ", NUMBER.sub("#", text)).strip()


def _line_agrees(stored: str, new: str, spec: dict) -> tuple[bool, float]:
    flags = tolerant_numbers(stored, spec)
    if not any(flags):
        return stored == new, 0.0
    if _skeleton(stored) != _skeleton(new):
        return False, math.nan
    worst = 0.0
    for tolerant, x, y in zip(flags, NUMBER.findall(stored), NUMBER.findall(new)):
        if not tolerant:
            if x != y:
                return False, worst
            continue
        x, y = float(x), float(y)
        worst = max(worst, abs(x - y))
        if not abs(x - y) <= spec.get("abs", 0) + spec.get("rel", 0) * abs(x):
            return False, worst
    return True, worst


def tolerant_equal(stored: str, new: str, spec: dict) -> tuple[bool, float]:
    """Do two outputs agree: the same words and the same lines, each number the spec covers
    within the tolerance and every other number exactly?

    Returns (agree, largest |new - stored| over the numbers compared within the tolerance;
    nan if the words differ).
    """
    old_lines, new_lines = stored.split("\n"), new.split("\n")
    if len(old_lines) != len(new_lines):
        return False, math.nan
    worst = 0.0
    for old, line in zip(old_lines, new_lines):
        agree, dev = _line_agrees(old, line, spec)
        worst = dev if math.isnan(dev) else max(worst, dev)
        if not agree:
            return False, worst
    return True, worst


# Largest deviation seen per tolerant cell in this session: printed at the end of the run,
# so that a maintainer sees how close to its tolerance each cell came on this machine.
TOLERANT_DEVIATIONS: dict[str, tuple[float, dict]] = {}     # nan: some output disagreed
_original_compare_outputs = nbval.plugin.IPyNbCell.compare_outputs


def _compare_outputs(self, test, ref, skip_compare=None):
    """nbval's comparison; for a cell with a tolerance spec, each new text output that
    agrees with the stored one within the tolerance is compared as the stored text."""
    spec = tolerance_of(self.cell)
    if spec is not None:
        worst, all_agree = 0.0, True
        # Outputs arrive with their streams merged (one per name), in a fixed order.
        for new, old in zip(test, ref):
            if new.get("output_type") != old.get("output_type") or new.get("name") != old.get("name"):
                continue
            fields = [(new, old, "text")] + [(new.get("data", {}), old.get("data", {}), key)
                                             for key in ("text/plain", "text/html", "text/markdown")]
            for new_fields, old_fields, key in fields:
                value, stored = new_fields.get(key), old_fields.get(key)
                if isinstance(value, str) and isinstance(stored, str):
                    agree, dev = tolerant_equal(stored, value, spec)
                    all_agree &= agree
                    if agree:
                        new_fields[key] = stored
                        worst = max(worst, dev)
        TOLERANT_DEVIATIONS[self.nodeid] = (worst if all_agree else math.nan, spec)
    return _original_compare_outputs(self, test, ref, skip_compare)


nbval.plugin.IPyNbCell.compare_outputs = _compare_outputs


def pytest_terminal_summary(terminalreporter):
    if TOLERANT_DEVIATIONS:
        terminalreporter.section("cells compared within a tolerance")
        for nodeid, (worst, spec) in sorted(TOLERANT_DEVIATIONS.items()):
            limit = ", ".join(f"{k} {spec[k]:g}" for k in ("abs", "rel") if spec.get(k))
            seen = "beyond the tolerance" if math.isnan(worst) else f"largest deviation {worst:.3g}"
            terminalreporter.write_line(f"{nodeid}: {seen} ({limit})")
