"""pytest plugin for benchmarks/course_runtime.py: wall time of each notebook under nbval.

Loaded with ``-p _nbtimer`` (``benchmarks/`` on ``PYTHONPATH``). A notebook's time runs
from the start of its first cell's setup (nbval starts the kernel there) to the end of
its last cell's teardown (kernel shutdown), so it includes the kernel's start and stop
but not pytest's own start-up. Writes ``{notebook: {"seconds", "cells", "failed"}}`` as
JSON to the file named by the environment variable ``NBTIMER_OUT``.
"""

import json
import os
import time

_files: dict = {}


def pytest_runtest_logstart(nodeid, location):
    path = nodeid.split("::")[0]
    entry = _files.setdefault(path, {"start": time.perf_counter(), "cells": 0, "failed": set()})
    entry["cells"] += 1


def pytest_runtest_logfinish(nodeid, location):
    _files[nodeid.split("::")[0]]["end"] = time.perf_counter()


def pytest_runtest_logreport(report):
    if report.failed:
        _files[report.nodeid.split("::")[0]]["failed"].add(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("NBTIMER_OUT")
    if not out:
        return
    data = {path: {"seconds": round(e.get("end", e["start"]) - e["start"], 2), "cells": e["cells"],
                   "failed": len(e["failed"])} for path, e in _files.items()}
    with open(out, "w") as f:
        json.dump(data, f, indent=1)
