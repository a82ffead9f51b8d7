"""The RQ worker, run with the app context by `flask worker`."""

from __future__ import annotations

from typing import Any

from flask import current_app
from rq import SimpleWorker

from payments_site.extensions import db
from payments_site.queues import QUEUE_NAMES, get_queue, get_redis
from payments_site.services.sweeper import run_sweep, start_periodic_sweeper


class AppWorker(SimpleWorker):
    """Runs jobs in this process (no fork: no database connections shared with a child),
    with a fresh database session for every job."""

    def perform_job(self, job: Any, queue: Any) -> bool:
        try:
            return bool(super().perform_job(job, queue))
        finally:
            db.session.remove()


def run_worker(queue_names: list[str] | None = None, *, burst: bool = False) -> bool:
    """Work the named queues (all by default); the scheduler runs delayed retries."""
    names = queue_names or list(QUEUE_NAMES)
    queues = [get_queue(name) for name in names]
    worker = AppWorker(queues, connection=get_redis())
    current_app.logger.info("worker listening on %s", ", ".join(names))
    # The sweeper re-queues work whose job was lost (Redis down, a worker killed mid-job).
    if burst:
        run_sweep()
        return bool(worker.work(burst=True, with_scheduler=True))
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    sweeper = start_periodic_sweeper(app, int(app.config["SWEEP_INTERVAL"]))
    try:
        return bool(worker.work(burst=False, with_scheduler=True))
    finally:
        sweeper.stop()
