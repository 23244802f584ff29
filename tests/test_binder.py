"""Binder opens the student edition (issue 27): binder/postBuild builds student/ and makes
it JupyterLab's first page.

postBuild runs in a copy of the repository with a ``python`` whose ``-m pip`` does
nothing (the package is already installed here), ``HOME`` in a temporary folder.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow          # builds the student edition of every notebook (make check leaves it to make test)
def test_post_build_builds_the_student_edition_and_opens_it(tmp_path):
    repo, home, bin_dir = tmp_path / "repo", tmp_path / "home", tmp_path / "bin"
    for folder in ("tools", "notebooks", "binder"):
        shutil.copytree(ROOT / folder, repo / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    home.mkdir()
    bin_dir.mkdir()
    shim = bin_dir / "python"
    shim.write_text('#!/bin/sh\nif [ "$1" = "-m" ] && [ "$2" = "pip" ]; then exit 0; fi\n'
                    f'exec {sys.executable} "$@"\n')
    shim.chmod(0o755)
    done = subprocess.run(["bash", str(repo / "binder" / "postBuild")], cwd=repo, capture_output=True,
                          text=True, env={"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=300)
    assert done.returncode == 0, done.stderr
    student = sorted(p.name for p in (repo / "student").glob("*.ipynb"))
    assert student == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    first = (repo / "student" / "00_start_here.ipynb").read_text(encoding="utf-8")
    assert "raise NotImplementedError" in first
    config = (home / ".jupyter" / "jupyter_server_config.py").read_text(encoding="utf-8")
    url = re.search(r'^c\.ServerApp\.default_url = "/lab/tree/(.+)"$', config, re.M)
    assert url and (repo / url.group(1)).is_file(), config
    assert url.group(1).startswith("student/")
