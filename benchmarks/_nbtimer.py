"""pytest plugin for benchmarks/course_runtime.py: time of each notebook under nbval.

Loaded with ``-p _nbtimer`` (``benchmarks/`` on ``PYTHONPATH``). A notebook's time runs
from the start of its first cell's setup (nbval starts the kernel there) to the end of
its last cell's teardown (kernel shutdown), so it includes the kernel's start and stop
but not pytest's own start-up. Besides the wall time it records the CPU time spent in
that interval by pytest and by the (by then reaped) kernel process: on a busy machine
the wall time grows with the load, the CPU time much less. Writes
``{notebook: {"seconds", "cpu_seconds", "cells", "failed"}}`` as JSON to the file named
by the environment variable ``NBTIMER_OUT``.
"""

import json
import os
import resource
import time

_files: dict = {}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def pytest_runtest_logstart(nodeid, location):
    path = nodeid.split("::")[0]
    if path not in _files:
        _files[path] = {"start": time.perf_counter(), "cpu_start": _cpu(), "cells": 0, "failed": set()}
    _files[path]["cells"] += 1


def pytest_runtest_logfinish(nodeid, location):
    entry = _files[nodeid.split("::")[0]]
    entry["end"], entry["cpu_end"] = time.perf_counter(), _cpu()


def pytest_runtest_logreport(report):
    if report.failed:
        _files[report.nodeid.split("::")[0]]["failed"].add(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("NBTIMER_OUT")
    if not out:
        return
    data = {path: {"seconds": round(e.get("end", e["start"]) - e["start"], 2),
                   "cpu_seconds": round(e.get("cpu_end", e["cpu_start"]) - e["cpu_start"], 2),
                   "cells": e["cells"], "failed": len(e["failed"])}
            for path, e in _files.items()}
    with open(out, "w") as f:
        json.dump(data, f, indent=1)
