"""Every page, in a real browser: no console error, no CSP violation, and at 390 px wide no
page scrolls sideways (UX.md item 27); screenshots of the main pages on a phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import E2E_PASSWORD, E2EServer, login, screenshot

ROOT_USER = "root"

_ROOT_CODE = f"""
from accounts.models import Membership, Team, User
user = User.objects.filter(username={ROOT_USER!r}).first() or User.objects.create_superuser(
    {ROOT_USER!r}, "root@example.com", {E2E_PASSWORD!r})
Membership.objects.get_or_create(user=user, team=Team.objects.get(slug="demo"),
                                 defaults={{"role": "admin"}})
"""

# The pages a person reaches from the nav and the pages they link to.
PAGES = [
    "/",
    "/prompts/",
    "/prompts/new/",
    "/prompts/approvals/",
    "/prompts/demo/support-triage/",
    "/prompts/demo/support-triage/edit/",
    "/prompts/demo/support-triage/compare/",
    "/playground/",
    "/playground/batch/",
    "/playground/batch/new",
    "/playground/recommendations/",
    "/playground/shadow/",
    "/routing/",
    "/routing/catalog/",
    "/routing/prices/import/",
    "/usage/",
    "/usage/what-if/",
    "/accounts/",
    "/accounts/teams/demo/",
    "/accounts/teams/demo/budgets/",
    "/api/docs/",
    "/no-such-page/",
]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def root(e2e_server: E2EServer) -> str:
    e2e_server.shell(_ROOT_CODE)
    return ROOT_USER


class Problems:
    """Console errors, uncaught exceptions and CSP violations a page reports."""

    def __init__(self, page: Page) -> None:
        self.found: list[str] = []
        self.page = page
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.found.append(f"exception: {exc}"))
        # Reported to the page as events, whether or not the browser also logs them.
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', (e) => "
            "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
        )

    def _console(self, msg) -> None:
        # A page's own error status (the 404 page) is logged too: that one is intended.
        if msg.type == "error" and msg.location.get("url") != self.page.url:
            self.found.append(f"console: {msg.text}")

    def take(self) -> list[str]:
        found, self.found = self.found, []
        return found


def _open(browser, browser_context_args: dict, username: str, **context: object) -> Page:
    ctx = browser.new_context(**{**browser_context_args, **context})
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    login(page, username)
    return page


def _visit(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")


def test_no_page_logs_a_console_error_or_a_csp_violation(browser, browser_context_args, root):
    page = _open(browser, browser_context_args, root)
    problems = Problems(page)
    report: dict[str, list[str]] = {}
    for path in PAGES:
        _visit(page, path)
        found = problems.take()
        if found:
            report[path] = found
    page.context.close()
    assert report == {}, "\n".join(
        f"{path}: {line}" for path, lines in report.items() for line in lines
    )


def test_a_click_on_a_usage_row_sends_one_request(browser, browser_context_args, root):
    page = _open(browser, browser_context_args, root)
    problems = Problems(page)
    _visit(page, "/usage/")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/usage/?" in r.url else None)
    page.locator("[data-testid=teams-table] tbody tr").first.locator("td").nth(1).click()
    page.wait_for_url(re.compile(r"team=demo"))
    page.wait_for_load_state("networkidle")
    assert len(requests) == 1, requests
    assert problems.take() == []
    page.context.close()


def _scroll_width(page: Page) -> int:
    return page.evaluate("document.scrollingElement.scrollWidth")


def test_no_page_scrolls_sideways_at_390_px(browser, browser_context_args, root):
    page = _open(browser, browser_context_args, root, viewport=PHONE)
    wide = {}
    for path in PAGES:
        _visit(page, path)
        width = _scroll_width(page)
        if width > PHONE["width"]:
            wide[path] = width
    assert wide == {}
    page.context.close()


def test_the_nav_collapses_into_a_menu_on_a_phone(browser, browser_context_args, root):
    page = _open(browser, browser_context_args, root, viewport=PHONE)
    _visit(page, "/usage/")
    nav_link = page.get_by_role("link", name="Prompts", exact=True)
    assert not nav_link.is_visible()
    page.get_by_role("button", name="Menu").click()
    nav_link.click()
    page.wait_for_url("**/prompts/")
    page.context.close()


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/usage/", "phone-usage"),
        ("/playground/", "phone-playground"),
        ("/prompts/demo/support-triage/edit/", "phone-editor"),
    ],
)
def test_phone_screenshots(browser, browser_context_args, root, path, name):
    page = _open(browser, browser_context_args, root, viewport=PHONE)
    _visit(page, path)
    assert _scroll_width(page) <= PHONE["width"]
    screenshot(page, name, full_page=True)
    page.context.close()
