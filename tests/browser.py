"""Browser-test harness shared by tests/e2e and tests/emulator: Playwright driving Chromium.

The conftest.py of each folder that has browser tests imports the fixtures below, so there is
one harness and no copy of it.

Fixtures
- ``browser`` (session): one headless Chromium from ``/usr/bin/chromium``
  (``CHROMIUM_PATH`` overrides). ``playwright install`` cannot download here, so the
  system browser is used; Playwright's ``launch()`` gives it a fresh temporary profile
  (user-data-dir) every run.
- ``page`` (function): a new browser context and page per test. It records
  ``page.console_errors`` (console ``error`` messages and uncaught exceptions, as text)
  and ``page.csp_violations`` (every ``securitypolicyviolation`` event, from any frame,
  as dicts with ``blockedURI``, ``violatedDirective``, ``effectiveDirective``,
  ``sourceFile``, ``lineNumber``, ``sample``, ``documentURI``). The same lists are the
  ``console_errors`` and ``csp_violations`` fixtures. Any CSP violation fails the test at
  teardown unless it is marked ``@pytest.mark.allow_csp_violations``.
- ``open_page`` (function): ``open_page(**context_options)`` opens a page like ``page`` in a
  context of its own (``viewport``, ``timezone_id``, ``locale``…); any number per test.
- ``screenshot(page, name)`` (a plain function, import it from here): saves
  ``<TEST_OUTPUT_DIR or test-results>/screenshots/<name>.png`` and returns the path.
- ``HostSite(routes)`` (a plain class): a tiny web server on 127.0.0.1 that serves fixed
  pages on an origin of its own (as a shop's pages are on another origin than Stripe's) and
  records every request it gets.

Mark browser tests ``@pytest.mark.browser``. Without Chromium these tests fail with a
clear message; set ``SKIP_BROWSER_TESTS=1`` to skip them instead.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_TIMEOUT_MS = 15_000

# Runs in every frame of every page before the page's own scripts, and reports each
# CSP violation to Python through the exposed binding (so none are lost on navigation).
CSP_LISTENER = """
(() => {
  if (window.__cspListenerInstalled) return;
  window.__cspListenerInstalled = true;
  document.addEventListener('securitypolicyviolation', (e) => {
    const report = {
      blockedURI: e.blockedURI, violatedDirective: e.violatedDirective,
      effectiveDirective: e.effectiveDirective, sourceFile: e.sourceFile,
      lineNumber: e.lineNumber, sample: e.sample, documentURI: e.documentURI,
      disposition: e.disposition,
    };
    try { window.__reportCspViolation(report); } catch (err) { /* binding not ready */ }
  }, true);
})();
"""


def output_dir() -> Path:
    """Where test artefacts go: ``$TEST_OUTPUT_DIR`` or ``<repo>/test-results``."""
    return Path(os.environ.get("TEST_OUTPUT_DIR", ROOT / "test-results"))


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of ``page`` as ``screenshots/<name>.png`` under the output dir."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "screenshot"
    path = output_dir() / "screenshots" / f"{safe}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path


# What a HostSite route answers: (body, content type), or a function of the site's own URL
# returning that (for pages that name their own origin).
Route = tuple[str, str] | Callable[[], tuple[str, str]]


class HostSite:
    """A static web server on 127.0.0.1 (its own origin) for hand-written test pages.

    ``routes`` maps a path (without query) to ``(body, content_type)`` or to a function
    returning that. Unknown paths answer 404, every POST answers 400 (test pages never post),
    ``/favicon.ico`` answers 204. ``requests`` lists ``"GET /path?query"`` and
    ``"POST /path <body>"`` for everything received, so a test can check what reached the site.
    """

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = dict(routes)
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: str, content_type: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                site.requests.append(f"GET {self.path}")
                route = site.routes.get(urlparse(self.path).path)
                if route is not None:
                    body, content_type = route() if callable(route) else route
                    self._send(200, body, content_type)
                elif urlparse(self.path).path == "/favicon.ico":
                    self._send(204, "", "image/x-icon")
                else:
                    self._send(404, "not found", "text/plain")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace")
                site.requests.append(f"POST {self.path} {body}")
                self._send(400, "the test page never posts", "text/plain")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _browsers_skipped() -> bool:
    return os.environ.get("SKIP_BROWSER_TESTS", "") == "1"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if _browsers_skipped():
        pytest.skip("SKIP_BROWSER_TESTS=1: browser tests skipped")
    if not Path(CHROMIUM_PATH).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM_PATH}. Install it with "
            "`apt-get install -y chromium` (or set CHROMIUM_PATH), "
            "or set SKIP_BROWSER_TESTS=1 to skip the browser tests.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _open_page(browser: Any, contexts: list[Any], **context_options: Any) -> Any:
    """A page in a new context that records console errors and CSP violations."""
    options = {"viewport": {"width": 1000, "height": 800}, "locale": "en-US", **context_options}
    context = browser.new_context(**options)
    contexts.append(context)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    csp_violations: list[dict[str, Any]] = []
    console_errors: list[str] = []

    def report_csp(_source: Any, report: dict[str, Any]) -> None:
        csp_violations.append(report)

    context.expose_binding("__reportCspViolation", report_csp)
    context.add_init_script(CSP_LISTENER)

    new_page = context.new_page()
    new_page.on(
        "console",
        lambda msg: (
            console_errors.append(f"{msg.text} ({msg.location.get('url', '')})")
            if msg.type == "error"
            else None
        ),
    )
    new_page.on("pageerror", lambda exc: console_errors.append(f"uncaught: {exc}"))
    new_page.csp_violations = csp_violations
    new_page.console_errors = console_errors
    return new_page


def _fail_on_csp_violations(pages: list[Any], request: Any) -> None:
    violations = [v for p in pages for v in p.csp_violations]
    if violations and request.node.get_closest_marker("allow_csp_violations") is None:
        pytest.fail("the page broke its Content-Security-Policy: " + "; ".join(
            f"{v.get('effectiveDirective')} blocked {v.get('blockedURI')!r} "
            f"({v.get('sourceFile') or v.get('documentURI')}:{v.get('lineNumber')})"
            for v in violations), pytrace=False)


@pytest.fixture
def page(browser: Any, request: Any) -> Iterator[Any]:
    """A fresh page; at teardown any CSP violation fails the test (RELIABILITY 22), unless
    the test is marked ``allow_csp_violations``."""
    contexts: list[Any] = []
    new_page = _open_page(browser, contexts)
    try:
        yield new_page
    finally:
        for context in contexts:
            context.close()
    _fail_on_csp_violations([new_page], request)


@pytest.fixture
def open_page(browser: Any, request: Any) -> Iterator[Any]:
    """``open_page(**context_options)``: a page in a browser context of its own, e.g.
    ``open_page(viewport={"width": 390, "height": 844}, timezone_id="America/New_York")``.
    Each records console errors and CSP violations like ``page``; at teardown any CSP
    violation fails the test."""
    contexts: list[Any] = []
    pages: list[Any] = []

    def open_one(**context_options: Any) -> Any:
        pages.append(_open_page(browser, contexts, **context_options))
        return pages[-1]

    try:
        yield open_one
    finally:
        for context in contexts:
            context.close()
    _fail_on_csp_violations(pages, request)


@pytest.fixture(scope="session", autouse=True)
def delete_output_dir() -> None:
    """Neutralise pytest-playwright's fixture of this name (if that plugin is installed):
    it would wipe ./test-results, including other tests' logs, at session start."""


@pytest.fixture
def csp_violations(page: Any) -> list[dict[str, Any]]:
    return page.csp_violations  # type: ignore[no-any-return]


@pytest.fixture
def console_errors(page: Any) -> list[str]:
    return page.console_errors  # type: ignore[no-any-return]
