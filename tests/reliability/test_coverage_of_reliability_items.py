"""Every numbered item of the reliability list (1–27) has a test that names it.

A test names an item as "RELIABILITY <n>" in its name or docstring; a list such as
"RELIABILITY 5, 11" names each number. This file itself does not count.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ITEMS = range(1, 28)
MENTION = re.compile(r"RELIABILITY[ _]((?:\d+)(?:\s*(?:,|and|&)\s*\d+)*)(?!\d)")


def mentioned_items(text: str) -> set[int]:
    found: set[int] = set()
    for match in MENTION.finditer(text):
        found.update(int(n) for n in re.findall(r"\d+", match.group(1)))
    return found


def test_mentions_are_parsed_exactly():
    assert mentioned_items("RELIABILITY 1: x") == {1}
    assert mentioned_items("RELIABILITY 12 and RELIABILITY 2") == {12, 2}
    assert mentioned_items("RELIABILITY 5, 11 and 25") == {5, 11, 25}
    assert mentioned_items("def test_RELIABILITY_7_handler") == {7}
    assert mentioned_items("reliability 3") == set()


def test_every_reliability_item_has_a_test():
    covered: dict[int, list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        for item in mentioned_items(path.read_text(encoding="utf-8")):
            covered.setdefault(item, []).append(str(path.relative_to(TESTS)))
    missing = [n for n in ITEMS if n not in covered]
    assert not missing, f"no test names RELIABILITY {missing}"
