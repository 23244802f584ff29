"""Start the local JupyterHub of deploy/hub/jupyterhub_config.py: what `make hub` runs.

    python deploy/hub/start.py                  # http://127.0.0.1:8000 (BN_HUB_PORT), password "course"
    python deploy/hub/start.py --install-only   # only install configurable-http-proxy (CI)

JupyterHub routes every request through configurable-http-proxy, a Node.js program from
npm. If it is neither on PATH nor named by ``BN_HUB_PROXY``, this installs it once, with
the machine's npm, into ``.venv/node_modules`` (about 10 s; ``npm`` must be installed:
on Debian ``apt-get install npm``). Then it *becomes* the hub (``os.execv``), so Ctrl+C
stops the hub, its proxy and every learner's server; the learners' folders stay in
``build/hub/users/`` (``BN_HUB_DATA``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_PREFIX = ROOT / ".venv"
PROXY_PACKAGE = "configurable-http-proxy@5"


def find_proxy() -> str | None:
    """The configurable-http-proxy command: BN_HUB_PROXY, .venv/node_modules, or PATH."""
    if os.environ.get("BN_HUB_PROXY"):
        return os.environ["BN_HUB_PROXY"]
    local = NODE_PREFIX / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    return shutil.which("configurable-http-proxy")


def install_proxy(log=print) -> str:
    """Install configurable-http-proxy from npm into .venv/node_modules; return its command."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("JupyterHub needs configurable-http-proxy (Node.js, from npm), and npm "
                         "is not installed. On Debian/Ubuntu: sudo apt-get install -y npm")
    log(f"Installing {PROXY_PACKAGE} from npm into {NODE_PREFIX}/node_modules (once) ...")
    NODE_PREFIX.mkdir(exist_ok=True)
    done = subprocess.run([npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund",
                           "--loglevel=error", PROXY_PACKAGE], capture_output=True, text=True)
    proxy = NODE_PREFIX / "node_modules" / ".bin" / "configurable-http-proxy"
    if done.returncode != 0 or not proxy.exists():
        raise SystemExit(f"npm install {PROXY_PACKAGE} failed:\n{done.stdout}\n{done.stderr}")
    return str(proxy)


def main(argv: list[str]) -> None:
    proxy = find_proxy() or install_proxy()
    if "--install-only" in argv:
        print(f"configurable-http-proxy: {proxy}")
        return
    env = dict(os.environ, BN_HUB_PROXY=proxy)
    port = env.get("BN_HUB_PORT") or "8000"
    hub = shutil.which("jupyterhub", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                           env.get("PATH", "")]))
    if hub is None:
        raise SystemExit("jupyterhub is not installed: make hub installs it (the hub extra)")
    print(f"JupyterHub for the course: open http://127.0.0.1:{port}/ and log in with any user "
          f"name and the password {env.get('BN_HUB_PASSWORD') or 'course'!r} (a trial log-in; "
          f"'instructor' is the admin). Stop it with Ctrl+C.", flush=True)
    os.execve(hub, [hub, "-f", str(HERE / "jupyterhub_config.py")], env)


if __name__ == "__main__":
    main(sys.argv[1:])
