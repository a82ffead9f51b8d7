"""The layers of DESIGN.md hold: a request flows down and nothing reaches back up.

blueprints → services → (stripe_gateway, db, jobs, models); tasks → services; only the gateway
imports `stripe`; services queue work through `jobs` by dotted path and never import `tasks`;
imports sit at the top of modules (an import inside a function carries a `# lazy import:`
comment saying why); transactions begin and end through `db`, which alone knows SQL dialects.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from payments_site import jobs

PACKAGE = Path(__file__).resolve().parents[2] / "payments_site"
GATEWAY = PACKAGE / "stripe_gateway.py"
LAZY_IMPORT_REASON = "# lazy import:"


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included); for
    `from package import name`, `package.name` too (it may be a module)."""
    modules: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def importers_of(prefix: str, files: list[Path]) -> list[str]:
    """The files (by name inside the package) that import `prefix` or a submodule of it."""
    return sorted(_name(path) for path in files
                  if any(m == prefix or m.startswith(prefix + ".")
                         for m in imported_modules(path)))


def app_imports(path: Path) -> set[str]:
    """The modules of the app (`payments_site.…`) a file imports."""
    return {m for m in imported_modules(path) if m.startswith("payments_site.")}


def imports_inside_functions(path: Path) -> list[str]:
    """`file:line module` for each import in a function body without a `# lazy import:`
    comment on its line or in the comment lines right above it."""
    lines = path.read_text().splitlines()
    found = []
    for function in ast.walk(_tree(path)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import | ast.ImportFrom) and \
                    not _has_reason(lines, node.lineno):
                module = node.module if isinstance(node, ast.ImportFrom) else \
                    node.names[0].name
                found.append(f"{_name(path)}:{node.lineno} {module}")
    return sorted(set(found))


def _has_reason(lines: list[str], lineno: int) -> bool:
    """The reason is on the import's line, or in the comment above its block of imports."""
    if LAZY_IMPORT_REASON in lines[lineno - 1]:
        return True
    above = lineno - 2
    while above >= 0 and lines[above].strip().startswith(("#", "import ", "from ")):
        if lines[above].strip().startswith(LAZY_IMPORT_REASON):
            return True
        above -= 1
    return False


def calls_of(path: Path, *methods: str) -> list[str]:
    """`file:line .method()` for each call of one of these methods."""
    return sorted(f"{_name(path)}:{node.lineno} .{node.func.attr}()"
                  for node in ast.walk(_tree(path))
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in methods)


def mentions_of_dialect(path: Path) -> list[str]:
    """`file:line` for each `….dialect` read and each import of `sqlalchemy.dialects`."""
    found = [f"{_name(path)}:{node.lineno}" for node in ast.walk(_tree(path))
             if isinstance(node, ast.Attribute) and node.attr == "dialect"]
    found += [f"{_name(path)} imports {m}" for m in imported_modules(path)
              if m.startswith("sqlalchemy.dialects")]
    return sorted(found)


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE)) if path.is_relative_to(PACKAGE) else path.name


def app_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer(name: str) -> list[Path]:
    files = sorted((PACKAGE / name).rglob("*.py")) if (PACKAGE / name).is_dir() \
        else [PACKAGE / f"{name}.py"]
    assert files and all(path.exists() for path in files), name
    return files


# --- the scans can fail ----------------------------------------------------------------------

def test_the_scan_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from stripe.params import X\n    import stripe\n")
    assert importers_of("stripe", [sample]) != []
    sample.write_text("from payments_site import stripe_gateway\nimport stripe_like\n")
    assert imported_modules(sample) == {"payments_site", "payments_site.stripe_gateway",
                                        "stripe_like"}
    assert importers_of("stripe", [sample]) == []


def test_the_scan_finds_imports_in_functions_without_a_reason(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\n\ndef f():\n    import json\n\n\n"
                      "def g():\n    # lazy import: heavy, and only the worker needs it\n"
                      "    # (second line of the reason)\n    import csv\n    import io\n\n\n"
                      "def h():\n    # an unrelated comment\n    from x import y\n")
    assert imports_inside_functions(sample) == ["sample.py:17 x", "sample.py:5 json"]


