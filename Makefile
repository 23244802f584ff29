# The course's commands. Needs only python3 (>= 3.10) and make; everything else goes
# into .venv, which the first `make lab` or `make test` creates. Two installs, each from
# nothing with one command, each redone after pyproject.toml changes:
#   the learner set  .[lab]             (make lab, make student)
#   the full set     .[lab,test,grade]  (every other target; adds to the learner set)
#
#   make lab       open JupyterLab on the student edition in student/ (built on first use; edits kept)
#   make lab EDITION=solutions   the instructor edition, in a working copy (build/solutions/)
#   make check     ruff + the fast unit tests (no kernel, no server, no browser): before every commit
#   make test      ruff + unit tests + every notebook under strict nbval + browser tests (what CI runs)
#   make unit      ruff + unit tests only: no notebooks, no browser (CI on the other Pythons)
#   make test-matrix  unit tests + notebooks on the oldest and the newest supported Python and packages (.venv-matrix/; MATRIX=oldest for one)
#   make portability  the notebooks again under strict nbval with another BLAS kernel (part of make test)
#   make refresh   re-execute notebooks in place (NB=notebooks/03_*.ipynb for some)
#   make lint      ruff only
#   make student   build the student edition in student/ (FORCE=1 overwrites edited ones)
#   make nbgrader  an nbgrader course in nbgrader/: each notebook a source and a release (NB= for some)
#   make html      build the static HTML edition in site/ (open site/index.html; works offline)
#   make html EDITION=student   the site of the student edition: no solutions, graded tests or recall answers
#   make slides    one reveal.js deck per notebook in build/slides/ (open build/slides/index.html; reveal.js from npm)
#   make bench     BN benchmark, course runtime (notebooks, redraws) and widget latency in the browser
#   make hub       a local JupyterHub for a class, trial log-in (deploy/README.md; the hub extra)
#   make hub-test  the hub's end-to-end test: three learners, their servers, nbgrader's exchange
#   make clean     remove caches and generated folders (not .venv, not your work in student/ and build/solutions/)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# One stamp per install; the full install also satisfies the learner one.
LAB_EXTRAS  := lab
FULL_EXTRAS := lab,test,grade
LAB_STAMP   := $(VENV)/.installed-lab
FULL_STAMP  := $(VENV)/.installed-full
# make hub: JupyterHub and its idle culler on top of the learner set and nbgrader; never in make lab's.
HUB_EXTRAS  := lab,grade,hub
HUB_STAMP   := $(VENV)/.installed-hub
RUFF_PATHS := bnutils tests tools notebooks benchmarks conftest.py nbgrader_config.py
NB     ?= $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-x -k batchnorm"
PYTEST_ARGS ?=
# The tests run on pytest-xdist workers, one per core (at most 4), each file whole on one
# worker (pyproject's addopts: --dist loadfile, so a notebook's cells share one kernel;
# never --dist load). Most of make test's time is spent in kernels, JupyterLab and
# Chromium, child processes that the workers keep busy side by side; the redraw-time
# tests measure CPU time, which a neighbour does not inflate. JOBS=0: one process, serially.
JOBS ?= auto
XDIST := -n $(JOBS) --maxprocesses 4
# make unit: the unit tests, without the notebooks (nbval) and the browser tests (e2e).
UNIT_ARGS := tests --ignore=tests/e2e -m "not e2e"
# make check: the unit tests that need no kernel, server or browser (not marked slow or
# e2e; tests/conftest.py), tests/e2e's included (build_html's pieces, the explorer notebooks).
CHECK_ARGS := tests -m "not e2e and not slow"
# `timeout` (GNU coreutils) guards `make refresh` against a hung kernel, where it exists.
TIMEOUT := $(shell command -v timeout >/dev/null 2>&1 && echo timeout 1800)

# $(call install,EXTRAS): create .venv if needed, then pip install -e ".[EXTRAS]".
define install
@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
  { echo "The course needs Python >= 3.10; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." \
         "Try: make $(MAKECMDGOALS) PYTHON=python3.12"; exit 1; }
@test -x $(PY) || { echo "Creating $(VENV) ..."; $(PYTHON) -m venv $(VENV) || \
  { echo "'$(PYTHON) -m venv' failed. On Debian/Ubuntu: sudo apt install python3-venv"; \
    rm -rf $(VENV); exit 1; }; }
@echo "Installing the course with [$(1)] into $(VENV) (1-2 min; log: $(VENV)/pip.log) ..."
@$(PY) -m pip install -e ".[$(1)]" >$(VENV)/pip.log 2>&1 || \
  { tail -n 25 $(VENV)/pip.log; echo "pip install failed; full log: $(VENV)/pip.log"; exit 1; }
endef

.DEFAULT_GOAL := help
.PHONY: help lab check test test-matrix unit portability lint refresh student nbgrader html slides bench hub hub-test clean

help:
	@sed -n 's/^#   make /  make /p' Makefile

$(LAB_STAMP): pyproject.toml
	$(call install,$(LAB_EXTRAS))
	@touch $@

