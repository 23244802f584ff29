"""Start JupyterLab on the course notebooks: what `make lab` runs.

    python tools/lab.py                  # free loopback port, fresh token, opens a browser
    python tools/lab.py --no-browser     # only print the address

The server listens on 127.0.0.1 only and requires a token: a fresh random one each
start (or the one in the environment variable JUPYTER_TOKEN). The address to open,
token included, is printed first. The script then *becomes* the JupyterLab process
(``os.execve``), so Ctrl+C stops the server and the PID it was started with is the
server's PID (tests/test_lab_starts.py stops it by that PID). ``--allow-root`` is added
when running as root (containers, CI), where JupyterLab otherwise refuses to start.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


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
           # warnings only, so that the address printed above stays in view
           "--ServerApp.log_level=WARN", "--LabApp.log_level=WARN"]
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--root-dir", type=Path, default=ROOT / "notebooks",
                        help="folder JupyterLab shows (default: notebooks/)")
    args = parser.parse_args(argv)

    port = args.port or free_port()
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_hex(24)
    env = dict(os.environ, JUPYTER_TOKEN=token,
               # kernels from this environment first, even if the user has a personal
               # "python3" kernelspec pointing at another Python
               JUPYTER_PREFER_ENV_PATH="1")
    env.pop("MPLBACKEND", None)                     # Agg would hide the inline figures
    url = f"http://{HOST}:{port}/lab?token={token}"
    print(f"JupyterLab for the course: {url}", flush=True)
    print("(stop it with Ctrl+C; the address above works only on this machine)", flush=True)
    cmd = lab_command(port, args.root_dir.resolve(), open_browser=not args.no_browser)
    os.execve(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
