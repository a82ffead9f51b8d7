"""Every numbered item of RELIABILITY.md (1–33, as ITEMS lists them) has a collected test
that names it.

A test names an item as "RELIABILITY <n>" in its own function name or docstring; a list such
as "RELIABILITY 5, 11" names each number. Module docstrings, comments, helpers and scripts
(the fault matrix) do not count: only what pytest collects as a test, found by running
pytest's own collection over the suite. Every item needs a test that `make test` runs (not
marked slow); the items in ONLY_IN_SLOW_TESTS need a slow one instead, with the reason.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from payments_site.devtools.stack import ROOT

TESTS = Path(__file__).resolve().parents[1]
ITEMS = list(range(1, 34))
MENTION = re.compile(r"RELIABILITY[ _]((?:\d+)(?:\s*(?:,|and|&)\s*\d+)*)(?!\d)")
# Items no test of `make test` can cover, with why. Empty: each has one.
ONLY_IN_SLOW_TESTS: dict[int, str] = {}


def mentioned_items(text: str) -> set[int]:
    found: set[int] = set()
    for match in MENTION.finditer(text):
        found.update(int(n) for n in re.findall(r"\d+", match.group(1)))
    return found


class CollectedTests:
    """A pytest plugin: records each collected test's name, docstring and slow marker."""

    def __init__(self) -> None:
        self.tests: list[dict[str, Any]] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            function = getattr(item, "function", None)
            self.tests.append({
                "nodeid": item.nodeid,
                "name": getattr(item, "originalname", item.name),
                "doc": (inspect.getdoc(function) or "") if function is not None else "",
                "slow": item.get_closest_marker("slow") is not None})


def collect_and_write(path: str, output: str) -> int:
    """Collect the tests under `path` (no test runs) and write what they name to `output`."""
    collector = CollectedTests()
    code = pytest.main([path, "--collect-only", "-q", "-p", "no:cacheprovider"],
                       plugins=[collector])
    Path(output).write_text(json.dumps(collector.tests), encoding="utf-8")
    return int(code)


def collected_tests(path: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """What pytest collects under `path`, collected in a process of its own."""
    output = tmp_path / "collected.json"
    result = subprocess.run(
        [sys.executable, "-c",
         "import sys\n"
         "from tests.reliability.test_coverage_of_reliability_items import collect_and_write\n"
         "sys.exit(collect_and_write(sys.argv[1], sys.argv[2]))",
         str(path), str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return list(json.loads(output.read_text(encoding="utf-8")))


def items_named(tests: list[dict[str, Any]], *, slow: bool) -> dict[int, list[str]]:
    named: dict[int, list[str]] = {}
    for test in tests:
        if test["slow"] is slow:
            for item in mentioned_items(test["name"] + "\n" + test["doc"]):
                named.setdefault(item, []).append(test["nodeid"])
    return named


def test_mentions_are_parsed_exactly():
    assert mentioned_items("RELIABILITY 1: x") == {1}
    assert mentioned_items("RELIABILITY 12 and RELIABILITY 2") == {12, 2}
    assert mentioned_items("RELIABILITY 5, 11 and 25") == {5, 11, 25}
    assert mentioned_items("test_RELIABILITY_7_handler") == {7}
    assert mentioned_items("reliability 3") == set()


def test_only_collected_test_functions_count(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "helpers.py").write_text('"""RELIABILITY 1: a helper module."""\n')
    (suite / "test_sample.py").write_text(textwrap.dedent('''
        """RELIABILITY 2: a module docstring is not a test."""
        import pytest

        # RELIABILITY 3: nor is a comment.

        def helper():
            """RELIABILITY 4: nor a helper."""

        def test_named_in_the_docstring():
            """RELIABILITY 5: a test."""

        def test_RELIABILITY_6_in_the_name():
            pass

        @pytest.mark.parametrize("n", [1, 2])
        def test_parametrized(n):
            """RELIABILITY 7, 8: parametrized."""

        class TestGrouped:
            def test_method(self):
                """RELIABILITY 9: in a class."""

        @pytest.mark.slow
        def test_slow():
            """RELIABILITY 10: only in the slow suite."""

        def not_a_test():
            """RELIABILITY 11"""
    '''))
    tests = collected_tests(suite, tmp_path)
    assert set(items_named(tests, slow=False)) == {5, 6, 7, 8, 9}
    assert set(items_named(tests, slow=True)) == {10}


def test_every_reliability_item_has_a_test(tmp_path):
    tests = collected_tests(TESTS, tmp_path)
    assert len(tests) > 100  # the whole suite was collected, not a corner of it
    fast = items_named(tests, slow=False)
    slow = items_named(tests, slow=True)
    missing = [n for n in ITEMS if n not in fast and n not in ONLY_IN_SLOW_TESTS]
    assert not missing, f"no test of `make test` names RELIABILITY {missing}"
    slow_missing = [n for n in ONLY_IN_SLOW_TESTS if n not in slow]
    assert not slow_missing, f"no slow test names RELIABILITY {slow_missing}"
    stale = [n for n in ONLY_IN_SLOW_TESTS if n in fast]
    assert not stale, f"RELIABILITY {stale} now has a `make test` test: drop it from the list"
