"""JupyterHub on one teaching machine, for a trial: what `make hub` starts (deploy/README.md).

    make hub                                   # http://127.0.0.1:8000, any user name, password "course"
    .venv/bin/jupyterhub -f deploy/hub/jupyterhub_config.py   # the same, by hand

* Log-in: JupyterHub's DummyAuthenticator, for a trial only: any user name, one shared
  password (``BN_HUB_PASSWORD``, default ``course``). The user ``instructor`` is an admin.
* Each learner: a server of their own (``course_spawner.CourseSpawner``), in a folder of
  their own (``<data>/users/<name>``), opened on their own student edition
  (``student/`` there, built and refreshed by deploy/hub/singleuser.py at every start;
  their edits are kept across restarts and course updates, never overwritten).
* Memory: ``BN_HUB_MEM_LIMIT`` per learner (default ``1G``: one server and two or three
  kernels of benchmarks/kernel_memory.py's size), enforced with a memory cgroup where the
  machine allows it (course_spawner.py says how).
* Idle kernels are shut down by the learner's server after ``BN_HUB_KERNEL_IDLE``
  seconds without activity (default 2400, 40 min), even with a browser tab open; idle
  servers are stopped by the ``jupyterhub-idle-culler`` service after
  ``BN_HUB_SERVER_IDLE`` seconds (default 7200). A stopped server keeps the learner's
  files; the next log-in starts it again.
* nbgrader: every learner's server reads ``<data>/jupyter_config/nbgrader_config.py``:
  the course ``batchnorm`` and the exchange folder ``<data>/exchange``, so ``nbgrader
  fetch_assignment``/``submit`` work from a learner's terminal or kernel, and the
  instructor's ``release_assignment``/``collect`` from the course folder.

Settings from the environment: ``BN_HUB_DATA`` (the hub's state, learners' folders and
the exchange; default ``build/hub``), ``BN_HUB_PORT`` (8000), ``BN_HUB_API_PORT``
(8081), ``BN_HUB_PROXY_API_PORT`` (8001), ``BN_HUB_PROXY`` (the configurable-http-proxy
command; default the one deploy/hub/start.py installs under ``.venv``), and those above.
Everything listens on 127.0.0.1 only: to serve a room, put the hub behind a reverse
proxy with HTTPS, and use real accounts (deploy/README.md).
"""

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from course_spawner import CourseSpawner  # noqa: E402

c = get_config()  # noqa: F821 (JupyterHub defines get_config when it reads this file)
env = os.environ.get

DATA = Path(env("BN_HUB_DATA") or ROOT / "build" / "hub").resolve()
for folder in ("users", "jupyter_config", "exchange"):
    (DATA / folder).mkdir(parents=True, exist_ok=True)
# nbgrader's exchange: every learner writes their submissions here (as on any shared hub).
(DATA / "exchange").chmod(0o777)
INSTRUCTORS = {"instructor"}
# nbgrader names a submission after the Unix user; on this hub every learner is the same
# one, so a learner's server names it after their hub user instead (never an
# instructor's: their collect and autograde cover every learner).
(DATA / "jupyter_config" / "nbgrader_config.py").write_text(
    "import os\n"
    "c = get_config()  # noqa: F821\n"
    "c.CourseDirectory.course_id = 'batchnorm'\n"
    f"c.Exchange.root = {str(DATA / 'exchange')!r}\n"
    "user = os.environ.get('JUPYTERHUB_USER')\n"
    f"if user and user not in {sorted(INSTRUCTORS)!r}:\n"
    "    c.CourseDirectory.student_id = user\n", encoding="utf-8")

# --- the hub, its proxy, its database: all on this machine's loopback -------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{int(env('BN_HUB_PORT') or 8000)}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{int(env('BN_HUB_API_PORT') or 8081)}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(env('BN_HUB_PROXY_API_PORT') or 8001)}"
proxy = env("BN_HUB_PROXY") or shutil.which("configurable-http-proxy", path=os.pathsep.join(
    [str(ROOT / ".venv" / "node_modules" / ".bin"), env("PATH", "")]))
if proxy:
    c.ConfigurableHTTPProxy.command = [proxy]
c.ConfigurableHTTPProxy.pid_file = str(DATA / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{DATA / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(DATA / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(DATA / "jupyterhub.pid")

# --- who may log in: a trial authenticator -----------------------------------------------
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = env("BN_HUB_PASSWORD") or "course"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = INSTRUCTORS

# --- each learner's server ---------------------------------------------------------------
c.JupyterHub.spawner_class = CourseSpawner
c.CourseSpawner.home_dir_template = str(DATA / "users" / "{username}")
c.Spawner.cmd = [sys.executable, str(HERE / "singleuser.py")]
c.Spawner.default_url = "/lab/tree/student/00_start_here.ipynb"
c.Spawner.mem_limit = env("BN_HUB_MEM_LIMIT") or "1G"
c.Spawner.start_timeout = 120
kernel_idle = int(env("BN_HUB_KERNEL_IDLE") or 2400)
c.Spawner.args = [
    f"--MappingKernelManager.cull_idle_timeout={kernel_idle}",
    f"--MappingKernelManager.cull_interval={max(1, min(60, kernel_idle // 4))}",
    "--MappingKernelManager.cull_connected=True",      # a tab left open does not keep a kernel
]
if hasattr(os, "geteuid") and os.geteuid() == 0:    # containers and CI run as root
    c.Spawner.args.append("--ServerApp.allow_root=True")
c.Spawner.environment = {
    # The course's Jupyter defaults (no news toast), then nbgrader's exchange settings.
    "JUPYTER_CONFIG_PATH": os.pathsep.join([str(ROOT / "tools" / "jupyter_config"),
                                            str(DATA / "jupyter_config")]),
    "JUPYTER_PREFER_ENV_PATH": "1",                 # this Python's kernel, as make lab
    "PATH": os.pathsep.join([str(Path(sys.executable).parent), env("PATH", "/usr/bin:/bin")]),
}

# --- idle servers: the jupyterhub-idle-culler service --------------------------------------
server_idle = int(env("BN_HUB_SERVER_IDLE") or 7200)
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={server_idle}",
                f"--cull-every={max(1, min(300, server_idle // 4))}"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
