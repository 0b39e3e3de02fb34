"""Browser tests: Debian's Chromium, driven by Playwright, against pytest-django's live server.

Every page a flow reaches goes through `checkpoint(step)` (or `visit(path, step)`), which

- fails the test if the page's stylesheets or scripts did not load, or Bootstrap is not applied
  (axe's colour-contrast rule means nothing on an unstyled page);
- fails the test if the browser refused anything under the Content-Security-Policy (an inline
  script or style, a foreign source), at the checkpoint and, for any later page, at the test's end;
- runs axe-core with the WCAG 2.0/2.1 level A and AA rules and fails the test listing every
  violation;
- saves a full-page screenshot to var/screenshots/<test>-<nn>-<step>.png (var/ is git-ignored).

The live server shares the test database, so these tests need `transactional_db` (rows are
committed, then the tables are flushed after each test).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, sync_playwright

from tests.conftest import sign_in

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"

# WCAG 2.0 and 2.1, levels A and AA: what EU EN 301 549 and US Section 508 refer to.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_axe = Axe()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module (a launch costs ~0.6 s).

    Playwright's sync API marks its asyncio loop as running on this thread for as long as it is
    started, which makes Django refuse every ORM call ("cannot call this from an async context"),
    including the flush after each live-server test. These tests are plain synchronous code, so
    the guard is lifted while the browser runs, and only then: module scope stops Playwright
    before the next module, so the rest of the suite runs with the guard and with no loop marked
    running (which would also break `async_to_sync`).
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class _Failures:
    """Sub-resources (CSS, JS, fonts, images) of our own pages that did not load."""

    origin: str
    items: list[str] = field(default_factory=list)
    # What Chromium refused under the Content-Security-Policy (it says so on the console).
    csp_violations: list[str] = field(default_factory=list)

    def on_response(self, response: Response) -> None:
        request = response.request
        if request.resource_type != "document" and response.url.startswith(self.origin):
            if response.status >= 400:
                self.items.append(f"{response.status} {response.url}")

    def on_request_failed(self, request: Request) -> None:
        if request.resource_type != "document" and request.url.startswith(self.origin):
            self.items.append(f"{request.failure} {request.url}")

    def on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(f"{message.location.get('url', '')}: {message.text}")


@pytest.fixture
def asset_failures(live_server) -> _Failures:
    return _Failures(origin=live_server.url)


@pytest.fixture
def page(browser: Browser, live_server, transactional_db, asset_failures) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test, with the live server as base URL."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("response", asset_failures.on_response)
    page.on("requestfailed", asset_failures.on_request_failed)
    page.on("console", asset_failures.on_console)
    yield page
    context.close()
    assert_no_csp_violations(asset_failures)


def assert_accessible(page: Page, step: str = "") -> None:
    """Fail with every WCAG 2.x A/AA violation axe-core finds on the current page."""
    violations = _axe.run(page, options=AXE_OPTIONS).response["violations"]
    if not violations:
        return
    lines = [f"{len(violations)} accessibility violation(s) on {page.url} ({step or 'page'}):"]
    for violation in violations:
        lines.append(
            f"- {violation['id']} [{violation['impact']}]: {violation['help']} ({violation['helpUrl']})"
        )
        for node in violation["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            lines.append(f"    at {target}: {node['html'][:200]}")
            summary = node.get("failureSummary")
            if summary:
                lines.extend(f"      {line}" for line in summary.splitlines())
    pytest.fail("\n".join(lines), pytrace=False)


def assert_styled(page: Page, failures: list[str]) -> None:
    """The page's own CSS and JS loaded, and Bootstrap's stylesheet is applied."""
    assert not failures, f"assets failed to load on {page.url}: {failures}"
    primary = page.evaluate(
        "getComputedStyle(document.documentElement).getPropertyValue('--bs-primary').trim()"
    )
    assert primary, f"Bootstrap's CSS is not applied on {page.url}"


def assert_no_csp_violations(failures: _Failures) -> None:
    assert not failures.csp_violations, "Content-Security-Policy violations:\n" + "\n".join(
        failures.csp_violations
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


@pytest.fixture
def checkpoint(page: Page, asset_failures: _Failures, request) -> Callable[[str], None]:
    """`checkpoint(step)`: the page now shown is styled, accessible, and screenshotted."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test_name = _slug(request.node.name)
    for old in SCREENSHOTS.glob(f"{test_name}-*.png"):
        old.unlink()
    count = 0

    def check(step: str) -> None:
        nonlocal count
        page.wait_for_load_state("load")
        count += 1
        # Screenshot first, so a failing page can still be looked at.
        page.screenshot(path=SCREENSHOTS / f"{test_name}-{count:02d}-{_slug(step)}.png", full_page=True)
        assert_styled(page, asset_failures.items)
        assert_no_csp_violations(asset_failures)
        assert_accessible(page, step)

    return check


@pytest.fixture
def visit(page: Page, checkpoint) -> Callable[..., Response | None]:
    """`visit(path, step)`: open a page of the live server and check it (see `checkpoint`)."""

    def go(path: str, step: str | None = None) -> Response | None:
        response = page.goto(path)
        checkpoint(step or path.strip("/").replace("/", "-") or "home")
        return response

    return go


@pytest.fixture
def signed_in_page(page: Page, live_server) -> Callable[..., Page]:
    """`signed_in_page(user)`: the page, signed in as `user` with both factors passed.

    Skips the sign-in pages (a session made by Django's test client, with the TOTP device marked
    verified, handed to the browser as its session cookie), for flows that are not about signing in.
    """

    def sign_in_browser(user) -> Page:
        client = sign_in(Client(), user)
        page.context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                    "url": live_server.url,
                    "httpOnly": True,
                    "sameSite": "Lax",
                }
            ]
        )
        return page

    return sign_in_browser
