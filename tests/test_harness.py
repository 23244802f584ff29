"""The notebook harness itself: sanitize file, tools/refresh_notebooks.py, the root conftest.py.

The last test builds a small notebook with every kind of cell the course uses (trailing
``;``, a widget whose callback prints and plots, ``%timeit``, tagged cells), refreshes it
with the real script, and runs strict nbval on it with the repository's own pytest
configuration, plus a notebook whose widget callback raises (about 8 s in all).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

from tools import _notebooks, refresh_notebooks

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"




def sanitize(text: str) -> str:
    """Apply the sanitize file the way nbval does (every pair, in file order)."""
    for regex, replace in get_sanitize_patterns(SANITIZE.read_text(encoding="utf-8")):
        text = re.sub(regex, replace, text)
    return text


def sanitized_notebook(text: str) -> str:
    """A notebook file's text with every output sanitized as nbval sees it: each output's
    text joined into one string first (the file stores it as a list of lines, and a pattern
    such as the %timeit one spans two lines)."""
    nb = json.loads(text)
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if isinstance(out.get("text"), list):
                out["text"] = sanitize("".join(out["text"]))
            for mime, value in out.get("data", {}).items():
                if isinstance(value, list):
                    out["data"][mime] = sanitize("".join(value))
    return sanitize(json.dumps(nb, indent=1, sort_keys=True))


# --- the sanitize file --------------------------------------------------------------------

def test_the_slowest_run_note_of_timeit_is_sanitized_in_a_stored_notebook():
    """A loaded machine makes %timeit print "The slowest run took ..." before its result in
    one run and not in the next (make test failed on it once): as nbval does, the stored
    notebook's two forms compare equal."""
    result = "1.2 µs ± 0.3 µs per loop (mean ± std. dev. of 2 runs, 10 loops each)\n"
    note = ("The slowest run took 6.75 times longer than the fastest. This could mean that an "
            "intermediate result is being cached.\n")

    def notebook(lines):
        return json.dumps({"cells": [{"cell_type": "code", "outputs": [
            {"name": "stdout", "output_type": "stream", "text": lines}]}]})
    assert sanitized_notebook(notebook([note, result])) == sanitized_notebook(notebook([result]))
    assert sanitize(notebook([note, result])) != sanitize(notebook([result]))   # line by line: not



def test_sanitize_file_pairs_all_load():
    text = SANITIZE.read_text(encoding="utf-8")
    n_regex = sum(line.startswith("regex: ") for line in text.splitlines())
    pairs = get_sanitize_patterns(text)
    assert len(pairs) == n_regex == 5      # a pair with an empty replace: would silently vanish
    assert "\r" not in text
    for regex, replace in pairs:
        re.compile(regex)
        assert replace.strip() and not regex.startswith(" ")


@pytest.mark.parametrize(("first", "second"), [
    ("[<matplotlib.lines.Line2D at 0x7f3a2b1c9d50>]", "[<matplotlib.lines.Line2D at 0x7fed00112233>]"),
    ("/tmp/ipykernel_9829/25862698.py:1: RuntimeWarning: divide by zero",
     "/tmp/ipykernel_123/4444.py:3: RuntimeWarning: divide by zero"),
    ("1.23 µs ± 45.6 ns per loop (mean ± std. dev. of 3 runs, 1,000 loops each)",
     "The slowest run took 5.12 times longer than the fastest. This could mean that an "
     "intermediate result is being cached.\n"
     "987 ns ± 1.2 ns per loop (mean ± std. dev. of 3 runs, 1,000 loops each)"),
    ("CPU times: user 1.2 ms, sys: 0 ns, total: 1.2 ms\nWall time: 1.5 ms",
     "CPU times: user 3 ms, sys: 1 ms, total: 4 ms\nWall time: 9.8 ms"),
    ("100%|##########| 10/10 [00:00<00:00, 1553445.93it/s]",
     "100%|##########| 10/10 [00:01<00:00,  9.12it/s]"),
])
def test_sanitize_makes_run_specific_text_equal(first, second):
    assert first != second
    assert sanitize(first) == sanitize(second)


@pytest.mark.parametrize("text", [
    "mean = 0.0000, std = 1.0000",
    "array([ 1.2345, -0.5   ])",
    "Exercise 3.1 · BN forward: ✓ matches the reference on 3 batches",
    "batch 0x12 (short hex is kept)",
])
def test_sanitize_leaves_course_numbers_alone(text):
    assert sanitize(text) == text


# --- refresh: the tidy step, no kernel -----------------------------------------------------

