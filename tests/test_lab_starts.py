"""`make lab` works: JupyterLab starts through tools/lab.py, answers only with its token, stops.

Starts the server exactly as `make lab` does (same script, same interpreter), only with
--no-browser and with Jupyter's config/runtime/settings folders moved to a temporary
directory so that the test leaves nothing behind. Not a browser test: about 3-6 s.
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

ROOT = Path(__file__).resolve().parents[1]
LAB_SCRIPT = ROOT / "tools" / "lab.py"
URL_LINE = re.compile(r"(http://127\.0\.0\.1:(\d+))/lab\?token=([0-9A-Za-z_-]+)")


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def lab(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))
    log_path = tmp_path / "lab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(LAB_SCRIPT), "--no-browser"], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc, log_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_lab_starts_with_a_token_on_loopback_and_stops_by_pid(lab):
    proc, log_path = lab
    deadline = time.monotonic() + 60
    base = token = None
    while True:
        log = log_path.read_text(errors="replace")
        if base is None and (m := URL_LINE.search(log)):
            base, token = m.group(1), m.group(3)
        if base is not None:
            try:
                status, body = _get(f"{base}/api/status?token={token}")
            except OSError:
                status = None
            if status == 200:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not answer /api/status (exit code {proc.poll()}):\n{log}")
        time.sleep(0.2)

    assert len(token) >= 32, "the generated token is too short to be a secret"
    info = json.loads(body)
    assert "started" in info and "kernels" in info
    # The server refuses without the token and with a wrong one.
    assert _get(f"{base}/api/status")[0] == 403
    assert _get(f"{base}/api/status?token=wrong{token}")[0] == 403
    # It serves the notebooks folder of this repository.
    status, body = _get(f"{base}/api/contents?token={token}")
    assert status == 200
    names = {entry["name"] for entry in json.loads(body)["content"]}
    assert names >= {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    # The token is not on the command line (readable by every user through `ps`).
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    if cmdline.exists():
        argv = cmdline.read_bytes().split(b"\0")
        assert b"jupyterlab" in argv and not any(token.encode() in a for a in argv)

    # Stop it by its PID (tools/lab.py exec's into JupyterLab, so the PID is the server's).
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(15)
    assert not _pid_alive(proc.pid)
    with pytest.raises(OSError):
        _get(f"{base}/api/status?token={token}", timeout=1)
