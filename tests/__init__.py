"""The test harness: the real services of one pytest process, the app on them, the worker."""

from tests.harness.metrics_dir import use_own_metrics_dir

# First, before anything imports the app (and prometheus_client): this process's own
# metrics directory.
use_own_metrics_dir()
