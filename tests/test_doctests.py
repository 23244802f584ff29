"""Run the Examples sections of every bnutils module as doctests, and check that the
core API documents itself (an example and the notebook that introduces it).

Modules are found with pkgutil, so a new module is checked without editing this file.
Figures use the Agg backend; widget modules import ipywidgets (a runtime dependency),
which needs no kernel or browser. Doctests see ``np`` without importing it.
"""

import doctest
import importlib
import inspect
import pkgutil

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import bnutils  # noqa: E402

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(bnutils.__path__, prefix="bnutils.")
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# The core API of issue #3: every public function or class needs an example and the line
# naming its notebook.
CORE = ["bnutils.batchnorm", "bnutils.normalization", "bnutils.folding", "bnutils.gradcheck",
        "bnutils.layers", "bnutils.training", "bnutils.inference", "bnutils.reference",
        "bnutils.lab.timing"]
# Record types (data, no behaviour) and the abstract base class need no example.
NO_EXAMPLE_NEEDED = {"BatchNormCache", "LayerNormCache", "GroupNormCache", "TrainingHistory",
                     "Layer"}


def test_modules_were_found():
    assert set(CORE) <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = []
    tests = finder.find(module, name, globs={"np": np, **vars(module)})
    try:
        for test in tests:
            runner.run(test, out=report.append)
    finally:
        plt.close("all")
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, "".join(report)


@pytest.mark.parametrize("name", CORE)
def test_core_api_is_documented(name):
    module = importlib.import_module(name)
    missing = []
    for attr in module.__all__:
        obj = getattr(module, attr)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or attr in NO_EXAMPLE_NEEDED:
            continue
        doc = inspect.getdoc(obj) or ""
        if ">>>" not in doc:
            missing.append(f"{attr}: no example")
        if "Introduced in notebook" not in doc:
            missing.append(f"{attr}: no 'Introduced in notebook NN.' line")
    assert not missing, missing


def test_every_name_of_the_package_api_is_documented():
    for attr in bnutils.__all__:
        obj = getattr(bnutils, attr)
        assert inspect.getdoc(obj), attr
        if attr not in NO_EXAMPLE_NEEDED:
            assert ">>>" in inspect.getdoc(obj), attr
