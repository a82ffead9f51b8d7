"""The layers of DESIGN.md hold: only the gateway imports `stripe`, nothing imports upwards."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "payments_site"
GATEWAY = PACKAGE / "stripe_gateway.py"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def importers_of(prefix: str, files: list[Path]) -> list[str]:
    """The files (by name inside the package) that import `prefix` or a submodule of it."""
    return sorted(str(path.relative_to(PACKAGE) if path.is_relative_to(PACKAGE) else path.name)
                  for path in files
                  if any(m == prefix or m.startswith(prefix + ".")
                         for m in imported_modules(path)))


def app_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_scan_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from stripe.params import X\n    import stripe\n")
    assert importers_of("stripe", [sample]) != []
    sample.write_text("from payments_site import stripe_gateway\nimport stripe_like\n")
    assert imported_modules(sample) == {"payments_site", "stripe_like"}
    assert importers_of("stripe", [sample]) == []


def test_only_the_gateway_imports_stripe():
    files = app_files()
    assert GATEWAY in files
    assert importers_of("stripe", files) == ["stripe_gateway.py"]


@pytest.mark.parametrize("lower", ["services", "tasks", "models"])
def test_lower_layers_never_import_blueprints(lower):
    files = sorted((PACKAGE / lower).rglob("*.py")) if (PACKAGE / lower).is_dir() \
        else [PACKAGE / f"{lower}.py"]
    assert files and all(path.exists() for path in files)
    assert importers_of("payments_site.blueprints", files) == []
