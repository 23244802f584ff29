"""The tolerant comparison of the root conftest.py: cells whose numbers depend on the BLAS kernel.

A cell that declares ``"nbval-tolerance": {"abs": ..., "rel": ..., "why": ...}`` in its
metadata is compared word for word with its numbers masked, and number by number within
``abs + rel * |stored|``. Every other cell stays strict. The last test runs strict nbval
with the repository's configuration on a small notebook whose stored numbers were edited
(about 4 s).
"""

from __future__ import annotations

import importlib.util
import math
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _root_conftest():
    spec = importlib.util.spec_from_file_location("bn_root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conftest = _root_conftest()
ACC = {"abs": 0.03, "why": "test"}


@pytest.mark.parametrize(("stored", "new"), [
    ("1    0.831 (0.63-0.97)   \n", "1    0.827 (0.62-0.97)   \n"),
    ("BN 0.412, Batch Renorm 0.713", "BN 0.437, Batch Renorm 0.690"),
    ("loss 9.98 |", "loss 10.00 |"),                         # a wider number shifts columns
    ("[-1.     -1.      1.    ]", "[-1.    -1.     1.    ]"),
])
def test_numbers_within_the_tolerance_agree(stored, new):
    agree, worst = conftest.tolerant_equal(stored, new, ACC)
    assert agree and worst <= 0.03


@pytest.mark.parametrize(("stored", "new", "why"), [
    ("BN 0.437 (0.41-0.46)", "BN 0.480 (0.45-0.52)", "0.043 is beyond 0.03"),
    ("largest stable learning rate: 8.0", "largest stable learning rate: 4.0", "a discrete outcome"),
    ("trained in 3 of 3 runs", "diverged in 2 of 3 runs", "other words"),
    ("0.5 0.6", "0.5 0.6 0.7", "another count of numbers"),
    ("mean 0.90", "mean nan", "nan is not a number within any tolerance"),
])
def test_numbers_or_words_beyond_the_tolerance_disagree(stored, new, why):
    agree, _ = conftest.tolerant_equal(stored, new, ACC)
    assert not agree, why


def test_relative_tolerance_scales_with_the_stored_value():
    spec = {"rel": 0.1, "why": "test"}
    assert conftest.tolerant_equal("|dx| = 8.2e-05", "|dx| = 8.9e-05", spec)[0]
    assert not conftest.tolerant_equal("|dx| = 8.2e-05", "|dx| = 9.2e-05", spec)[0]
    assert conftest.tolerant_equal("ratio 181.0", "ratio 195.0", spec)[0]


def test_words_that_look_like_numbers_stay_exact():
    # Version strings, names with digits and ranges are words: compared as they are.
    assert not conftest.tolerant_equal("numpy 2.4.6", "numpy 2.4.7", ACC)[0]
    assert not conftest.tolerant_equal("layer1 x", "layer2 x", ACC)[0]
    found = conftest.NUMBER.findall("0.63-0.97, -1.5, x2, 1e-05, 96 %")
    assert found == ["0.63", "0.97", "-1.5", "1e-05", "96"]


@pytest.mark.parametrize("spec", [
    {"abs": 0.03},                                  # no reason given
    {"abs": 0.03, "why": " "},
    {"why": "x"},                                   # no tolerance at all
    {"abs": -1, "why": "x"},
    {"abs": math.inf, "why": "x"},
    {"abs": True, "why": "x"},
    {"abs": 0.03, "why": "x", "ignore": True},      # unknown key
    0.03,
])
def test_a_malformed_spec_is_refused(spec):
    with pytest.raises(ValueError, match="nbval-tolerance"):
        conftest.tolerance_of({"metadata": {"nbval-tolerance": spec}})


def test_a_cell_without_a_spec_is_strict():
    assert conftest.tolerance_of({"metadata": {"tags": ["x"]}}) is None


# --- end to end: strict nbval with the repository's conftest on edited stored outputs ------

def _notebook(stored_texts, specs):
    cells = []
    for i, (text, spec) in enumerate(zip(stored_texts, specs)):
        cell = nbformat.v4.new_code_cell("print('acc 0.831 (0.63-0.97)')", execution_count=i + 1,
                                         outputs=[nbformat.v4.new_output("stream", name="stdout",
                                                                         text=text)])
        if spec is not None:
            cell.metadata["nbval-tolerance"] = spec
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


@pytest.mark.slow          # a pytest run with a kernel (make check leaves it to make test)
def test_strict_nbval_compares_tolerant_cells_within_their_tolerance(pytester):
    project = pytester.path
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copy(ROOT / "conftest.py", project / "conftest.py")
    (project / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "nbval_sanitize.cfg", project / "tests")
    (project / "notebooks").mkdir()
    # The code prints "acc 0.831 (0.63-0.97)"; the stored outputs say otherwise.
    nb = _notebook(
        ["acc 0.827 (0.62-0.97)\n",      # 0: within abs 0.03          -> pass
         "acc 0.870 (0.63-0.97)\n",      # 1: 0.039 off                -> fail
         "acc 0.827 (0.62-0.97)\n",      # 2: no spec, strict          -> fail
         "loss 0.827 (0.62-0.97)\n",     # 3: another word             -> fail
         "acc 0.831 (0.63-0.97)\n"],     # 4: no spec, identical       -> pass
        [ACC, ACC, None, ACC, None])
    nbformat.write(nb, project / "notebooks" / "01_t.ipynb")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(["*cells compared within a tolerance*",
                                 "*01_t.ipynb::Cell 0: largest deviation 0.01 (abs 0.03)*",
                                 "*01_t.ipynb::Cell 1: beyond the tolerance (abs 0.03)*"])
    for cell in (1, 2, 3):
        result.stdout.fnmatch_lines([f"*FAILED*01_t.ipynb::Cell {cell}*"])


def test_lines_limits_the_tolerance_to_the_lines_it_finds():
    stored = ("batch  BN                 LN\n"
              "2      0.480 (0.45-0.52)  0.877 (0.86-0.89)\n"
              "4      0.879 (0.84-0.90)  0.927 (0.91-0.94)\n")
    spec = {"abs": 0.07, "lines": r"^2\s", "why": "test"}
    covered = [any(conftest.tolerant_numbers(line, spec)) for line in stored.split("\n")]
    assert covered == [False, True, False, False]
    row_2 = stored.replace("0.480 (0.45-0.52)", "0.437 (0.41-0.46)")
    assert conftest.tolerant_equal(stored, row_2, spec)[0]
    assert not conftest.tolerant_equal(stored, row_2.replace("0.877", "0.878"), ACC | {"lines": "^4"})[0]
    row_4 = stored.replace("0.879", "0.880")                       # an exact line moved
    assert not conftest.tolerant_equal(stored, row_4, spec)[0]
    assert not conftest.tolerant_equal(stored, stored + "extra\n", spec)[0]


def test_a_bad_lines_pattern_is_refused():
    with pytest.raises(ValueError, match="lines"):
        conftest.tolerance_of({"metadata": {"nbval-tolerance": {"abs": 0.1, "lines": "(", "why": "x"}}})


def test_spans_limit_the_tolerance_to_the_numbers_they_cover():
    stored = ("2      0.869 (0.84-0.90)  0.437 (0.41-0.46)  0.877 (0.86-0.89)\n"
              "4      0.938 (0.93-0.96)  0.879 (0.84-0.90)  0.927 (0.91-0.94)\n")
    # only BN's entry (the second column) of the batch-size-2 row
    spec = {"abs": 0.2, "spans": r"^2 +\S+ \S+ +(\S+ \S+)", "why": "test"}   # numbers: 2, then 3 per entry
    assert conftest.tolerant_numbers(stored.split("\n")[0], spec) == [False] * 4 + [True] * 3 + [False] * 3
    assert conftest.tolerant_equal(stored, stored.replace("0.437 (0.41-0.46)", "0.351 (0.26-0.48)"), spec)[0]
    assert not conftest.tolerant_equal(stored, stored.replace("0.877", "0.878"), spec)[0]
    assert not conftest.tolerant_equal(stored, stored.replace("0.879", "0.880"), spec)[0]


def test_lines_and_spans_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        conftest.tolerance_of({"metadata": {"nbval-tolerance": {"abs": 0.1, "lines": "a", "spans": "b",
                                                                "why": "x"}}})
