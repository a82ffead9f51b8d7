"""The RQ worker, run with the app context by `flask worker` (one process, or several)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from types import FrameType
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


def run_worker_processes(count: int, queue_names: list[str] | None = None, *,
                         burst: bool = False) -> bool:
    """`count` workers side by side, each a process forked from this one with connections of
    its own, so `count` jobs run at once (most jobs wait on Stripe or SMTP, not the CPU).

    This process supervises them: a worker that dies is started again (unless `burst`), and
    SIGTERM/SIGINT are passed on, so each finishes its current job (RQ's warm shutdown).
    With `burst`, returns once every worker has emptied the queues.
    """
    if count <= 1:
        return run_worker(queue_names, burst=burst)
    context = multiprocessing.get_context("fork")
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        child = context.Process(target=_worker_child, args=(queue_names, burst), daemon=False)
        child.start()
        return child

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.pid is not None and child.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)

    children = [start() for _ in range(count)]
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    current_app.logger.info("%d workers started", count)
    try:
        while True:
            alive = [child for child in children if child.is_alive()]
            if stopping or burst:
                if not alive:
                    break
            else:
                for index, child in enumerate(children):
                    if not child.is_alive():
                        current_app.logger.warning("worker %s exited (%s): starting another",
                                                   child.pid, child.exitcode)
                        children[index] = start()
            time.sleep(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return all(child.exitcode == 0 for child in children)


def _worker_child(queue_names: list[str] | None, burst: bool) -> None:
    """One forked worker: connections of its own, then the usual worker loop."""
    db.engine.dispose(close=False)  # never use a connection the parent opened
    current_app.extensions.pop("redis", None)
    current_app.extensions.pop("rq_queues", None)
    run_worker(queue_names, burst=burst)