def test_the_scan_finds_commits_and_dialect_branches(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from sqlalchemy.dialects.postgresql import insert\n\n\n"
                      "def f(db):\n    if db.session.get_bind().dialect.name == 'x':\n"
                      "        db.session.commit()\n    db.session.rollback()\n")
    assert calls_of(sample, "commit", "rollback") == ["sample.py:6 .commit()",
                                                      "sample.py:7 .rollback()"]
    assert mentions_of_dialect(sample) == [
        "sample.py imports sqlalchemy.dialects.postgresql",
        "sample.py imports sqlalchemy.dialects.postgresql.insert", "sample.py:5"]


# --- the layers ------------------------------------------------------------------------------

def test_only_the_gateway_imports_stripe():
    files = app_files()
    assert GATEWAY in files
    assert importers_of("stripe", files) == ["stripe_gateway.py"]


@pytest.mark.parametrize("lower", ["services", "tasks", "models", "db", "jobs", "queues",
                                   "stripe_gateway"])
def test_lower_layers_never_import_blueprints(lower):
    assert importers_of("payments_site.blueprints", layer(lower)) == []


def test_nothing_imports_the_tasks():
    """Work is queued by dotted path (payments_site.jobs): the tasks import the services,
    never the other way round."""
    outside = [path for path in app_files() if not path.is_relative_to(PACKAGE / "tasks")]
    assert importers_of("payments_site.tasks", outside) == []


def test_tasks_call_services_only():
    for path in layer("tasks"):
        assert {m for m in app_imports(path)
                if not m.startswith("payments_site.services")} == set(), _name(path)


def test_every_queued_task_exists():
    paths = [value for name, value in vars(jobs).items()
             if name.isupper() and isinstance(value, str) and value.startswith("payments_")]
    assert len(paths) == 5
    for dotted in paths:
        module, _, function = dotted.rpartition(".")
        assert callable(getattr(importlib.import_module(module), function, None)), dotted


@pytest.mark.parametrize(("module", "allowed"), [
    # The bottom layers reach nothing above them.
    ("stripe_gateway", {"payments_site.errors", "payments_site.metrics"}),
    ("models", {"payments_site.models"}),
    ("db", {"payments_site.extensions", "payments_site.models"}),
    ("jobs", {"payments_site.queues", "payments_site.metrics", "payments_site.tracing"}),
    # What every layer may record: counters and the trace; they reach nothing of the app.
    ("metrics", set()),
    ("tracing", set()),
])
def test_the_bottom_layers_import_only_what_is_below_them(module, allowed):
    for path in layer(module):
        assert {m for m in app_imports(path)
                if not any(m == a or m.startswith(a + ".") for a in allowed)} == set(), \
            _name(path)


def test_services_stay_off_the_web_edge():
    """Services take and return domain values: no serialisers, no HTTP schema, no requests,
    no URLs, no sessions, no forms or request models, no tasks."""
    edge = ("payments_site.serializers", "payments_site.openapi", "payments_site.tasks",
            "payments_site.cli", "payments_site.worker", "payments_site.security",
            "payments_site.templating", "flask.request", "flask.url_for", "flask.session",
            "flask.jsonify", "flask.make_response", "flask.g", "flask_login", "flask_wtf",
            "wtforms", "pydantic", "flask_openapi3")
    assert [f"{_name(path)}: {m}" for path in layer("services")
            for m in sorted(imported_modules(path)) if m.startswith(edge)] == []


def test_the_edge_scan_sees_a_request_in_a_service(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from flask import current_app, request, url_for\n"
                      "from pydantic import BaseModel\n")
    assert {m for m in imported_modules(sample)} >= {"flask.request", "flask.url_for",
                                                     "pydantic.BaseModel"}


