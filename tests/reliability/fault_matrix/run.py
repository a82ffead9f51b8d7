"""Running the matrix: each fault under load, then the runbook and the invariants; the
printed matrix and RELIABILITY.md's "Figures to report"."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from payments_site.extensions import db
from payments_site.models import OutboundEmail, Payment
from tests.reliability import fault_matrix
from tests.reliability.fault_matrix.faults import FAULTS, Fault
from tests.reliability.fault_matrix.invariants import Check, check_invariants
from tests.reliability.fault_matrix.load import Load, bootstrap, double_submits
from tests.reliability.fault_matrix.recovery import drain, quiet_webhooks, reconcile_and_sweep
from tests.reliability.fault_matrix.stack import MatrixStack


@dataclass
class Row:
    fault: str
    operations: int
    violations: int
    notes: str = ""
    check: Check | None = None
    deliveries: int = 0  # webhook deliveries during the phase


def print_fresh(check: Check, seen: set[str]) -> list[str]:
    """Print the violations not seen before (the checks cover every payment so far, so an
    earlier phase's violation shows up again), and remember them."""
    fresh = [line for line in check.violations if line not in seen]
    seen.update(check.violations)
    for line in fresh[:15]:
        print(f"   ! {line}", flush=True)
    return fresh


def phase(stack: MatrixStack, load: Load, name: str, seconds: float, inject: Fault,
          seen: set[str]) -> Row:
    """Load + one fault, then the runbook; the row counts violations first seen here."""
    print(f"-- {name} ...", flush=True)
    began = time.monotonic()
    since = datetime.now(UTC) - timedelta(seconds=5)
    load.start()
    try:
        notes = inject(stack, seconds)
        while time.monotonic() - began < seconds:
            time.sleep(0.25)
    finally:
        stats = load.stop()
    stack.clear_faults()
    stack.register_webhook()
    if stack.redis.proc is None or stack.redis.proc.poll() is not None:
        stack.redis.start()
    stack.worker.ensure_running()
    quiet_webhooks(stack)
    # The operator's runbook after an incident: reconcile from its start, sweep, drain.
    changed, swept = reconcile_and_sweep(stack, since)
    if not drain(stack):
        notes += "; the worker did not drain in time"
    check = check_invariants(stack)
    carried = len([line for line in check.violations if line in seen])
    if carried:
        notes += f"; {carried} violation(s) carried over"
    operations = sum(stats.operations.values())
    outcome_notes = ", ".join(f"{k} ×{v}" for k, v in sorted(stats.outcomes.items())
                              if not k.endswith((" 201", ":201", ":202")))
    print(f"   {operations} operations ({dict(stats.operations)}); reconcile fixed "
          f"{changed}, sweeper queued {swept}; new violations "
          f"{len(check.violations) - carried}; {time.monotonic() - began:.0f} s", flush=True)
    if outcome_notes:
        print(f"   outcomes: {outcome_notes[:600]}", flush=True)
    fresh = print_fresh(check, seen)
    return Row(name, operations, len(fresh), notes, check)


def sabotaged(stack: MatrixStack, seen: set[str]) -> Row:
    """Break the books on purpose (the checker must notice): a refunded total Stripe does not
    agree with, a lost receipt email, and a PaymentIntent no payment knows."""
    with stack.app.app_context():
        # A payment whose books are complete (its receipt emailed), so each break below is
        # exactly the one the checker must report, not one it already had.
        payment = db.session.query(Payment).filter(
            Payment.status == "succeeded",
            Payment.id.in_(db.session.query(OutboundEmail.payment_id).filter(
                OutboundEmail.status == "sent"))).order_by(Payment.id).first()
        assert payment is not None, "no succeeded payment with a sent receipt to sabotage"
        # (An over-refund itself is refused by a CHECK constraint; a drift is not.)
        payment.amount_refunded += 1 if payment.amount_refunded < payment.amount else -1
        db.session.query(OutboundEmail).filter(
            OutboundEmail.payment_id == payment.id).delete()
        db.session.commit()
        db.session.remove()
    stack.sdk.v1.payment_intents.create({"amount": 700, "currency": "usd"})
    check = check_invariants(stack)
    fresh = print_fresh(check, seen)
    return Row("sabotage (must be caught)", 0, len(fresh), "books broken on purpose", check)


def figures(stack: MatrixStack, rows: list[Row], pairs: int, most: int) -> dict[str, str]:
    """RELIABILITY.md's "Figures to report", from the last check and the whole run."""
    result = {"PaymentIntents per double-submit": f"{most} (max over {pairs} concurrent pairs)"}
    final = rows[-1].check if rows and rows[-1].check else Check()
    samples = [d for d, _ in stack.timed.samples]
    if samples:
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        failed = sum(1 for _, status in stack.timed.samples if status >= 500)
        result["webhook ack p50 / p99"] = (
            f"{statistics.median(samples) * 1000:.1f} ms / {p99 * 1000:.1f} ms over "
            f"{len(samples)} deliveries ({failed} answered 5xx)")
    redelivery = [r for r in rows if r.fault.startswith("webhooks")]
    if redelivery:
        row = redelivery[0]
        check = row.check or Check()
        result["duplicate effects under 5× shuffled redelivery"] = (
            f"{check.duplicate_effects} duplicate effects, {row.violations} new mismatches "
            f"with Stripe ({row.deliveries} deliveries; "
            f"{check.payments} payments in the database at that point)")
    result["over-refunds"] = str(final.over_refunds)
    result["inconsistent payments after reconciliation"] = str(final.inconsistent)
    if final.succeeded:
        result["receipts emailed"] = (
            f"{final.receipts_emailed}/{final.succeeded} succeeded payments = "
            f"{100 * final.receipts_emailed / final.succeeded:.1f}% (same Message-ID "
            f"re-sent after a kill: {final.same_message_repeats})")
    result["worker"] = f"{stack.worker.kills} SIGKILLs, {stack.worker.restarts} restarts"
    return result


def print_matrix(rows: list[Row], found: dict[str, str]) -> int:
    """The matrix and the figures; returns the number of distinct violations."""
    width = max(len(r.fault) for r in rows) if rows else 10
    print("\nFault matrix (after each fault: reconcile, sweeper, worker drained)")
    print(f"{'fault':<{width}}  {'operations':>10}  {'violations':>10}  notes")
    for row in rows:
        print(f"{row.fault:<{width}}  {row.operations:>10}  {row.violations:>10}  {row.notes}")
    print("\nFigures to report")
    for key, value in found.items():
        print(f"- {key}: {value}")
    return sum(r.violations for r in rows)


def run(seconds: float, threads: int, customers: int, only: str = "",
        sabotage: bool = False) -> int:
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="fault-matrix-"))
    print(f"fault matrix: starting the stack (artefacts in {workdir.name})", flush=True)
    stack = MatrixStack(workdir)
    rows: list[Row] = []
    try:
        shoppers, admin_token, products = bootstrap(stack, customers)
        load = Load(stack, shoppers, admin_token, products, threads)
        pairs, most = double_submits(stack, load, 12)
        seen: set[str] = set()
        for name, inject in FAULTS:
            if only and only.lower() not in name.lower():
                continue
            before = len(stack.timed.samples)
            row = phase(stack, load, name, seconds, inject, seen)
            row.deliveries = len(stack.timed.samples) - before
            rows.append(row)
        if sabotage:
            rows.append(sabotaged(stack, seen))
        found = figures(stack, rows, pairs, most)
    finally:
        stack.close()
    total = print_matrix(rows, found)
    print(f"\n{total} distinct violation(s); {time.monotonic() - began:.0f} s in all")
    return 1 if total else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(fault_matrix.__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="load per fault")
    parser.add_argument("--threads", type=int, default=3, help="client threads")
    parser.add_argument("--customers", type=int, default=6)
    parser.add_argument("--only", default="", help="run only the faults whose name has this")
    parser.add_argument("--sabotage", action="store_true",
                        help="corrupt the books at the end: the run must then fail")
    args = parser.parse_args(argv)
    return run(args.seconds, args.threads, args.customers, args.only, args.sabotage)
