"""Playwright on Debian's chromium against a real ``serve`` (with its worker).

One server for the module keeps the tests quick; each test gets a fresh,
signed-in browser page. Without /usr/bin/chromium the tests are skipped,
except on CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import VIEWER_PASSWORD, open_as, session_of, sign_in
from processes import Server, Site

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Module scope, not session: Playwright's sync API keeps an event loop running in
# this thread until it exits, which would break every async test after it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"Browser tests cannot run on CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    site = Site(tmp_path_factory.mktemp("site"))
    try:
        running = Server(site)
        yield running
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(15)
    finally:
        site.stop_all()


@pytest.fixture(scope="module")
def admin_password(server: Server) -> str:
    return server.admin_password()


@pytest.fixture(scope="module")
def admin_session(browser: Any, server: Server, admin_password: str) -> dict[str, Any]:
    """The admin ``serve`` created, signed in once through the form."""
    return session_of(browser, server, "admin", admin_password)


@pytest.fixture
def page(browser: Any, server: Server, admin_session: dict[str, Any]) -> Iterator[Any]:
    """A new browser context signed in as the admin, on the overview."""
    signed_in = open_as(browser, server, admin_session)
    try:
        yield signed_in
    finally:
        signed_in.context.close()


@pytest.fixture(scope="module")
def viewer(server: Server) -> str:
    """A user who may view the actions but not change them; returns the name."""
    server.site.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import Permission, User\n"
        f"user = User.objects.create_user('viewer', password='{VIEWER_PASSWORD}')\n"
        "user.user_permissions.add(Permission.objects.get(codename='view_action'))\n",
    )
    return "viewer"


@pytest.fixture
def viewer_page(browser: Any, server: Server, viewer: str) -> Iterator[Any]:
    """A new browser context signed in as the viewer (through the form: once per test is enough)."""
    signed_in = sign_in(browser, server, viewer, VIEWER_PASSWORD)
    try:
        yield signed_in
    finally:
        signed_in.context.close()


@pytest.fixture
def resume(server: Server) -> Iterator[None]:
    """Whatever a test paused is running again for the next one."""
    yield
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Resume")
