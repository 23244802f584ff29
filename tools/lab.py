"""Start JupyterLab on the course: what `make lab` runs.

    python tools/lab.py                        # the student edition, student/ (built on first use)
    python tools/lab.py --edition solutions    # the instructor edition: a working copy of notebooks/
    python tools/lab.py --no-browser           # only print the address
    python tools/lab.py --root-dir DIR         # any other folder

Editions. ``student`` (the default, ``make lab``) opens ``student/``, the notebooks with
every exercise replaced by a stub; when ``student/`` has not been built yet it is built
first, with tools/make_student.py. A learner's edits are never overwritten (``make
student`` refreshes the notebooks nobody edited and keeps the others). ``solutions``
(``make lab EDITION=solutions``) opens ``build/solutions/``, a working copy of the
tracked ``notebooks/``: JupyterLab saves (and autosaves) there, so working in it never
changes ``git status``. Each start refreshes the copy from ``notebooks/``, notebook by
notebook, except the ones edited in the copy, which are kept (``sync_copy``; a manifest
of hashes tells edited from stale). To change the course itself, edit ``notebooks/``
with ``--root-dir notebooks``.

The server listens on 127.0.0.1 only and requires a token: a fresh random one each
start (or the one in the environment variable JUPYTER_TOKEN). Its log (kernel warnings,
"not trusted" notices, websocket tracebacks) goes to ``build/lab.log``, so the terminal
shows the address, printed last. JupyterLab's "get notified about Jupyter news?"
question is answered "no" by a default setting in ``tools/jupyter_config/`` (put on
JUPYTER_CONFIG_PATH; a learner's own settings still win). Another one keeps widget
messages out of kernel subshells (``commsOverSubshells: disabled``): JupyterLab >= 4.4
sends them to a subshell, which ipykernel 7 runs in a thread of its own, so a slider's
callback would draw an explorer's figure while the main thread draws ahead on the same
figure (bnutils.widgets.live), and now and then fail with a matplotlib error
(tests/e2e/test_lab_widgets.py checks which thread a move runs in). The same folder's
``jupyter_config.py`` loads the course's prebuilt JupyterLab extensions from
``tools/labextensions/`` (bn-course-a11y: every slider handle is named after its
description, for screen readers; nothing to install or build). The script then *becomes* the
JupyterLab process (``os.execve``), so Ctrl+C stops the server and the PID it was
started with is the server's PID (tests/test_lab_starts.py stops it by that PID).
``--allow-root`` is added when running as root (containers, CI), where JupyterLab
otherwise refuses to start.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import sys
from pathlib import Path

if not __package__:  # run as a file (python tools/x.py): import tools from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from tools import _notebooks  # noqa: E402

ROOT = _notebooks.ROOT
HOST = "127.0.0.1"
STUDENT_DIR = ROOT / "student"
SOLUTIONS_DIR = ROOT / "build" / "solutions"
LOG_FILE = ROOT / "build" / "lab.log"
#: Jupyter configuration the course adds (default settings, its JupyterLab extensions;
#: see the module docstring).
CONFIG_DIR = Path(__file__).resolve().parent / "jupyter_config"
MANIFEST = ".manifest.json"


def free_port(host: str = HOST) -> int:
    """A TCP port on `host` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def lab_command(port: int, root_dir: Path, open_browser: bool = True) -> list[str]:
    """The JupyterLab command line (the token travels in the environment, not in argv,
    so other users cannot read it from the process list)."""
    cmd = [sys.executable, "-m", "jupyterlab",
           f"--ServerApp.ip={HOST}", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0",            # the printed address must be the real one
           f"--ServerApp.root_dir={root_dir}",
           "--ServerApp.log_level=WARN", "--LabApp.log_level=WARN"]
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def course_config_path(environ) -> str:
    """JUPYTER_CONFIG_PATH with the course's Jupyter configuration (CONFIG_DIR) first:
    for every server that opens the course (make lab, the browser tests, the hub's)."""
    rest = [p for p in environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p and p != str(CONFIG_DIR)]
    return os.pathsep.join([str(CONFIG_DIR), *rest])


def lab_environment(token: str, environ=None) -> dict:
    """The server's environment: the token, this Python's kernels first, the course's
    Jupyter defaults on JUPYTER_CONFIG_PATH, no MPLBACKEND (Agg would hide the figures)."""
    env = dict(os.environ if environ is None else environ)
    env.update(JUPYTER_TOKEN=token,
               # kernels from this environment first, even if the user has a personal
               # "python3" kernelspec pointing at another Python
               JUPYTER_PREFER_ENV_PATH="1",
               JUPYTER_CONFIG_PATH=course_config_path(env))
    env.pop("MPLBACKEND", None)
    return env


