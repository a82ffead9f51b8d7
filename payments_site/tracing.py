"""Which request a log line, a queued job or a Stripe call belongs to: one request id.

Every web request gets a request id (a valid `X-Request-ID` from a trusted load balancer, or
a new one), answered in the `X-Request-ID` header. It rides in the meta of every job the
request queues (`payments_site.jobs`), so the worker's lines for that job, and the jobs that
job queues in turn (a receipt's email), carry the same id: one grep follows a checkout from
the click to the receipt email. The user and payment a line is about ride along where known.

The trace lives in a context variable, set at the start of a request and reset at its end;
inside a job it is read from the running RQ job's meta, whichever worker class runs it.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace

from rq.job import get_current_job

REQUEST_ID_HEADER = "X-Request-ID"
# What a request id from outside may look like: a UUID, a load balancer's trace id
# (AWS `Root=1-…`, a W3C trace id), never spaces, line breaks or anything a log reader could
# mistake for another field.
_REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=-]{7,127}")
META_REQUEST_ID = "request_id"
META_PAYMENT_ID = "payment_id"


@dataclass(frozen=True)
class Trace:
    """What the current work is about (None where not known)."""

    request_id: str | None = None
    user_id: int | None = None
    payment_id: str | None = None
    # The RQ job this trace was read from (the object itself: a job id repeats when a job
    # is retried, and across test runs).
    job: object | None = None


_NOTHING = Trace()
_trace: ContextVar[Trace] = ContextVar("payments_site_trace", default=_NOTHING)


def new_request_id() -> str:
    return uuid.uuid4().hex


def valid_request_id(value: str | None) -> bool:
    """Whether an incoming id has the shape of one (8–128 safe characters)."""
    return bool(value) and _REQUEST_ID_SHAPE.fullmatch(value or "") is not None


def start_request(incoming: str | None, *, trusted: bool) -> tuple[str, Token[Trace]]:
    """Begin a request's trace: the incoming id when trusted and well formed, else a new one.
    Returns the id and the token `end_request` takes."""
    request_id = incoming if trusted and incoming and valid_request_id(incoming) \
        else new_request_id()
    return request_id, _trace.set(Trace(request_id=request_id))


def end_request(token: Token[Trace]) -> None:
    try:
        _trace.reset(token)
    except ValueError:  # reset from another context (a streamed answer): forget it instead
        _trace.set(_NOTHING)


def current() -> Trace:
    """The trace of the running request or job (an empty one outside both)."""
    trace = _trace.get()
    job = get_current_job()
    if job is None:
        if trace.job is not None:  # the job has ended
            _trace.set(_NOTHING)
            return _NOTHING
        return trace
    if trace.job is not job:
        meta = job.meta or {}
        request_id, payment_id = meta.get(META_REQUEST_ID), meta.get(META_PAYMENT_ID)
        trace = Trace(request_id=request_id if isinstance(request_id, str) else None,
                      payment_id=payment_id if isinstance(payment_id, str) else None,
                      job=job)
        _trace.set(trace)
    return trace


def current_request_id() -> str | None:
    return current().request_id


def bind_user(user_id: int) -> None:
    """The signed-in user of this request (for the log lines that follow)."""
    _trace.set(replace(current(), user_id=user_id))


def bind_payment(public_id: str) -> None:
    """The payment the current request or job is about (for the log lines that follow and
    the jobs it queues)."""
    _trace.set(replace(current(), payment_id=public_id))


def job_meta() -> dict[str, str]:
    """What a queued job carries of the current trace."""
    trace = current()
    meta = {}
    if trace.request_id:
        meta[META_REQUEST_ID] = trace.request_id
    if trace.payment_id:
        meta[META_PAYMENT_ID] = trace.payment_id
    return meta
