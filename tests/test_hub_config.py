"""The hub recipes agree with the repository (no hub started; tests/test_hub.py runs one).

* deploy/kubernetes/values.yaml: its command is the course's copy step at the place the
  image puts the repository, its first page a notebook the student edition has, its
  memory guarantee covers a server and the heaviest kernel the README's table reports,
  and its kernel culling is the local hub's;
* deploy/hub/course_spawner.memory_cgroup: creates the per-learner group with the limit
  where it may (a cgroup v1 tree, here in a temporary folder) and otherwise says in the
  log that the limit is not enforced.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
yaml = pytest.importorskip("yaml")
SERVER_MB = 130          # a JupyterLab server, measured (deploy/README.md)


def _values() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "kubernetes" / "values.yaml").read_text(encoding="utf-8"))


def _mb(size: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([MG])", size).groups()
    return float(number) * (1000 if unit == "G" else 1)


def test_kubernetes_values_start_the_course_copy_step_on_notebook_00():
    single = _values()["singleuser"]
    python, script = single["cmd"]
    assert python == "python" and script.startswith("/srv/repo/")
    assert (ROOT / script.removeprefix("/srv/repo/")).is_file(), script
    assert (ROOT / single["extraEnv"]["BN_COURSE_NOTEBOOKS"].removeprefix("/srv/repo/")).is_dir()
    page = single["defaultUrl"].removeprefix("/lab/tree/student/")
    assert (ROOT / "notebooks" / page).is_file(), single["defaultUrl"]


def test_kubernetes_memory_guarantee_covers_a_server_and_the_heaviest_kernel():
    single = _values()["singleuser"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Kernel memory", 1)[1].split("\n## ", 1)[0]
    now = [float(row.split("|")[3]) for row in section.splitlines() if re.match(r"\| \d\d \|", row)]
    assert len(now) == 10
    assert _mb(single["memory"]["guarantee"]) >= SERVER_MB + max(now)
    assert _mb(single["memory"]["limit"]) >= 2 * _mb(single["memory"]["guarantee"])
    assert 24_000 / _mb(single["memory"]["guarantee"]) >= 60       # the 60 learners per 24 GB
    assert _values()["cull"]["enabled"] is True


def test_kubernetes_kernel_culling_is_the_local_hubs():
    args = _values()["hub"]["config"]["Spawner"]["args"]
    config = (ROOT / "deploy" / "hub" / "jupyterhub_config.py").read_text(encoding="utf-8")
    default = re.search(r'BN_HUB_KERNEL_IDLE"\) or (\d+)', config).group(1)
    assert f"--MappingKernelManager.cull_idle_timeout={default}" in args
    assert "--MappingKernelManager.cull_connected=True" in args


def _spawner_module():
    if importlib.util.find_spec("jupyterhub") is None:
        pytest.skip("JupyterHub is not installed (the hub extra: make hub)")
    path = ROOT / "deploy" / "hub" / "course_spawner.py"
    spec = importlib.util.spec_from_file_location("bn_course_spawner", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_memory_cgroup_is_made_with_the_limit_under_the_hubs_own(tmp_path, monkeypatch):
    spawner = _spawner_module()
    own = spawner._own_cgroups(Path("/proc/self/cgroup").read_text())
    if "v1" not in own:
        pytest.skip("this process has no cgroup v1 memory controller line to build the fake tree on")
    hub_group = tmp_path / "memory" / own["v1"].lstrip("/")
    hub_group.mkdir(parents=True)
    group = spawner.memory_cgroup("al ice", 2**30, logging.getLogger("test"), root=tmp_path)
    assert group == hub_group / "bn-hub-al_ice"
    assert (group / "memory.limit_in_bytes").read_text() == str(2**30)


def test_memory_cgroup_says_when_the_limit_is_not_enforced(tmp_path, caplog):
    spawner = _spawner_module()
    with caplog.at_level(logging.WARNING):
        group = spawner.memory_cgroup("bob", 2**30, logging.getLogger("test"), root=tmp_path / "none")
    assert group is None
    assert "memory limit for bob NOT enforced" in caplog.text
