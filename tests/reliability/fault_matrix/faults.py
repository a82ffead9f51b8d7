"""The faults, one function each: it starts breaking things (often from a thread of its own,
in bursts while the load runs) and returns a note on what it did."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rq.registry import StartedJobRegistry

from payments_site.queues import QUEUE_NAMES, get_queue
from tests.reliability.fault_matrix.stack import STRIPE_TIMEOUT, MatrixStack

Fault = Callable[[MatrixStack, float], str]


def _every(seconds: float, times: int, action: Callable[[], Any]) -> None:
    for _ in range(times):
        time.sleep(seconds)
        action()


def _in_background(target: Callable[..., Any], *args: Any) -> None:
    threading.Thread(target=target, args=args, daemon=True).start()


def no_fault(stack: MatrixStack, seconds: float) -> str:
    return "steady load, no fault"


def stripe_5xx(stack: MatrixStack, seconds: float) -> str:
    def inject() -> None:
        # More failures in a row than the gateway retries: some requests exhaust them.
        stack.fault(method="POST", path_prefix="/v1/payment_intents", status=500, times=6)
        stack.fault(method="POST", path_prefix="/v1/refunds", status=503, times=4)
        stack.fault(method="POST", path_prefix="/v1/payment_intents", status=502, times=3)
    _in_background(_every, 2.0, 4, inject)
    return "500/502 on payment_intents, 503 on refunds, 4 bursts"


def stripe_429(stack: MatrixStack, seconds: float) -> str:
    def inject() -> None:
        for prefix in ("/v1/payment_intents", "/v1/refunds", "/v1/customers"):
            stack.fault(method="POST", path_prefix=prefix, status=429, times=5)
    _in_background(_every, 2.0, 4, inject)
    return "429 on payment_intents, refunds, customers, 4 bursts"


def stripe_timeouts(stack: MatrixStack, seconds: float) -> str:
    delay = STRIPE_TIMEOUT + 1.5

    def inject() -> None:
        stack.fault(method="POST", path_prefix="/v1/payment_intents", status=500,
                    delay_s=delay, times=4)
        stack.fault(method="POST", path_prefix="/v1/refunds", status=500, delay_s=delay,
                    times=3)
    _in_background(_every, 2.0, 3, inject)
    return f"delays of {delay:.1f} s (client timeout {STRIPE_TIMEOUT} s)"


def dropped_connections(stack: MatrixStack, seconds: float) -> str:
    def inject() -> None:
        stack.fault(method="POST", path_prefix="/v1/payment_intents", status=0, times=4)
        # The nastiest: Stripe acted, then the connection dropped before the answer.
        stack.fault(method="POST", path_prefix="/v1/payment_intents", status=0, after=True,
                    times=3)
        stack.fault(method="POST", path_prefix="/v1/refunds", status=0, after=True, times=3)

    def outage() -> None:
        # Once, a few seconds in which Stripe acts but no answer gets back: more lost
        # answers in a row than the gateway's retries (some customers walk away).
        time.sleep(4.0)
        stack.fault(method="POST", path_prefix="/v1/payment_intents", status=0, after=True,
                    times=9)
    _in_background(_every, 2.0, 4, inject)
    _in_background(outage)
    return "connections dropped before and after Stripe acted"


def redelivery(stack: MatrixStack, seconds: float) -> str:
    stack.register_webhook(duplicate=5, shuffle=True)
    return "every event delivered 5×, shuffled"


def redis_down(stack: MatrixStack, seconds: float) -> str:
    def outage() -> None:
        time.sleep(2.0)
        stack.redis.stop()
        time.sleep(5.0)
        stack.redis.start()
    _in_background(outage)
    return "Redis stopped for 5 s, restarted on the same port"


def kill_worker_mid_job(stack: MatrixStack, kills: int, gap: float) -> str:
    mid_job = 0
    with stack.app.app_context():
        for _ in range(kills):
            time.sleep(gap)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:  # wait for a job to be running, then kill
                if any(StartedJobRegistry(queue=get_queue(n)).count for n in QUEUE_NAMES):
                    mid_job += 1
                    break
                time.sleep(0.02)
            stack.worker.kill()
            time.sleep(0.5)
            stack.worker.ensure_running()
    return f"{kills} SIGKILLs ({mid_job} with a job running)"


def worker_killed(stack: MatrixStack, seconds: float) -> str:
    result: list[str] = []
    thread = threading.Thread(
        target=lambda: result.append(kill_worker_mid_job(stack, 4, 2.0)), daemon=True)
    thread.start()
    thread.join(timeout=seconds + 10)
    return result[0] if result else "kills did not finish"


def postgres_dropped(stack: MatrixStack, seconds: float) -> str:
    _in_background(_every, 2.5, 4, stack.terminate_db_connections)
    return "pg_terminate_backend on every connection, 4 times"


# In the order they run; the name is the row of the printed matrix.
FAULTS: list[tuple[str, Fault]] = [
    ("none (baseline)", no_fault),
    ("Stripe 5xx", stripe_5xx),
    ("Stripe 429", stripe_429),
    ("Stripe timeouts", stripe_timeouts),
    ("dropped connections", dropped_connections),
    ("webhooks 5× duplicated + shuffled", redelivery),
    ("Redis stopped/restarted", redis_down),
    ("worker SIGKILLed mid-job", worker_killed),
    ("PostgreSQL connections dropped", postgres_dropped),
]
