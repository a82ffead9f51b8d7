"""`make bench` skips a row whose route is missing ("n/a, not built yet"), so a renamed route
would silently drop a row: every route the benchmarks name must be one the app serves."""

from __future__ import annotations

import ast
from pathlib import Path

from flask import Flask

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _routes_named_by_bench() -> set[tuple[str, str]]:
    """(rule, method) of every `has_route(...)` call in bench/, read from the source."""
    named: set[tuple[str, str]] = set()
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "has_route"):
                rule, *rest = [arg.value for arg in node.args
                               if isinstance(arg, ast.Constant)]
                named.add((rule, rest[0] if rest else "GET"))
    return named


def test_every_route_the_benchmarks_check_for_exists(app: Flask) -> None:
    named = _routes_named_by_bench()
    # The rows of checkout, webhooks, history (API and page), receipts and the overview.
    assert {("/api/payments/process", "POST"), ("/receipts/<number>.pdf", "GET"),
            ("/account/payments", "GET"), ("/admin/", "GET")} <= named
    served = {(rule.rule, method) for rule in app.url_map.iter_rules()
              for method in rule.methods or ()}
    assert sorted(named - served) == []
