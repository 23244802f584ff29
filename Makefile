# The course's commands. Needs only python3 (>= 3.10) and make; everything else goes
# into .venv, which the first `make lab` or `make test` creates (and re-creates after
# pyproject.toml changes).
#
#   make lab       open JupyterLab on notebooks/ (loopback only, with a token)
#   make test      ruff + unit tests + every notebook under strict nbval (what CI runs)
#   make refresh   re-execute notebooks in place (NB=notebooks/03_*.ipynb for some)
#   make lint      ruff only
#   make student   build the student edition in student/ (FORCE=1 overwrites edited ones)
#   make html      build the static HTML edition in site/ (open site/index.html; works offline)
#   make bench     BN benchmark (table, goals, JSON + PNG) and course runtime (notebooks, widget redraws)
#   make clean     remove caches and generated folders (not .venv: rm -rf .venv for that)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUFF_PATHS := bnutils tests tools notebooks benchmarks conftest.py
NB     ?= $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-x -k batchnorm"
# The suite runs serially. Measured with `-n 2 --dist loadfile` (pytest-xdist) on the
# 2-core machine (363 tests, notebook 00): no faster (48-75 s against 50-57 s), and the
# widget redraw-time tests fail when two workers share the CPU. Re-measure once the
# notebooks dominate the run time; never plain `-n` (it splits a notebook's cells).
PYTEST_ARGS ?=
# `timeout` (GNU coreutils) guards `make refresh` against a hung kernel, where it exists.
TIMEOUT := $(shell command -v timeout >/dev/null 2>&1 && echo timeout 1800)

.DEFAULT_GOAL := help
.PHONY: help lab test lint refresh student html bench clean

help:
	@sed -n 's/^#   make /  make /p' Makefile

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  { echo "The course needs Python >= 3.10; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." \
	         "Try: make $(MAKECMDGOALS) PYTHON=python3.12"; exit 1; }
	@test -x $(PY) || { echo "Creating $(VENV) ..."; $(PYTHON) -m venv $(VENV) || \
	  { echo "'$(PYTHON) -m venv' failed. On Debian/Ubuntu: sudo apt install python3-venv"; \
	    rm -rf $(VENV); exit 1; }; }
	@echo "Installing the course and its tools into $(VENV) (1-2 min; log: $(VENV)/pip.log) ..."
	@$(PY) -m pip install -e ".[lab,test]" >$(VENV)/pip.log 2>&1 || \
	  { tail -n 25 $(VENV)/pip.log; echo "pip install failed; full log: $(VENV)/pip.log"; exit 1; }
	@touch $(STAMP)

lab: $(STAMP)
	$(PY) tools/lab.py

test: $(STAMP)
	$(VENV)/bin/ruff check $(RUFF_PATHS)
	@$(PY) -c "import matplotlib.pyplot"
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(RUFF_PATHS)

refresh: $(STAMP)
	$(TIMEOUT) $(PY) tools/refresh_notebooks.py $(NB)

student: $(STAMP)
	$(PY) tools/make_student.py $(if $(filter 1 yes true,$(FORCE)),--force)

html: $(STAMP)
	$(TIMEOUT) $(PY) tools/build_html.py
	@echo "Open site/index.html in a browser."

# OPENBLAS_CORETYPE/L2_SIZE may be set on this machine for old OpenBLAS builds; they slow a
# current NumPy, so the benchmark runs without them (see benchmarks/README.md).
bench: $(STAMP)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/run.py
	$(PY) benchmarks/course_runtime.py

clean:
	rm -rf student build site .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) \
	  -type d -print | xargs rm -rf
