"""The course's JupyterLab extension (tools/labextensions/bn-course-a11y) reaches every way
the course is opened, with nothing to install or build (issue 27).

JupyterLab finds it through tools/jupyter_config/jupyter_config.py, which every
route puts first on JUPYTER_CONFIG_PATH: make lab and the browser tests' scratch servers
(tools/lab.py), each learner's server on a hub (deploy/hub/singleuser.py: the local hub,
The Littlest JupyterHub, Kubernetes), Binder and the image built from binder/
(binder/start), conda (tools/lab.py). What the extension does in the browser is
tested in tests/e2e/test_accessibility.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from jupyterlab_server.config import get_federated_extensions
from traitlets.config.loader import PyFileConfigLoader

from tools import lab

ROOT = Path(__file__).resolve().parents[1]
LABEXTENSIONS = ROOT / "tools" / "labextensions"
EXTENSION = LABEXTENSIONS / "bn-course-a11y"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_jupyterlab_reads_the_extension_as_a_prebuilt_one():
    found = get_federated_extensions([str(LABEXTENSIONS)])
    assert list(found) == ["bn-course-a11y"]
    build = found["bn-course-a11y"]["jupyterlab"]["_build"]
    assert build == {"load": "index.js", "extension": "./extension"}
    script = EXTENSION / build["load"]
    assert script.is_file()
    # JupyterLab tells browsers to keep files under a static/ folder forever (their names
    # carry a hash); index.js keeps its name when it changes, so it must live elsewhere.
    assert "static" not in script.relative_to(EXTENSION).parts
    # The container the script registers is the one JupyterLab asks for: the package's name.
    assert "window._JUPYTERLAB['bn-course-a11y'] = {" in script.read_text(encoding="utf-8")


def test_the_course_configuration_adds_the_extensions_folder():
    folder = ROOT / "tools" / "jupyter_config"
    config = PyFileConfigLoader("jupyter_config.py", path=str(folder)).load_config()
    paths = config.LabApp.extra_labextensions_path.get_value([])
    assert [Path(p) for p in paths] == [LABEXTENSIONS]


def test_make_lab_and_the_scratch_servers_load_the_course_configuration(tmp_path):
    for env in (lab.lab_environment("t", {"JUPYTER_CONFIG_PATH": "/elsewhere"}),
                lab.scratch_environment("t", tmp_path, {"JUPYTER_CONFIG_PATH": "/elsewhere"})):
        assert env["JUPYTER_CONFIG_PATH"].split(os.pathsep) == [str(lab.CONFIG_DIR), "/elsewhere"]
    assert lab.CONFIG_DIR == ROOT / "tools" / "jupyter_config"
    # Once only, however often it is added.
    again = lab.course_config_path({"JUPYTER_CONFIG_PATH": os.pathsep.join([str(lab.CONFIG_DIR), "/x"])})
    assert again.split(os.pathsep) == [str(lab.CONFIG_DIR), "/x"]


def test_a_learners_hub_server_loads_the_course_configuration(monkeypatch, tmp_path):
    singleuser = _load("bn_hub_singleuser_for_labextension", ROOT / "deploy" / "hub" / "singleuser.py")
    started = {}
    monkeypatch.setattr(singleuser, "prepare_student_edition", lambda home, log: tmp_path)
    monkeypatch.setattr(singleuser.shutil, "which", lambda name, path=None: "/hub/jupyterhub-singleuser")
    monkeypatch.setattr(singleuser.os, "execvp", lambda cmd, argv: started.update(
        cmd=cmd, argv=argv, config_path=os.environ["JUPYTER_CONFIG_PATH"]))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", "/hub/data/jupyter_config")
    singleuser.main(["--debug"])
    assert started["argv"] == ["/hub/jupyterhub-singleuser", "--debug"]
    assert started["config_path"].split(os.pathsep) == [str(ROOT / "tools" / "jupyter_config"),
                                                        "/hub/data/jupyter_config"]


def test_binder_start_loads_the_course_configuration(tmp_path):
    repo = tmp_path / "repo"
    for folder in ("binder", "tools"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    start = repo / "binder" / "start"
    assert os.access(ROOT / "binder" / "start", os.X_OK), "binder/start must be executable"
    show = [sys.executable, "-c", "import json, os; print(json.dumps(os.environ['JUPYTER_CONFIG_PATH']))"]
    for before, rest in ((None, []), ("/srv/conda/etc/jupyter", ["/srv/conda/etc/jupyter"])):
        env = {"PATH": "/usr/bin:/bin"} | ({"JUPYTER_CONFIG_PATH": before} if before else {})
        done = subprocess.run([str(start), *show], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout).split(os.pathsep) == [str(repo / "tools" / "jupyter_config"), *rest]