def _executed_notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.metadata["kernelspec"] = {"name": "bn-course", "display_name": "BN", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    view = nbformat.v4.new_output("display_data", data={
        "text/plain": "interactive(...)",
        WIDGET_VIEW: {"model_id": "01b27eee9bc04b748486c2030ba39abd", "version_major": 2,
                      "version_minor": 0}})
    widget_cell = nbformat.v4.new_code_cell("w", execution_count=1, outputs=[view])
    widget_cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    skipped = nbformat.v4.new_code_cell("slow()", execution_count=2, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="old\n")])
    skipped.metadata["tags"] = ["skip-execution", "nbval-skip"]
    empty = nbformat.v4.new_code_cell("", execution_count=3)
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), widget_cell, skipped, empty]
    return nb


def test_tidy_drops_run_specific_metadata():
    nb = refresh_notebooks.tidy(_executed_notebook())
    assert "widgets" not in nb.metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["language_info"] == {"name": "python"}
    _, widget_cell, skipped, empty = nb.cells
    assert "execution" not in widget_cell.metadata
    assert widget_cell.outputs[0]["data"][WIDGET_VIEW]["model_id"] == "static-view-1"
    assert skipped.outputs == [] and skipped.execution_count is None
    assert empty.execution_count is None
    nbformat.validate(nb)


# --- refresh + strict nbval with the repository's configuration, end to end ----------------

GOOD_CELLS = [
    "import ipywidgets as widgets\nimport matplotlib.pyplot as plt\nimport numpy as np",
    'print(f"{np.random.default_rng(0).normal(size=1000).std():.4f}")',
    "plt.plot([1, 2, 3]);",                                    # needs the store_history patch
    "def show(a=1.0):\n"
    "    plt.plot([0, 1], [0, a])\n"
    "    plt.title(f'a={a:.1f}')\n"
    "    plt.show()\n"
    "    print(f'a={a:.1f}')\n"
    "    return a\n"
    "w = widgets.interactive(show, a=(0.0, 2.0, 0.5))\n"
    "w",                                                        # needs the widget rule
    "%timeit -n 10 -r 2 sum(range(100))",                       # needs the sanitize file
    "object()",                                                 # a memory address
    "raise SystemExit('a cell tagged skip-execution never runs')",
    "raise ValueError('this cell is meant to raise')",
]
TAGS = {6: ["skip-execution", "nbval-skip"], 7: ["raises-exception"]}

BROKEN_CALLBACK_CELLS = [
    "import ipywidgets as widgets",
    "widgets.interactive(lambda a=1.0: undefined_name * a, a=(0.0, 2.0))",
]


def _write(path: Path, sources, tags=None):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    for i, cell_tags in (tags or {}).items():
        nb.cells[i].metadata["tags"] = cell_tags
    nbformat.write(nb, path)


