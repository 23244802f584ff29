"""What the hidden graded tests of the nbgrader course use (instructors only; not a lesson).

tools/nbgrader_course.py writes, into every graded test cell of the nbgrader *source*
notebooks, a ``### BEGIN HIDDEN TESTS`` block that nbgrader leaves out of the release.
The block runs in the learner's own kernel after every cell of the submission, so
anything a cell changed is still changed when it runs: ``check.bn_forward.evaluate``
replaced by an always-pass, ``CheckResult.passed`` patched, ``bnutils.batchnorm``'s
functions swapped. This module is loaded by the hidden block from its file, under a
private module name, never through ``sys.modules`` (see ``LOAD``), and gives it:

* ``checker_passes(module, check, fn)``: the exercise's self-check loaded anew from the
  installed files under a private package name, so the check run is the one on disk,
  with its own ``CheckResult``;
* ``run(fn, *args, forbidden=...)``: the learner's function called on copies of its
  arguments while the library's own implementation of the exercise is unavailable: a
  call into one of the ``forbidden`` bnutils functions (seen through ``sys.setprofile``,
  by file and name, so an alias, a copy loaded under another name or a patched module
  attribute does not hide it) fails the test with a message saying why;
* ``assert_close(actual, expected, what, ...)``: the comparison, in plain NumPy.

The expected values are not computed here: each hidden block holds its own small
reference and draws its inputs from a seed only the source notebook holds, plus one
draw nobody has seen. What an in-kernel test cannot stop is a cell that patches Python,
NumPy or IPython themselves (README, "For instructors", says how to spot one).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import itertools
import os
import sys

import numpy as np

#: The source of the lines a hidden block starts with: load this file as a private module.
LOAD = (
    "import importlib.util as _bn_u, sys as _bn_sys\n"
    "for _bn_f in _bn_sys.meta_path:     # bnutils' installed files, found without sys.modules\n"
    "    _bn_s = getattr(_bn_f, \"find_spec\", lambda *a: None)(\"bnutils\", None)\n"
    "    if _bn_s is not None:\n"
    "        break\n"
    "_bn_spec = _bn_u.spec_from_file_location(\n"
    "    \"_bn_hidden_grading\", _bn_s.submodule_search_locations[0] + \"/_grading.py\")\n"
    "_bn_g = _bn_u.module_from_spec(_bn_spec)\n"
    "_bn_spec.loader.exec_module(_bn_g)\n"
)

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_counter = itertools.count()

#: bnutils' own implementations, as (file under bnutils/, qualified name), by exercise kind.
FORWARD = (("batchnorm.py", "batchnorm_forward"),
           ("batchnorm.py", "BatchNorm.forward"), ("_moments.py", "normalize"),
           ("_moments.py", "normalize_scaled"),
           ("reference.py", "batchnorm_forward_loops"), ("reference.py", "batchnorm_forward_naive"),
           ("normalization.py", "layernorm_forward"), ("normalization.py", "groupnorm_forward"),
           ("normalization.py", "instancenorm_forward"), ("normalization.py", "LayerNorm.forward"),
           ("normalization.py", "GroupNorm.forward"), ("normalization.py", "_normalize_rows"))
BACKWARD = (("batchnorm.py", "batchnorm_backward"), ("batchnorm.py", "batchnorm_backward_staged"),
            ("batchnorm.py", "BatchNorm.backward"), ("reference.py", "batchnorm_backward_loops"),
            ("reference.py", "batchnorm_backward_naive"), ("reference.py", "numerical_jacobian"),
            ("gradcheck.py", "numerical_gradient"), ("batch_renorm.py", "batchrenorm_backward"),
            ("sharded_bn.py", "sharded_batchnorm_backward"))
LN_BACKWARD = (("normalization.py", "layernorm_backward"), ("normalization.py", "LayerNorm.backward"),
               ("normalization.py", "_normalize_rows_backward"), ("normalization.py", "groupnorm_backward"),
               ("normalization.py", "instancenorm_backward"), ("reference.py", "numerical_jacobian"),
               ("gradcheck.py", "numerical_gradient"))
STANDARDIZE = (("scaling.py", "standardize"), ("scaling.py", "apply_scaler"),
               ("scaling.py", "Scaler.transform"), ("scaling.py", "Scaler.fit_transform"))


class GradingError(AssertionError):
    """A hidden test failed; the message says why (nbgrader shows it in the feedback)."""


@contextlib.contextmanager
def _private_checks():
    """A private package whose ``checks`` are loaded anew from bnutils' files (their
    ``CheckResult``, ``self_check`` and every check), the rest of bnutils shared with the
    notebook's (so a layer the learner built is an instance of the check's class).

    Nothing of ``bnutils.checks`` comes from ``sys.modules``. The private modules are
    registered while the check runs (its imports inside functions need that), then removed.
    """
    private = f"_bn_graded_{os.getpid()}_{next(_counter)}"
    spec = importlib.machinery.ModuleSpec(private, None, is_package=True)
    spec.submodule_search_locations = [_PACKAGE_DIR]
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [_PACKAGE_DIR]
    sys.modules[private] = package
    try:
        for name, module in list(sys.modules.items()):
            if name.startswith("bnutils.") and not name.startswith(("bnutils.checks", "bnutils._grading")):
                sys.modules[private + name[len("bnutils"):]] = module
                if name.count(".") == 1:
                    setattr(package, name.split(".")[1], module)
        yield private
    finally:
        for key in [k for k in sys.modules if k == private or k.startswith(private + ".")]:
            del sys.modules[key]


def checker_passes(module: str, check: str, *args) -> None:
    """Run the self-check ``bnutils.checks.<module>.<check>``, loaded anew from its file,
    on ``args`` (the learner's function first); raise ``GradingError`` with its ✗ line
    unless it passes. A cell that replaced ``check.<name>.evaluate``, the module
    ``bnutils.checks.*`` or ``CheckResult.passed`` changed the notebook's copy, not this one."""
    with _private_checks() as private:
        checks = importlib.import_module(f"{private}.checks.{module}")
        core = importlib.import_module(f"{private}.checks._core")
        result = getattr(checks, check).evaluate(*args)
        if type(result) is not core.CheckResult or result.passed is not True:
            raise GradingError(f"the self-check says: {getattr(result, 'message', result)}")


def _genuine_setprofile():
    """``sys.setprofile`` unless a cell replaced it (then no call could be watched)."""
    setprofile = sys.setprofile
    if getattr(setprofile, "__self__", None) is not sys or \
            getattr(setprofile, "__name__", "") != "setprofile":
        raise GradingError("sys.setprofile was replaced in this notebook, so the graded test cannot "
                           "watch your function; run it on a fresh kernel without that cell")
    return setprofile


def _copy(value):
    return np.array(value, copy=True) if isinstance(value, np.ndarray) else value


def run(fn, *args, forbidden=(), why: str = "the exercise asks for your own code", **kwargs):
    """``fn(*args, **kwargs)`` on copies of the array arguments, with the bnutils functions
    in ``forbidden`` ((file, qualified name) pairs) unavailable.

    Raises ``GradingError`` naming the function if ``fn`` called one of them.
    """
    wanted = {(os.path.join(_PACKAGE_DIR, f), n) for f, n in forbidden}
    files = {f for f, _ in wanted}
    called = []
    setprofile = _genuine_setprofile()
    previous = sys.getprofile()

    def profiler(frame, event, arg):
        if event == "call":
            code = frame.f_code
            if code.co_filename in files:
                key = (code.co_filename, getattr(code, "co_qualname", code.co_name))
                if key in wanted and key not in called:
                    called.append(key)

    def refuse():
        path, name = called[0]
        module = os.path.splitext(os.path.basename(path))[0]
        return GradingError(f"your function calls bnutils' own {module}.{name}, which is unavailable "
                            f"while the graded test runs it: {why}")

    setprofile(profiler)
    try:
        result = fn(*(_copy(a) for a in args), **kwargs)
    except Exception as exc:        # e.g. the library refusing the test's inputs: say why
        if called:
            raise refuse() from exc
        raise
    finally:
        setprofile(previous)
    if called:
        raise refuse()
    return result


def as_arrays(result, n: int, what: str) -> tuple:
    """The ``n`` arrays the learner returned together (a tuple, a list, or a stacked array)."""
    if isinstance(result, np.ndarray) and n > 1 and result.ndim >= 1 and len(result) == n:
        result = tuple(result)
    if not isinstance(result, (tuple, list)) or len(result) != n:
        raise GradingError(f"return {what}")
    return tuple(np.asarray(r, dtype=np.float64) for r in result)


def assert_close(actual, expected, what: str, *, rtol: float = 1e-5, atol: float = 1e-7) -> None:
    """``actual`` has ``expected``'s shape, is finite and within ``atol + rtol·|expected|``."""
    try:
        actual = np.asarray(actual, dtype=np.float64)
    except (TypeError, ValueError):
        raise GradingError(f"{what}: not an array of numbers") from None
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise GradingError(f"{what}: shape {actual.shape}, expected {expected.shape}")
    if not np.all(np.isfinite(actual)):
        raise GradingError(f"{what}: contains NaN or inf")
    if not np.all(np.abs(actual - expected) <= atol + rtol * np.abs(expected)):
        raise GradingError(f"{what}: wrong on the graded test's own inputs")


def reset_ipython_error_display() -> None:
    """Undo a cell's changes to how IPython shows errors (a custom exception handler, a
    replaced ``showtraceback``): nbgrader scores a test by the error it shows."""
    shell = sys.modules.get("IPython")
    shell = getattr(shell, "get_ipython", lambda: None)() if shell else None
    if shell is None:
        return
    shell.custom_exceptions = ()
    for name in ("showtraceback", "_showtraceback", "showsyntaxerror", "CustomTB"):
        shell.__dict__.pop(name, None)
