"""`make mutation`: mutmut over the money modules, and a report of every mutant that survived.

Usage::

    python -m mutation.run [--modules refunds,idempotency] [--children 1] [--only GLOB ...]

mutmut works on a copy of the project in `mutation/work/` (its `mutants/` folder holds each
mutated module), runs the tests that cover each mutated function, and keeps its results
there: a second run of the same modules only redoes what changed (or the mutants named with
`--only`), while another selection of modules or tests makes mutmut forget every verdict.
The report goes to `mutation/results/<modules>.md`: the kill rate, and each survivor's diff,
to be explained (an equivalent mutant, or a rule the tests do not pin).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutation" / "work"
RESULTS = ROOT / "mutation" / "results"
COPIED = ("payments_site", "tests", "stripe_emulator", "migrations", "wsgi.py")

# Each money module, and the tests that state its rules.
MODULES: dict[str, tuple[str, list[str]]] = {
    "refunds": ("payments_site/services/refunds.py", [
        "tests/refunds/test_refund_guarantees.py", "tests/refunds/test_stripe_outcomes.py",
        "tests/refunds/test_api_refunds.py", "tests/refunds/test_concurrency.py"]),
    "idempotency": ("payments_site/services/idempotency.py", [
        "tests/payments/test_idempotency.py"]),
    "payments": ("payments_site/services/payments.py", [
        "tests/payments/test_stripe_answers.py", "tests/webhooks/test_ordering.py",
        "tests/payments/test_process.py", "tests/payments/test_payment_state.py",
        "tests/payments/test_unfinished_payments.py", "tests/payments/test_history.py",
        "tests/operations/test_metrics.py", "tests/reliability/test_unrecorded_stripe_calls.py"]),
    "checkout": ("payments_site/services/checkout.py", [
        "tests/payments/test_checkout_attempts.py", "tests/payments/test_faults.py",
        "tests/payments/test_stripe_answers.py", "tests/payments/test_process.py",
        "tests/payments/test_idempotency.py", "tests/reliability/test_checkout_guarantees.py",
        "tests/reliability/test_unrecorded_stripe_calls.py"]),
    "webhooks": ("payments_site/services/webhooks.py", [
        "tests/webhooks/test_receive.py", "tests/webhooks/test_failures.py",
        "tests/webhooks/test_duplicates.py", "tests/webhooks/test_unappliable.py",
        "tests/webhooks/test_admin.py", "tests/webhooks/test_cli.py",
        "tests/webhooks/test_card_events.py", "tests/operations/test_metrics.py"]),
    "receipts": ("payments_site/services/receipts.py", ["tests/receipts"]),
    "money": ("payments_site/money.py", [
        "tests/foundation/test_money.py", "tests/foundation/test_catalog.py", "tests/receipts",
        "tests/payments/test_three_decimal_currencies.py", "tests/refunds/test_admin_pages.py"]),
}


def _prepare(modules: list[str]) -> None:
    """A fresh copy of the sources and tests, with a mutmut configuration for `modules`."""
    WORK.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source, target = ROOT / name, WORK / name
        if target.is_dir():
            shutil.rmtree(target)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    tests = sorted({test for module in modules for test in MODULES[module][1]})
    mutate = [MODULES[module][0] for module in modules]
    for path in mutate:
        # A module a run before this one did not mutate was copied there unmutated, and
        # mutmut takes a copy newer than its source for done: without its results (`.meta`)
        # it is removed, so mutmut mutates it now.
        copied = WORK / "mutants" / path
        if copied.exists() and not copied.with_name(copied.name + ".meta").exists():
            copied.unlink()
    config = (ROOT / "pyproject.toml").read_text() + "\n[tool.mutmut]\n" + "\n".join([
        'source_paths = ["payments_site"]',
        f"only_mutate = {json.dumps(mutate)}",
        'also_copy = ["stripe_emulator", "migrations", "wsgi.py"]',
        # One test process per mutant, the browser and the long fault suite left out.
        'pytest_add_cli_args = ["-n", "0", "-p", "no:cacheprovider", "-m", '
        '"not browser and not slow", "-x", "-q"]',
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        "timeout_multiplier = 5.0",
        "timeout_constant = 30.0",
    ]) + "\n"
    (WORK / "pyproject.toml").write_text(config)


def _mutmut(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=WORK, text=True,
                          capture_output=True, check=False)


def _report(modules: list[str]) -> Path:
    listed = _mutmut("results", "--all", "true").stdout
    verdicts: dict[str, str] = {}
    for line in listed.splitlines():
        match = re.match(r"\s*([\w.]+__mutmut_\d+): (.+)$", line)
        if match:
            verdicts[match[1]] = match[2].strip()
    prefixes = tuple(MODULES[m][0].removesuffix(".py").replace("/", ".") + "."
                     for m in modules)
    verdicts = {name: verdict for name, verdict in verdicts.items()
                if name.startswith(prefixes)}
    not_run = sum(1 for v in verdicts.values() if v == "not checked")
    verdicts = {name: v for name, v in verdicts.items() if v != "not checked"}
    killed = sum(1 for v in verdicts.values() if v == "killed")
    survived = sorted(name for name, v in verdicts.items() if v == "survived")
    others = {v for v in verdicts.values() if v not in ("killed", "survived")}
    decided = killed + len(survived)
    rate = f"{100 * killed / decided:.1f} %" if decided else "n/a"
    lines = [f"# Mutation report: {', '.join(modules)}", "",
             f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make mutation` (mutmut).", "",
             f"- mutants: {len(verdicts)}; killed {killed}, survived {len(survived)}"
             + (f", other ({', '.join(sorted(others))}) "
                f"{len(verdicts) - decided}" if others else ""),
             f"- kill rate (killed / (killed + survived)): **{rate}**",
             f"- not run this time (`--only` left them out, or the run was stopped): {not_run}",
             "",
             "## Survivors", ""]
    for name in survived:
        diff = _mutmut("show", name).stdout.strip()
        lines += [f"### `{name}`", "", "```diff", diff, "```", ""]
    if not survived:
        lines.append("None.")
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = RESULTS / f"{'-'.join(modules)}.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", default=",".join(MODULES),
                        help=f"comma-separated, of: {', '.join(MODULES)}")
    parser.add_argument("--children", type=int, default=1, help="mutants run at once")
    parser.add_argument("--only", nargs="*", default=[],
                        help="mutant name globs, e.g. "
                             "'payments_site.services.refunds.x__transition*'")
    parser.add_argument("--report-only", action="store_true",
                        help="write the report from the last run without running")
    args = parser.parse_args()
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s): {', '.join(unknown)}")
    if not args.report_only:
        _prepare(modules)
        run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children",
                              str(args.children), *args.only], cwd=WORK, check=False)
        if run.returncode not in (0, 1):
            raise SystemExit(run.returncode)
    print(f"report: {_report(modules).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
