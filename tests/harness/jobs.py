"""The worker in the test's process, and the app over real HTTP (for the browser and the
emulator's webhooks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from payments_site.devtools.stack import ThreadedServer
from payments_site.extensions import db
from payments_site.queues import QUEUE_NAMES, get_queue, get_redis


@pytest.fixture
def run_jobs(app: Flask) -> Callable[..., int]:
    """Run every queued job (and, by default, scheduled retries) in-process, like `flask worker`.

    Returns the number of jobs run.
    """

    def run(include_scheduled: bool = True, max_rounds: int = 20) -> int:
        queues = [get_queue(name) for name in QUEUE_NAMES]
        total = 0
        for _ in range(max_rounds):
            if include_scheduled:
                for queue in queues:
                    registry = queue.scheduled_job_registry
                    for job_id in registry.get_job_ids():
                        job = queue.fetch_job(job_id)
                        registry.remove(job_id)
                        if job is not None:
                            queue.enqueue_job(job)
            pending = sum(q.count for q in queues)
            if pending == 0:
                break
            worker = SimpleWorker(queues, connection=get_redis())
            worker.work(burst=True, with_scheduler=False)
            total += pending
        # The jobs committed through the same scoped session; see their writes.
        db.session.expire_all()
        return total

    return run


class ThreadWorker(SimpleWorker):
    """A SimpleWorker that can run off the main thread (signal handlers are main-thread only)."""

    # RQ's default job timeout uses SIGALRM, which only the main thread may install.
    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


# How often the background worker looks at its queues, and runs due retries regardless.
QUEUE_POLL = 0.05
SCHEDULER_EVERY = 1.0


@pytest.fixture
def background_worker(app: Flask) -> Iterator[None]:
    """A worker thread draining every queue while the test runs (for browser tests)."""
    stop = threading.Event()

    def loop() -> None:
        with app.app_context():
            queues = [get_queue(name) for name in QUEUE_NAMES]
            worker = ThreadWorker(queues, connection=get_redis())
            next_schedule = 0.0
            while not stop.is_set():
                schedule = time.monotonic() >= next_schedule
                # A cheap look at the queues first: a burst registers and retires a worker.
                if schedule or any(q.count for q in queues):
                    worker.work(burst=True, with_scheduler=schedule)
                    if schedule:
                        next_schedule = time.monotonic() + SCHEDULER_EVERY
                stop.wait(QUEUE_POLL)

    thread = threading.Thread(target=loop, daemon=True, name="background-worker")
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


@pytest.fixture
def live_server(app: Flask) -> Iterator[ThreadedServer]:
    """The app served over real HTTP on loopback (for the browser and the emulator's webhooks);
    the links in its emails point at it."""
    server = ThreadedServer(app).start()
    app.config["SITE_URL"] = server.url
    yield server
    server.stop()