def untyped_parameters(path: Path) -> list[str]:
    """`file:function(parameter)` for each parameter of a public function annotated as bare
    `object` or `Any` (raw request data), or not annotated at all."""
    found = []
    for node in ast.walk(_tree(path)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or \
                node.name.startswith("_"):
            continue
        arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        for argument in arguments:
            if argument.arg in ("self", "cls"):
                continue
            annotation = ast.unparse(argument.annotation) if argument.annotation else None
            if annotation in (None, "object", "Any"):
                found.append(f"{_name(path)}:{node.name}({argument.arg})")
    return found


def test_the_parameter_scan_sees_raw_values(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def pay(items: object, key: Any, card, n: int, _x: object = 1): ...\n"
                      "def _private(raw: object): ...\n")
    assert untyped_parameters(sample) == ["sample.py:pay(items)", "sample.py:pay(key)",
                                          "sample.py:pay(card)", "sample.py:pay(_x)"]


def test_services_take_typed_arguments():
    """Nothing raw from a request reaches a service: the blueprints parse it first."""
    assert [found for path in layer("services") for found in untyped_parameters(path)] == []


def test_services_parse_no_requests():
    """Request parsing and serialisation live in the blueprints (blueprints/parsing.py and
    blueprints/api/schemas.py): no service is named for them."""
    names = set(_function_names(layer("services")))
    assert {name for name in names
            if name.startswith(("parse_", "validate_key")) or name.endswith("_to_dict")} == set()


# What a view may not read from the request itself: blueprints/parsing.py does.
REQUEST_INPUTS = frozenset({"args", "form", "values", "json", "get_json", "data", "get_data",
                            "files", "headers", "cookies"})


def request_reads(path: Path) -> list[str]:
    """`file:line request.x` for each read of the request's input."""
    return sorted(f"{_name(path)}:{node.lineno} request.{node.attr}"
                  for node in ast.walk(_tree(path))
                  if isinstance(node, ast.Attribute) and node.attr in REQUEST_INPUTS
                  and isinstance(node.value, ast.Name) and node.value.id == "request")


def test_the_request_scan_sees_reads(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    return request.args.get('x'), request.method\n")
    assert request_reads(sample) == ["sample.py:2 request.args"]


def test_one_parsing_module_reads_requests():
    """Every route reads its input through blueprints/parsing.py (the declared schemas)."""
    parsing = PACKAGE / "blueprints" / "parsing.py"
    assert [found for path in app_files() if path != parsing
            for found in request_reads(path)] == []


def test_each_blueprint_package_checks_admins_once():
    """One admin check per package: the admin blueprint's before_request and the API's
    admin_required; no view checks the role itself."""
    checks = sorted(f"{_name(path)}:{node.lineno}" for path in layer("blueprints")
                    for node in ast.walk(_tree(path))
                    if isinstance(node, ast.Attribute) and node.attr == "is_admin")
    assert [c.split(":")[0] for c in checks] == ["blueprints/admin/blueprint.py",
                                                 "blueprints/api/blueprint.py"], checks


def test_no_imports_inside_functions_without_a_reason():
    assert [found for path in app_files() for found in imports_inside_functions(path)] == []


def test_services_load_nothing_by_name():
    """Every service exists in every build: nothing is imported by a computed name."""
    assert importers_of("importlib", layer("services")) == []
    assert [f"{_name(path)}:{node.lineno}" for path in layer("services")
            for node in ast.walk(_tree(path))
            if isinstance(node, ast.Name) and node.id == "__import__"] == []


def test_services_begin_and_end_transactions_through_db():
    """`with unit_of_work():` or a named one-statement write of payments_site.db, never a bare
    commit or rollback hidden in a helper."""
    assert [found for path in layer("services")
            for found in calls_of(path, "commit", "rollback")] == []


def test_only_db_knows_sql_dialects():
    outside = [path for path in app_files()
               if path not in (PACKAGE / "db.py", PACKAGE / "models" / "pool.py")]
    assert [found for path in outside for found in mentions_of_dialect(path)] == []


def _function_names(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef):
                yield node.name


def test_services_hold_no_id_of_expanded_or_not_helpers():
    """The gateway hands over plain ids; no service re-parses Stripe data."""
    parsers = {"_id_of", "_field", "_stripe_id", "to_dict"}
    assert parsers & set(_function_names(layer("services"))) == set()
