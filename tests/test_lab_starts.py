"""`make lab` works: JupyterLab starts through tools/lab.py on an edition, answers only with
its token, never changes the tracked notebooks, and stops by its PID.

Starts the server exactly as `make lab` does (same script, same interpreter), only with
--no-browser, with the edition kept in a temporary folder (--edition-dir: a learner's
student/ is never touched) and with Jupyter's config/runtime/settings folders moved to a
temporary directory so that the test leaves nothing behind. Then saves a notebook through
Jupyter's REST contents API, as JupyterLab's save and autosave do, and checks that the
file in notebooks/ did not change. Not a browser test: about 5-15 s each.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tools import lab

ROOT = Path(__file__).resolve().parents[1]
LAB_SCRIPT = ROOT / "tools" / "lab.py"
URL_LINE = re.compile(r"^(http://127\.0\.0\.1:(\d+))/lab\?token=([0-9A-Za-z_-]+)$")


def _request(url: str, method: str = "GET", body=None, timeout: float = 5.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    return _request(url, timeout=timeout)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _git_status(path: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--", str(path)], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def _start(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))
    out_path = tmp_path / "terminal.txt"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(LAB_SCRIPT), "--no-browser",
                                 "--log", str(tmp_path / "lab.log"), *args],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, out_path


def _wait_ready(proc, out_path, timeout=120):
    """Wait until the printed address answers; returns (base, token, terminal lines)."""
    deadline = time.monotonic() + timeout
    base = token = None
    while True:
        lines = out_path.read_text(errors="replace").splitlines()
        if base is None:
            for line in lines:
                if m := URL_LINE.match(line.strip()):
                    base, token = m.group(1), m.group(3)
        if base is not None:
            try:
                status, body = _get(f"{base}/api/status?token={token}")
            except OSError:
                status = None
            if status == 200:
                return base, token, lines, json.loads(body)
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not answer /api/status (exit code {proc.poll()}):\n"
                        + "\n".join(lines))
        time.sleep(0.2)


def _stop_by_pid(proc, base, token):
    # Stop it by its PID (tools/lab.py exec's into JupyterLab, so the PID is the server's).
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(20)
    assert not _pid_alive(proc.pid)
    with pytest.raises(OSError):
        _get(f"{base}/api/status?token={token}", timeout=1)


@pytest.fixture
def started():
    procs = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _save_through_the_contents_api(base, token, name, folder: Path):
    """Save notebook ``name`` as JupyterLab does (PUT /api/contents) with one cell changed;
    the file in ``folder`` changes, the one in notebooks/ does not."""
    source = ROOT / "notebooks" / name
    before_bytes, before_status = source.read_bytes(), _git_status(source)
    status, body = _get(f"{base}/api/contents/{name}?content=1&token={token}")
    assert status == 200, body
    model = json.loads(body)
    nb = model["content"]
    nb["cells"][0]["source"] = "# edited in JupyterLab by tests/test_lab_starts.py\n" + "".join(
        nb["cells"][0]["source"])
    status, body = _request(f"{base}/api/contents/{name}?token={token}", "PUT",
                            {"type": "notebook", "format": "json", "content": nb})
    assert status == 200, body
    assert "edited in JupyterLab" in (folder / name).read_text(encoding="utf-8")
    assert source.read_bytes() == before_bytes, f"saving in the lab changed notebooks/{name}"
    assert _git_status(source) == before_status


@pytest.mark.slow          # starts JupyterLab (make check leaves it to make test)
def test_lab_opens_the_student_edition_with_a_token_on_loopback_and_stops_by_pid(tmp_path, started):
    student = tmp_path / "student"
    proc, out_path = _start(tmp_path, "--edition-dir", str(student))
    started.append(proc)
    base, token, lines, info = _wait_ready(proc, out_path)

    assert len(token) >= 32, "the generated token is too short to be a secret"
    assert "started" in info and "kernels" in info
    # The terminal shows what opens and the address, last; the server's log goes to the file.
    assert URL_LINE.match(lines[-1].strip()), lines
    assert any("student edition" in line for line in lines), lines
    assert not any("WARNING" in line or "Traceback" in line for line in lines), lines
    assert (tmp_path / "lab.log").exists()
    # The server refuses without the token and with a wrong one.
    assert _get(f"{base}/api/status")[0] == 403
    assert _get(f"{base}/api/status?token=wrong{token}")[0] == 403
    # It serves the student edition, built on first use: every course notebook, as stubs.
    status, body = _get(f"{base}/api/contents?token={token}")
    assert status == 200
    names = {entry["name"] for entry in json.loads(body)["content"]}
    course = {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert names >= course
    assert (student / ".manifest.json").exists()
    with_exercise = [n for n in sorted(course)
                     if "### BEGIN SOLUTION" in (ROOT / "notebooks" / n).read_text()]
    assert with_exercise and "### BEGIN SOLUTION" not in (student / with_exercise[0]).read_text()
    _save_through_the_contents_api(base, token, with_exercise[0], student)
    # The token is not on the command line (readable by every user through `ps`).
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    if cmdline.exists():
        argv = cmdline.read_bytes().split(b"\0")
        assert b"jupyterlab" in argv and not any(token.encode() in a for a in argv)
    # JupyterLab's "Jupyter news?" question is answered by the course's default setting.
    status, body = _get(f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification"
                        f"?token={token}")
    assert status == 200
    schema = json.loads(body)["schema"]["properties"]       # defaults, with the overrides
    assert schema["fetchNews"]["default"] == "false"
    assert schema["checkForUpdates"]["default"] is False
    # Widget messages go to the kernel's main thread, not to a subshell (tools/lab.py). The
    # setting (and the subshells) came with JupyterLab 4.4; the oldest supported JupyterLab
    # (make test-matrix) has no such plugin, so nothing can go to a subshell there.
    status, body = _get(f"{base}/lab/api/settings/@jupyterlab/apputils-extension:kernels-settings"
                        f"?token={token}")
    if _jupyterlab_version() < (4, 4):
        assert status == 404
    else:
        assert status == 200
        assert json.loads(body)["schema"]["properties"]["commsOverSubshells"]["default"] == "disabled"
    _stop_by_pid(proc, base, token)


def _jupyterlab_version() -> tuple[int, int]:
    """(major, minor) of the JupyterLab that serves the course in this environment."""
    from importlib.metadata import version

    major, minor = re.match(r"(\d+)\.(\d+)", version("jupyterlab")).groups()
    return int(major), int(minor)


def test_jupyterlab_version_is_read_as_numbers():
    assert _jupyterlab_version() >= (4, 2)      # pyproject's lower bound


@pytest.mark.slow          # starts JupyterLab (make check leaves it to make test)
def test_the_instructor_edition_opens_a_working_copy_and_saving_never_touches_notebooks(
        tmp_path, started):
    copy = tmp_path / "solutions"
    proc, out_path = _start(tmp_path, "--edition", "solutions", "--edition-dir", str(copy))
    started.append(proc)
    base, token, lines, _ = _wait_ready(proc, out_path)
    assert any("instructor edition" in line for line in lines), lines
    name = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))[0]
    _save_through_the_contents_api(base, token, name, copy)
    _stop_by_pid(proc, base, token)


def test_the_working_copy_is_refreshed_but_edits_are_kept(tmp_path):
    src, copy = tmp_path / "src", tmp_path / "copy"
    src.mkdir()
    (src / "01_a.ipynb").write_text("a1")
    (src / "02_b.ipynb").write_text("b1")
    messages = []
    assert lab.sync_copy(sorted(src.iterdir()), copy, log=messages.append) == []
    assert (copy / "01_a.ipynb").read_text() == "a1"
    (copy / "01_a.ipynb").write_text("a1 with my notes")        # edited in the lab
    (src / "01_a.ipynb").write_text("a2")                        # the course moves on
    (src / "02_b.ipynb").write_text("b2")
    kept = lab.sync_copy(sorted(src.iterdir()), copy, log=messages.append)
    assert kept == [copy / "01_a.ipynb"]
    assert (copy / "01_a.ipynb").read_text() == "a1 with my notes"
    assert (copy / "02_b.ipynb").read_text() == "b2"              # not edited: refreshed
    assert "01_a.ipynb" in messages[-1] and "Kept your edits" in messages[-1]
    (copy / "01_a.ipynb").unlink()                               # delete to get the new one
    assert lab.sync_copy(sorted(src.iterdir()), copy, log=messages.append) == []
    assert (copy / "01_a.ipynb").read_text() == "a2"


def test_the_news_question_is_off_by_default_setting():
    overrides = json.loads((lab.CONFIG_DIR / "labconfig" / "default_setting_overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"] == {
        "fetchNews": "false", "checkForUpdates": False}
    env = lab.lab_environment("t", {"JUPYTER_CONFIG_PATH": "/elsewhere", "MPLBACKEND": "Agg"})
    assert env["JUPYTER_CONFIG_PATH"].split(os.pathsep) == [str(lab.CONFIG_DIR), "/elsewhere"]
    assert "MPLBACKEND" not in env and env["JUPYTER_TOKEN"] == "t"


def test_a_scratch_server_keeps_every_jupyter_folder_under_its_own_directory(tmp_path):
    """The browser tests' and the latency benchmark's servers: nothing of the user's
    JupyterLab applies or changes, and notebooks render quietly and in full."""
    env = lab.scratch_environment("t", tmp_path, {"MPLBACKEND": "Agg", "JUPYTER_TOKEN": "x",
                                                  "HOME": "/home/someone"})
    assert env["JUPYTER_TOKEN"] == "t" and "MPLBACKEND" not in env and env["HOME"] == "/home/someone"
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                 "JUPYTERLAB_WORKSPACES_DIR"):
        assert Path(env[name]).parent == tmp_path
    settings = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab"
    assert json.loads((settings / "apputils-extension/notification.jupyterlab-settings")
                      .read_text())["fetchNews"] == "false"
    assert json.loads((settings / "notebook-extension/tracker.jupyterlab-settings")
                      .read_text()) == {"windowingMode": "none"}
    assert json.loads((settings / "apputils-extension/kernels-settings.jupyterlab-settings")
                      .read_text()) == {"commsOverSubshells": "disabled"}
