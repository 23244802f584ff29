# The course's JupyterLab extensions, prebuilt, in tools/labextensions/: bn-course-a11y names
# every slider handle after its description (issue 27). Every way of opening the course puts
# this folder on JUPYTER_CONFIG_PATH (tools/lab.py, deploy/hub/singleuser.py, binder/start).
# jupyter_config.py, not jupyter_server_config.py: every Jupyter command reads it, so that
# `jupyter labextension list` (with this folder on JUPYTER_CONFIG_PATH) lists the extension too.
from pathlib import Path

c = get_config()  # noqa: F821 (Jupyter defines get_config when it reads this file)
c.LabApp.extra_labextensions_path.append(str(Path(__file__).resolve().parents[1] / "labextensions"))