def scratch_environment(token: str, tmp: Path, environ=None) -> dict:
    """The environment of a throw-away server (the browser tests, the latency benchmark).

    The token, this Python's kernels first, no MPLBACKEND; every Jupyter folder (config,
    runtime, user settings, workspaces) under ``tmp``, so that nothing of the user's
    JupyterLab applies or changes; the course's Jupyter configuration (CONFIG_DIR, with
    its JupyterLab extensions), as make lab has it; and user settings for a quiet, fully
    rendered notebook: no "get notified about Jupyter news?" toast, every cell rendered
    (no virtual scrolling), so that every output is in the page; and, as ``make lab`` has
    it, widget messages to the kernel's main thread (``commsOverSubshells``, see the
    module docstring).
    """
    env = {k: v for k, v in (os.environ if environ is None else environ).items()
           if k not in ("MPLBACKEND", "JUPYTER_TOKEN")}
    env.update(JUPYTER_TOKEN=token, JUPYTER_PREFER_ENV_PATH="1",
               JUPYTER_CONFIG_PATH=course_config_path(env),
               JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    settings = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        # as make lab's default settings: widget callbacks in the kernel's main thread
        "@jupyterlab/apputils-extension/kernels-settings.jupyterlab-settings":
            {"commsOverSubshells": "disabled"},
    }
    for rel, content in settings.items():
        path = tmp / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content), encoding="utf-8")
    return env


def sync_copy(sources: list[Path], copy_dir: Path, log=print) -> list[Path]:
    """Bring the working copy ``copy_dir`` up to date with ``sources``, keeping edited files.

    A file is copied when the copy does not have it, or has it exactly as this function
    last wrote it (recorded in ``copy_dir/.manifest.json``). A file changed in the copy
    since then is kept and reported. Returns the kept files.
    """
    copy_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = copy_dir / MANIFEST
    manifest = _notebooks.read_manifest(manifest_path)   # damaged: every existing copy is kept
    kept = []
    for src in sources:
        target, data = copy_dir / src.name, src.read_bytes()
        if _notebooks.is_edited(target, data, manifest.get(src.name)):
            kept.append(target)
            continue
        if not target.exists() or target.read_bytes() != data:
            shutil.copyfile(src, target)
        manifest[src.name] = _notebooks.digest(data)
    _notebooks.write_manifest(manifest_path, manifest)
    if kept:
        log(f"Kept your edits in {len(kept)} notebook(s) of {_shown(copy_dir)}/: "
            + ", ".join(p.name for p in kept)
            + " (delete a file there to get the course's version again)")
    return kept


def prepare(edition: str, folder: Path | None = None, log=print) -> Path:
    """The folder to open for ``edition`` ("student" or "solutions"), built or refreshed.

    ``folder`` replaces the edition's usual place (student/, build/solutions/), e.g. in tests.
    """
    if edition == "student":
        folder = STUDENT_DIR if folder is None else Path(folder)
        if not (folder / MANIFEST).exists():
            from tools import make_student

            log(f"Building the student edition in {_shown(folder)}/ (first use) ...")
            make_student.build(_notebooks.discover(), folder, log=lambda msg: None)
        return folder
    if edition == "solutions":
        folder = SOLUTIONS_DIR if folder is None else Path(folder)
        sync_copy(_notebooks.discover(), folder, log=log)
        return folder
    raise ValueError(f"edition must be 'student' or 'solutions', got {edition!r}")


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--edition", choices=("student", "solutions"), default="student",
                        help="student/ (default) or the instructor edition's working copy "
                             "build/solutions/")
    parser.add_argument("--edition-dir", type=Path, default=None,
                        help="keep the edition in this folder instead (e.g. for tests)")
    parser.add_argument("--root-dir", type=Path, default=None,
                        help="open this folder instead of an edition")
    parser.add_argument("--log", type=Path, default=LOG_FILE,
                        help="where the server's log goes (default build/lab.log)")
    args = parser.parse_args(argv)

    if args.root_dir is not None:
        root, what = args.root_dir.resolve(), str(args.root_dir)
    else:
        root = prepare(args.edition, args.edition_dir).resolve()
        what = {"student": f"the student edition ({_shown(root)}/): exercises to do",
                "solutions": f"the instructor edition (a working copy in {_shown(root)}/; "
                             "notebooks/ is not touched)"}[args.edition]
    port = args.port or free_port()
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_hex(24)
    env = lab_environment(token)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    url = f"http://{HOST}:{port}/lab?token={token}"
    print(f"JupyterLab on {what}.", flush=True)
    print(f"Server log: {args.log}. Stop the server with Ctrl+C (then answer y). Open, on "
          f"this machine:", flush=True)
    print(url, flush=True)
    cmd = lab_command(port, root, open_browser=not args.no_browser)
    # The server's and its kernels' messages go to the log file; the terminal keeps the
    # address above and the Ctrl+C question (JupyterLab asks it on stdout).
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.execve(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