$(FULL_STAMP): pyproject.toml
	$(call install,$(FULL_EXTRAS))
	@touch $@ $(LAB_STAMP)

$(HUB_STAMP): pyproject.toml
	$(call install,$(HUB_EXTRAS))
	@touch $@ $(LAB_STAMP)

# make lab's edition: student (student/) or solutions (build/solutions/, see tools/lab.py).
EDITION ?= student

lab: $(LAB_STAMP)
	$(PY) tools/lab.py --edition $(EDITION)

check: $(FULL_STAMP)
	$(VENV)/bin/ruff check $(RUFF_PATHS)
	@$(PY) -c "import matplotlib.pyplot"
	$(VENV)/bin/pytest $(CHECK_ARGS) $(XDIST) $(PYTEST_ARGS)

test: $(FULL_STAMP)
	$(VENV)/bin/ruff check $(RUFF_PATHS)
	@$(PY) -c "import matplotlib.pyplot"
	$(VENV)/bin/pytest $(XDIST) $(PYTEST_ARGS)
	$(PORTABILITY)

# The stored outputs must hold on every machine (CONTRIBUTING.md, "Results that hold on every
# machine"): the notebooks run again under strict nbval with OpenBLAS forced to another
# kernel, which changes the last bits of every matrix product as another CPU would. On x86
# that is Prescott (SSE3 only); on ARM the generic ARMV8 kernel. NumPy builds without
# OpenBLAS (macOS Accelerate, MKL) ignore the variable: the pass then repeats the first one.
ALT_CORETYPE ?= $(if $(filter x86_64 i686 amd64,$(shell uname -m)),Prescott,ARMV8)
PORTABILITY = OPENBLAS_CORETYPE=$(ALT_CORETYPE) $(VENV)/bin/pytest notebooks $(XDIST) $(PYTEST_ARGS)

portability: $(FULL_STAMP)
	$(PORTABILITY)

# The supported versions, tested (tools/version_matrix.py): the unit tests and every notebook under
# strict nbval in .venv-matrix/oldest (tests/constraints-oldest.txt: pyproject.toml's lower
# bounds) and .venv-matrix/newest (the newest Python and releases). Needs those two Pythons
# (pythonX.Y on PATH or pyenv; OLDEST_PYTHON=/path, NEWEST_PYTHON=/path); a missing one is
# skipped with a message, and fails under CI=true. A step of .ci/run after make hub-test.
MATRIX ?= oldest newest
test-matrix:
	$(PYTHON) tools/version_matrix.py $(MATRIX) -- $(PYTEST_ARGS)

unit: $(FULL_STAMP)
	$(VENV)/bin/ruff check $(RUFF_PATHS)
	@$(PY) -c "import matplotlib.pyplot"
	$(VENV)/bin/pytest $(UNIT_ARGS) $(XDIST) $(PYTEST_ARGS)

lint: $(FULL_STAMP)
	$(VENV)/bin/ruff check $(RUFF_PATHS)

refresh: $(FULL_STAMP)
	$(TIMEOUT) $(PY) tools/refresh_notebooks.py $(NB)

student: $(LAB_STAMP)
	$(PY) tools/make_student.py $(if $(filter 1 yes true,$(FORCE)),--force)

nbgrader: $(FULL_STAMP)
	$(PY) tools/nbgrader_course.py $(NB)

# make html's edition: solutions (collapsed) unless EDITION is given (make lab's default is not).
HTML_EDITION = $(if $(filter command line environment,$(origin EDITION)),$(EDITION),solutions)

html: $(FULL_STAMP)
	$(TIMEOUT) $(PY) tools/build_html.py --edition $(HTML_EDITION)
	@echo "Open site/index.html in a browser."

# Slides from the notebooks' stored outputs (tools/slides.py; nothing is executed). The first run
# installs npm's reveal.js into build/slides-npm/; the decks then work offline.
slides: $(FULL_STAMP)
	$(PY) tools/slides.py

# OPENBLAS_CORETYPE/L2_SIZE may be set on this machine for old OpenBLAS builds; they slow a
# current NumPy, so the benchmark runs without them (see benchmarks/README.md).
bench: $(FULL_STAMP)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/run.py
	$(PY) benchmarks/course_runtime.py
	$(PY) benchmarks/widget_latency.py

hub: $(HUB_STAMP)
	$(PY) deploy/hub/start.py

# The hub's end-to-end test (tests/test_hub.py, which runs only with BN_HUB_E2E=1) needs
# the test tools and the hub's; a CI step of its own after make test (.ci/run).
hub-test: $(FULL_STAMP) $(HUB_STAMP)
	$(PY) deploy/hub/start.py --install-only
	BN_HUB_E2E=1 $(VENV)/bin/pytest tests/test_hub.py $(PYTEST_ARGS)

clean:
	rm -rf site .pytest_cache .ruff_cache .hypothesis
	@# student/ and build/solutions/ hold a learner's or an instructor's edits: kept
	test ! -d build || find build -mindepth 1 -maxdepth 1 ! -name solutions -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) \
	  -type d -print | xargs rm -rf
