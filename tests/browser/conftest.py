"""Browser tests of the duty-officer console: headless Chromium against real nodes and gateways.

The federation (tests/support/agencies.py: gw-eu, gw-af and four agency nodes on 127.0.0.1,
one FakeClock) and Playwright's async API share the test's event loop, so a test can drive a
page, then ``await fed.settle()`` to forward messages, then wait for the page to show them.

Chromium is Debian's ``/usr/bin/chromium``; Playwright never downloads a browser. Without it the
browser tests skip with the reason. Screenshots for docs/screenshots/ are written only when
``HELIOGRAPH_SCREENSHOTS=1``, so a normal run leaves the tree clean.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.agencies import PASSWORD, Agencies

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1440, "height": 900}

try:
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Error, Page, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if async_playwright is None:
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium); Playwright must not download browsers")
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Console:
    """One officer's console in its own browser context (own cookies), with every console message kept."""

    context: BrowserContext
    page: Page
    node: str
    base: str
    messages: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect_error(self, status: int, path: str) -> None:
        """Allow the network error Chromium logs for a request the test makes fail on purpose."""
        self.expected.append(re.compile(rf"status of {status} .*{re.escape(path)}"))

    def unexpected(self) -> list[str]:
        return [m for m in self.messages if not any(p.search(m) for p in self.expected)]

    async def goto(self, fragment: str = "") -> None:
        await self.page.goto(self.base + "/" + fragment)

    async def storage_is_empty(self) -> bool:
        used = await self.page.evaluate(
            """async () => {
                const dbs = indexedDB.databases ? await indexedDB.databases() : [];
                return localStorage.length + sessionStorage.length + dbs.length;
            }"""
        )
        return used == 0


async def open_console(browser: Browser, fed: Agencies, node: str, role: str = "officer", *, fragment: str = "") -> Console:
    """A new context logged in as ``<role>-<node>`` through the login form."""
    context = await browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="Europe/Paris")
    page = await context.new_page()
    console = Console(context=context, page=page, node=node, base=fed.url(node))
    # Before login the console asks "who am I?"; the 401 is how it learns nobody is signed in.
    console.expect_error(401, "/v1/session")

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning"):
            console.messages.append(f"{msg.type}: {msg.text} @ {msg.location.get('url', '')}")

    def on_error(err: Error) -> None:
        console.messages.append(f"pageerror: {err}")

    page.on("console", on_console)
    page.on("pageerror", on_error)
    await console.goto(fragment)
    await page.get_by_label("Username").fill(f"{role}-{node}")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#who").filter(has_text=f"{role}-{node}").wait_for()
    await page.locator("#live-status[data-status='live']").wait_for()
    return console


@pytest.fixture
async def consoles(browser: Browser, fed: Agencies) -> AsyncIterator[Callable[..., Any]]:
    """Open consoles with ``await consoles(node, role)``; at the end each must have logged no error and stored nothing."""
    opened: list[Console] = []

    async def make(node: str, role: str = "officer", *, fragment: str = "") -> Console:
        c = await open_console(browser, fed, node, role, fragment=fragment)
        opened.append(c)
        return c

    yield make
    problems = []
    for c in opened:
        if not c.page.is_closed() and not await c.storage_is_empty():
            problems.append(f"{c.node}: something was written to browser storage")
        problems += [f"{c.node}: {m}" for m in c.unexpected()]
        await c.context.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def screenshot() -> Callable[..., Any]:
    """``await screenshot(page, "inbox")`` writes docs/screenshots/inbox.png when HELIOGRAPH_SCREENSHOTS=1."""

    async def take(page: Page, name: str, **options: Any) -> None:
        if os.environ.get("HELIOGRAPH_SCREENSHOTS") != "1":
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), **options)

    return take
