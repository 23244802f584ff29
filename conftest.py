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

It relies on nbval 0.11 internals (``RunningKernel.execute_cell_input``, ``item.cell``,
``item.options``); pyproject.toml pins ``nbval==0.11.*``. ``tests/test_harness.py``
checks each of the three points.
"""

import os
from pathlib import Path

# One BLAS thread for the unit tests and for every kernel nbval starts (kernels inherit
# this environment). Measured on the 2-core machine under load: OpenBLAS's default two
# threads made notebook 02 take 36-73 s instead of 9-11 s, because the course's matrices
# are small and two threads per process oversubscribe the cores. Set before anything
# imports NumPy; an explicit setting in the caller's environment wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import nbval.kernel  # noqa: E402

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