@pytest.mark.slow          # kernels and a pytest run (make check leaves it to make test)
def test_refresh_then_strict_nbval(pytester, monkeypatch):
    project = pytester.path
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copy(ROOT / "conftest.py", project / "conftest.py")
    (project / "tests").mkdir()
    shutil.copy(SANITIZE, project / "tests" / SANITIZE.name)
    notebooks = project / "notebooks"
    notebooks.mkdir()
    good, broken = notebooks / "01_good.ipynb", notebooks / "02_broken_callback.ipynb"
    _write(good, GOOD_CELLS, TAGS)
    _write(broken, BROKEN_CALLBACK_CELLS)

    # Refresh: runs, stores outputs, and a second refresh changes nothing but what the
    # sanitize file hides (the %timeit numbers, the address of object()). The broken
    # notebook stays unrun: nbval runs every cell anyway and fails on the callback's error
    # (a cell never run is only not compared).
    refresh_notebooks.refresh(good, timeout=120)
    first = good.read_text(encoding="utf-8")
    refresh_notebooks.refresh(good, timeout=120)
    second = good.read_text(encoding="utf-8")
    assert sanitized_notebook(second) == sanitized_notebook(first), \
        "refreshing twice gave different notebooks"

    nb = nbformat.read(good, as_version=4)
    assert "widgets" not in nb.metadata
    counts = [c.execution_count for c in nb.cells]
    assert counts == [1, 2, 3, 4, 5, 6, None, 7]
    assert all("execution" not in c.metadata for c in nb.cells)
    assert nb.cells[7].outputs[0]["ename"] == "ValueError"
    assert WIDGET_VIEW in nb.cells[3].outputs[0]["data"]

    # Strict nbval, run from a subfolder (the sanitize file is found by absolute path).
    monkeypatch.chdir(notebooks)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rfEs")
    # good: 7 cells pass, 1 skipped; broken: the import passes, the callback error fails
    result.assert_outcomes(passed=8, skipped=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*02_broken_callback.ipynb::Cell 1*"])
    result.stdout.no_fnmatch_line("*FAILED*01_good*")
    assert "NameError" in result.stdout.str()


@pytest.mark.slow          # kernels (make check leaves it to make test)
def test_a_bad_notebook_stops_only_itself(tmp_path, capsys):
    """`refresh bad.ipynb good.ipynb` refreshes the good one and lists the bad ones at the end."""
    not_json = tmp_path / "01_not_json.ipynb"
    not_json.write_text("{ this is not a notebook")
    raises = tmp_path / "02_raises.ipynb"
    _write(raises, ["x = 1", "raise ValueError('a bug in the notebook')"])
    missing = tmp_path / "03_missing.ipynb"
    good = tmp_path / "04_good.ipynb"
    _write(good, ["print(6 * 7)"])
    raises_before = raises.read_bytes()

    status = refresh_notebooks.main([str(not_json), str(raises), str(missing), str(good),
                                     "--timeout", "120"])
    err = capsys.readouterr().err
    assert status == 1
    assert nbformat.read(good, as_version=4).cells[0].outputs[0]["text"] == "42\n"
    assert not_json.read_text() == "{ this is not a notebook"
    assert raises.read_bytes() == raises_before and not missing.exists()
    assert "a bug in the notebook" in err and "Traceback (most recent call last)" not in err.split(
        "FAILED")[0]
    last = err.strip().splitlines()[-1]
    assert last.startswith("3 of 4 notebook(s) failed")
    for path in (not_json, raises, missing):
        assert str(path) in last
    assert str(good) not in last


# --- tools/_notebooks.py: the one place that finds, runs and tidies notebooks -------------

notebooks_tool = _notebooks


def test_discover_finds_the_course_notebooks_in_order(tmp_path):
    for name in ("01_b.ipynb", "00_a.ipynb", "Untitled.ipynb", "1_short.ipynb", "02_c.txt"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in notebooks_tool.discover(tmp_path)] == ["00_a.ipynb", "01_b.ipynb"]
    assert notebooks_tool.discover() == sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_clear_outputs_leaves_no_run_behind():
    nb = notebooks_tool.clear_outputs(_executed_notebook())
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        assert "execution" not in cell.metadata
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_the_scripts_share_one_glob_and_one_widget_mime():
    """refresh, build_html and make_student find notebooks and widgets through _notebooks."""
    for script in ("refresh_notebooks.py", "build_html.py", "make_student.py", "lab.py"):
        text = (ROOT / "tools" / script).read_text(encoding="utf-8")
        assert "[0-9][0-9]_*.ipynb" not in text, script
        assert "application/vnd.jupyter.widget" not in text, script
        assert "NotebookClient(" not in text, f"{script} executes notebooks itself"


#: A tool loaded from its file, or tools/ (or a tool's own folder) put on sys.path.
LOADS_A_TOOL = re.compile(r"""(spec_from_file_location|run_path|sys\.path\.(?:insert|append))\(.*"""
                          r"""(["']tools["']|tools/|Path\(__file__\)\.resolve\(\)\.parent\)\))""")


def test_tools_is_a_package_that_nothing_loads_from_its_file():
    """tools/ is imported as the package it is (``from tools import make_student``): no test,
    benchmark, tool or hub script loads a tool by its path or puts tools/ on sys.path."""
    found = []
    for folder in ("tests", "tools", "benchmarks", "deploy"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if LOADS_A_TOOL.search(line) and "LOADS_A_TOOL" not in line:   # not the checks below
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
    assert LOADS_A_TOOL.search('sys.path.insert(0, str(ROOT / "tools"))')       # the test can fail
    assert LOADS_A_TOOL.search('spec_from_file_location("x", ROOT / "tools" / "lab.py")')


@pytest.mark.parametrize("command", [["tools/make_student.py"], ["-m", "tools.make_student"]])
def test_a_tool_runs_as_a_file_and_as_a_module(command):
    """The README's `python tools/x.py` and `python -m tools.x`, from the repository root."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "student edition" in run.stdout


@pytest.mark.slow          # kernels, killed after a timeout (make check leaves it to make test)
def test_a_hung_notebook_is_killed_and_run_again(tmp_path, monkeypatch):
    monkeypatch.setattr(notebooks_tool, "ATTEMPTS", 2)
    nb = tmp_path / "01_hangs.ipynb"
    _write(nb, ["import time", "time.sleep(60)"])
    logs = []
    with pytest.raises(notebooks_tool.NotebookError, match=r"01_hangs.ipynb hung 2 times \(last at:"):
        notebooks_tool.run(nb, tmp_path / "out.ipynb", timeout=2, log=logs.append)
    assert len(logs) == 1 and "hung" in logs[0] and "running it again" in logs[0]
    assert not (tmp_path / "out.ipynb").exists()
