"""Start one learner's server on their own student edition: the hub's single-user command.

    python deploy/hub/singleuser.py [jupyterhub-singleuser options]

JupyterHub runs this (``c.Spawner.cmd``) as the learner, in the learner's home. It
writes the student edition of the course notebooks to ``$HOME/student`` with
tools/make_student.py, then *becomes* ``jupyterhub-singleuser`` (``os.execvp``, so the
spawner's PID is the server's and stopping it stops the server), with the course's
Jupyter configuration (tools/jupyter_config: its default settings and its JupyterLab
extensions, as ``make lab`` has them) first on JUPYTER_CONFIG_PATH.

The learner's work is never overwritten: make_student.py keeps every notebook edited
since it wrote it (its manifest, ``student/.manifest.json``, lives in the learner's
folder), and only writes the notebooks that are new or unedited, so a course update
reaches every notebook a learner has not touched, at the next start of their server.

The same step serves every way of running the hub: the local hub of ``make hub``
(deploy/hub/jupyterhub_config.py), The Littlest JupyterHub and Zero to JupyterHub
(deploy/README.md). ``BN_COURSE_NOTEBOOKS`` names another folder of course notebooks
(default: this repository's ``notebooks/``); ``BN_STUDENT_DIR`` another target folder.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a file by the hub's spawner: the package tools is in ROOT
    sys.path.insert(0, str(ROOT))
from tools import _notebooks, lab, make_student  # noqa: E402


def prepare_student_edition(home: Path, notebooks: Path | None = None, log=print) -> Path:
    """Build or refresh the student edition in ``home/student`` (or ``$BN_STUDENT_DIR``);
    returns the folder. Edited notebooks are kept (make_student.build's rule)."""
    notebooks = Path(notebooks or os.environ.get("BN_COURSE_NOTEBOOKS") or _notebooks.NOTEBOOK_DIR)
    target = Path(os.environ.get("BN_STUDENT_DIR") or Path(home) / "student")
    sources = _notebooks.discover(notebooks)
    if not sources:
        raise SystemExit(f"singleuser.py: no course notebooks in {notebooks}")
    kept = make_student.build(sources, target, log=lambda msg: None)
    if kept:
        log(f"student edition in {target}: kept {len(kept)} notebook(s) the learner edited: "
            + ", ".join(p.name for p in kept))
    else:
        log(f"student edition in {target}: up to date")
    return target


def main(argv: list[str]) -> None:
    home = Path(os.environ.get("HOME") or Path.cwd())
    prepare_student_edition(home, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    command = shutil.which("jupyterhub-singleuser", path=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if command is None:
        raise SystemExit("singleuser.py: jupyterhub-singleuser not found (pip install jupyterhub)")
    os.environ["JUPYTER_CONFIG_PATH"] = lab.course_config_path(os.environ)
    os.execvp(command, [command, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
