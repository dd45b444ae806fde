"""What the browser tests do again and again: sign in, open a live page, submit, restart."""

from __future__ import annotations

import re
import signal
from typing import Any

from processes import Server

VIEWER_PASSWORD = "viewer-password-for-tests"


def sign_in(browser: Any, server: Server, username: str, password: str, **options: Any) -> Any:
    """A page of a new browser context (``options``: e.g. ``color_scheme``), signed in."""
    context = browser.new_context(base_url=server.base, **options)
    context.set_default_timeout(10_000)
    signed_in = context.new_page()
    signed_in.goto("/accounts/login/?next=/dashboard/")
    signed_in.fill("#id_username", username)
    signed_in.fill("#id_password", password)
    signed_in.click("button:has-text('Sign in')")
    signed_in.wait_for_url("**/dashboard/")
    return signed_in


def open_as(browser: Any, server: Server, session: dict[str, Any], **options: Any) -> Any:
    """A page of a new browser context that starts with a signed-in ``session``, on the overview.

    Signing in through the form hashes the password (PBKDF2, deliberately slow): done
    once per user and module, the tests stay quick.
    """
    context = browser.new_context(base_url=server.base, storage_state=session, **options)
    context.set_default_timeout(10_000)
    opened = context.new_page()
    opened.goto("/dashboard/")
    assert opened.url.endswith("/dashboard/"), f"not signed in: {opened.url}"
    return opened


def session_of(browser: Any, server: Server, username: str, password: str) -> dict[str, Any]:
    """Sign in through the form; the cookies and storage of that browser context."""
    signed_in = sign_in(browser, server, username, password)
    try:
        return dict(signed_in.context.storage_state())
    finally:
        signed_in.context.close()


def go_live(page: Any, path: str) -> None:
    """Open a page and wait for its socket, so changes arrive pushed rather than polled."""
    page.goto(path)
    page.wait_for_selector("#live-state[data-live='yes']")
    # Set once per document: still set at the end means the page was never reloaded.
    page.evaluate("window.__sameDocument = true")


def same_document(page: Any) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def row_status(page: Any, pk: int) -> Any:
    return page.locator(f"#action-{pk} .status")


def pk_of(page: Any) -> int:
    return int(re.search(r"/actions/(\d+)/", page.url).group(1))


def pause(server: Server) -> None:
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Pause")


def fetch(server: Server, **params: str) -> int:
    token = server.aci("Fetch", **params)["responsedata"]["token"]
    return int(server.site.query("SELECT id FROM connector_action WHERE token = ?", token)[0][0])


def stop_server(server: Server) -> None:
    """End the server process (and its worker) the way an operator's restart does."""
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(15)


def start_server(server: Server) -> None:
    """Start the server of the same site again, on the same port."""
    server.process = server.site.start("serve", "--port", str(server.port))
    server.site.wait_for_worker(server.process)
