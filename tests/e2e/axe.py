"""axe-core in the browser tests: `assert_no_axe_violations(page)` fails with a readable list.

The engine is the vendored `vendor/axe.min.js` (see `vendor/README.md`). It is put into the
page through Playwright's evaluate, which the site's Content-Security-Policy does not apply
to, so testing a page never trips the CSP checks of `conftest.page`. Every rule axe enables
by default runs (WCAG 2.x A and AA, and its best practices).

    from tests.e2e.axe import assert_no_axe_violations

    page.goto(f"{base}/account/payments")
    assert_no_axe_violations(page)                      # the whole page
    assert_no_axe_violations(page, include="#payment-form", label="declined card")
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

AXE_SCRIPT = Path(__file__).resolve().parent / "vendor" / "axe.min.js"


@cache
def _axe_source() -> str:
    return AXE_SCRIPT.read_text(encoding="utf-8")


def _inject(frame: Any) -> None:
    if not frame.evaluate("() => typeof window.axe === 'object'"):
        frame.evaluate(_axe_source())


def axe_violations(page: Any, *, include: str | None = None,
                   disable_rules: tuple[str, ...] = (), frames: bool = False
                   ) -> list[dict[str, Any]]:
    """axe's violations on `page` (or inside the `include` selector), as plain dicts.

    `frames=True` also checks inside the page's iframes (Stripe's card fields, the 3-D Secure
    dialog): axe is put into each of them as well. By default only the site's own document
    is checked; the <iframe> elements themselves are (they need a title).
    """
    targets = [f for f in page.frames if not f.is_detached()] if frames else [page.main_frame]
    for frame in targets:
        _inject(frame)
    options = {"iframes": frames, "resultTypes": ["violations"],
               "rules": {rule: {"enabled": False} for rule in disable_rules}}
    result = page.evaluate(
        """async ([include, options]) => {
             const context = include ? {include: [include]} : document;
             const results = await axe.run(context, options);
             return results.violations.map(v => ({
               id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
               nodes: v.nodes.map(n => ({target: n.target, html: n.html,
                                         summary: n.failureSummary}))}));
           }""",
        [include, options])
    return list(result)


def format_violations(violations: list[dict[str, Any]]) -> str:
    """One paragraph per rule: its id, impact and help text, then each offending element."""
    lines: list[str] = []
    for violation in violations:
        lines.append(f"[{violation['impact']}] {violation['id']}: {violation['help']} "
                     f"({violation['helpUrl']})")
        for node in violation["nodes"]:
            target = " >> ".join(str(t) for t in node["target"])
            lines.append(f"    at {target}")
            lines.append(f"       {node['html'][:300]}")
            for reason in (node.get("summary") or "").splitlines():
                if reason.strip():
                    lines.append(f"       {reason.strip()}")
    return "\n".join(lines)


def assert_no_axe_violations(page: Any, *, include: str | None = None,
                             disable_rules: tuple[str, ...] = (), frames: bool = False,
                             label: str | None = None) -> None:
    """Fail the test, listing every violation readably, unless axe finds none."""
    violations = axe_violations(page, include=include, disable_rules=disable_rules,
                                frames=frames)
    if violations:
        where = f"{label} ({page.url})" if label else page.url
        count = sum(len(v["nodes"]) for v in violations)
        raise AssertionError(f"axe found {len(violations)} kind(s) of accessibility "
                             f"violation, on {count} element(s), at {where}:\n"
                             + format_violations(violations))
