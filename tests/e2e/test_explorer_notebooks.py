"""The explorer notebooks the browser tests run hold what each explorer needs (no browser).

``explorer_notebook`` (explorers.py) gives the browser tests, for each course notebook
that shows an explorer, a small notebook: title, setup cell, explorer cells. That is only
a fair stand-in for the whole notebook if each explorer cell uses nothing but what the
setup cell defines, and no other cell of the course notebook changes how figures or
numbers look (matplotlib's or NumPy's print options). These checks read the sources.
"""

from __future__ import annotations

import ast
import builtins
import re

import pytest
from explorers import explorer_cells, explorer_notebook, shows_explorer, widget_notebooks

#: Calls that change how every later figure or printed number looks.
DISPLAY_SETTINGS = re.compile(r"rcParams|rc_context|plt\.style|use_course_style|matplotlib\.use|"
                              r"set_printoptions|%matplotlib|%config")


def _defined(source: str) -> set[str]:
    """The names a cell binds at its top level (imports, assignments, def, class)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _used(source: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def test_there_are_explorer_notebooks():
    assert len(widget_notebooks()) >= 1


@pytest.mark.parametrize("path", widget_notebooks(), ids=lambda p: p.stem)
def test_explorer_notebooks_hold_every_explorer(path):
    import nbformat

    full = nbformat.read(path, as_version=4)
    small = explorer_notebook(path)
    code = [c for c in small.cells if c.cell_type == "code"]
    setup, explorers = code[0], code[1:]
    full_code = [c for c in full.cells if c.cell_type == "code"]
    assert setup.source == full_code[0].source
    assert len(explorers) == explorer_cells(path) >= 1
    assert all(shows_explorer(c) for c in explorers)
    assert [c.source for c in explorers] == [c.source for c in full_code if shows_explorer(c)]
    assert small.cells[0].cell_type == "markdown" and small.cells[0].source.lstrip().startswith("#")
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    available = _defined(setup.source) | set(dir(builtins))
    for cell in explorers:
        missing = _used(cell.source) - available - _defined(cell.source)
        assert not missing, f"{path.name}: an explorer cell uses {sorted(missing)}, not set by the setup cell"
    others = [c.source for c in full_code[1:] if DISPLAY_SETTINGS.search(c.source)]
    assert not others, (f"{path.name}: a cell after the setup cell changes display settings, which the "
                        f"explorer notebook would not see: {others[0][:120]!r}")
