"""Each test process counts its Prometheus metrics in a directory of its own.

The app's metrics are in prometheus_client's multiprocess mode, which the client chooses
when it is first imported, from PROMETHEUS_MULTIPROC_DIR. So before anything imports the app
(tests/__init__.py calls this first), every test process — each pytest-xdist worker, which
inherits its parent's environment — makes a fresh, empty directory, points the variable at
it and removes it at exit: parallel processes never add up each other's counters, and a run
never reads the files of an earlier one.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWNER_ENV = "PAYMENTS_TEST_METRICS_OWNER"


def use_own_metrics_dir() -> Path:
    """This process's metrics directory, made (and set in the environment) on first call."""
    current = os.environ.get(MULTIPROC_ENV)
    if current and os.environ.get(_OWNER_ENV) == str(os.getpid()) and Path(current).is_dir():
        return Path(current)
    path = Path(tempfile.mkdtemp(prefix=f"payments-test-metrics-{os.getpid()}-"))
    os.environ[MULTIPROC_ENV] = str(path)
    os.environ[_OWNER_ENV] = str(os.getpid())
    atexit.register(shutil.rmtree, path, True)
    return path
