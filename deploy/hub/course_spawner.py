"""The local hub's spawner: one folder per learner, and a memory limit the kernel enforces.

``CourseSpawner`` is JupyterHub's ``SimpleLocalProcessSpawner`` (every learner's server
runs as the hub's own Unix user, in a home folder of its own, ``home_dir_template``) plus
one thing: ``Spawner.mem_limit`` is *enforced*. JupyterHub's local spawners only pass the
limit on as ``MEM_LIMIT`` in the environment; here each learner's server is started
inside a memory control group of its own (Linux cgroups, the mechanism systemd and
Kubernetes use), so the server and every kernel it starts share that limit, and the
kernel (the Linux OOM killer picks the largest process of the group) is killed when the
learner's processes together go over it. The server itself survives and JupyterLab
says "the kernel died"; other learners are not touched.

Where the hub may not create a control group (not root, no memory controller, or cgroup
v2 without the memory controller delegated to the hub's group), the server still starts
and the hub's log says the limit is not enforced. The control group is made under the
hub's own, named ``bn-hub-<user>``, and removed when the server stops.

Not for a real class on its own: every learner runs as the same Unix user, so a
learner's code can read the others' files. A teaching machine gives each learner a Unix
user of their own (The Littlest JupyterHub's SystemdSpawner does, with the limit
enforced by systemd); see deploy/README.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "bn-hub-"


def _own_cgroups(proc_cgroup: str) -> dict:
    """``{"v1": path, "v2": path}`` of this process's memory cgroup, from /proc/self/cgroup."""
    found = {}
    for line in proc_cgroup.splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and controllers == "":
            found["v2"] = path
        elif "memory" in controllers.split(","):
            found["v1"] = path
    return found


def memory_cgroup(name: str, limit_bytes: int, log, root: Path = CGROUP_ROOT) -> Path | None:
    """Create (or reuse) the memory cgroup ``bn-hub-<name>`` below this process's own,
    limited to ``limit_bytes``; return its folder, or ``None`` (with a warning in the log)
    where that is not possible."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    try:
        own = _own_cgroups(Path("/proc/self/cgroup").read_text())
        if "v1" in own and (root / "memory").is_dir():
            group = root / "memory" / own["v1"].lstrip("/") / f"{PREFIX}{safe}"
            group.mkdir(exist_ok=True)
            (group / "memory.limit_in_bytes").write_text(str(limit_bytes))
            return group
        if "v2" in own and (root / "cgroup.controllers").exists():
            parent = root / own["v2"].lstrip("/")
            if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
                raise OSError("the memory controller is not enabled for the hub's child groups "
                              f"({parent}/cgroup.subtree_control)")
            group = parent / f"{PREFIX}{safe}"
            group.mkdir(exist_ok=True)
            (group / "memory.max").write_text(str(limit_bytes))
            return group
        raise OSError("no cgroup memory controller found")
    except OSError as exc:
        log.warning("memory limit for %s NOT enforced (%s); the server starts without it", name, exc)
        return None


class CourseSpawner(SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner whose ``mem_limit`` is enforced with a memory cgroup."""

    cgroup: Path | None = None

    async def start(self):
        self.cgroup = None
        if self.mem_limit:
            self.cgroup = memory_cgroup(self.user.name, int(self.mem_limit), self.log)
            if self.cgroup is not None:
                self.log.info("memory limit for %s: %d MB (cgroup %s)", self.user.name,
                              int(self.mem_limit) // 2**20, self.cgroup)
        return await super().start()

    def make_preexec_fn(self, name):
        prepare_home = super().make_preexec_fn(name)
        group = self.cgroup

        def preexec():
            prepare_home()
            if group is not None:
                # Join the group before exec: the server and every kernel it forks are in it.
                (group / "cgroup.procs").write_text(str(os.getpid()))

        return preexec

    async def stop(self, now=False):
        await super().stop(now=now)
        if self.cgroup is not None:
            try:
                self.cgroup.rmdir()      # succeeds once every process of the group has exited
            except OSError:
                pass
