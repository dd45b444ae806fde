"""A page of another origin, in Debian's chromium, cannot act through the action endpoint.

An attacker's page, served from another port of 127.0.0.1 (same site, other
origin) and from ``evil.localhost`` (another site; chromium resolves every
``*.localhost`` name to loopback), fires ``<img>``, form GET, form POST and
``fetch(..., {mode: "no-cors"})`` at Pause, Stop of a running action and
Fetch Delete of a document of the demo task, from the operator's own address.
Nothing changes, and every refusal is counted in the audit log. The same
calls from a script (no browser headers) then work, which shows that the
targets were real.

Uses the browser fixtures of tests/browser/conftest.py.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from processes import Server

from connector.repositories.filesystem import encode_identifier

pytestmark = [pytest.mark.browser, pytest.mark.processes]

DOCUMENT = "handbook/holidays.txt"
METHODS = ("img", "form-get", "form-post", "fetch-no-cors")


class AttackerSite:
    """An HTTP server on another port that serves the attacker's page."""

    def __init__(self) -> None:
        self.page = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite()
    try:
        yield site
    finally:
        site.close()


def attack_page(target: str, calls: list[dict[str, str]]) -> str:
    """A page that sends every call in ``calls`` by each of METHODS, and says when all went."""
    parts = []
    scripts = []
    for number, params in enumerate(calls):
        query = urlencode(params)
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        parts.append(f'<img src="{html.escape(f"{target}/?{query}")}" alt="">')
        for method in ("get", "post"):
            frame = f"frame-{method}-{number}"
            parts.append(f'<iframe name="{frame}"></iframe>')
            parts.append(
                f'<form method="{method}" action="{target}/" target="{frame}">{fields}</form>'
            )
        scripts.append(
            f"fetch({target!r} + '/', {{mode: 'no-cors', method: 'POST', "
            f"credentials: 'include', body: {query!r}, "
            "headers: {'Content-Type': 'application/x-www-form-urlencoded'}})"
            ".catch(() => {})"
        )
    return (
        "<!doctype html><html><body>" + "".join(parts) + "<script>"
        "for (const form of document.forms) form.submit();"
        + ";".join(scripts)
        + "</script></body></html>"
    )


def refusals_counted(server: Server) -> int:
    rows = server.site.query(
        "SELECT detail FROM connector_auditentry WHERE outcome = 'refused' "
        "AND via = 'endpoint' AND reason LIKE 'cross-origin:%'"
    )
    return sum(int(re.match(r"refused (\d+) time", detail).group(1)) for (detail,) in rows)


def queue_paused(server: Server) -> bool:
    answer = server.aci("QueueInfo", QueueName="fetch", QueueAction="QueueStatus")
    return str(answer["responsedata"]["paused"]).lower() == "true"


def test_a_page_of_another_origin_cannot_pause_stop_or_delete(browser, server, attacker):
    demo = Path(server.site.env["CONNECTOR_DEMO_DIR"])
    document = demo / DOCUMENT
    server.site.wait_for(document.exists, 15, "the demo task's documents")
    running = server.aci("Fetch", FetchAction="Sleep", Seconds="60", Steps="600")
    token = running["responsedata"]["token"]
    server.wait_for_status(token, "Processing")
    actions_before = server.site.query("SELECT COUNT(*) FROM connector_action")[0][0]

    identifier = encode_identifier("DEMO", 0, DOCUMENT)
    calls = [
        {"action": "QueueInfo", "QueueName": "fetch", "QueueAction": "Pause"},
        {"action": "QueueInfo", "QueueName": "fetch", "QueueAction": "Stop", "Token": token},
        {"action": "Fetch", "FetchAction": "Delete", "Identifiers": identifier},
    ]
    attacker.page = attack_page(server.base, calls)
    expected = 0
    for origin in (f"http://127.0.0.1:{attacker.port}", f"http://evil.localhost:{attacker.port}"):
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{origin}/attack.html")
            expected += len(calls) * len(METHODS)
            server.site.wait_for(
                lambda wanted=expected: refusals_counted(server) >= wanted,
                15,
                f"{expected} refusals audited for the page of {origin} "
                f"(counted: {refusals_counted(server)})",
            )
        finally:
            context.close()

    # Nothing changed: no action made, the queue runs, the running action was
    # not asked to stop, the document is there.
    assert refusals_counted(server) == expected
    # Chromium said which: another port of this host is the same site, evil.localhost is not.
    logs = server.site.logs()
    assert "refused: sent for a page of another origin (Sec-Fetch-Site: same-site)" in logs
    assert "refused: sent for a page of another origin (Sec-Fetch-Site: cross-site)" in logs
    assert server.site.query("SELECT COUNT(*) FROM connector_action")[0][0] == actions_before
    assert not queue_paused(server)
    status = server.status(token)
    assert status["status"] == "Processing"
    assert server.site.query(
        "SELECT stop_requested_at FROM connector_action WHERE token = ?", token
    )[0] == (None,)
    assert document.exists()

    # A script (no browser headers) can do each of them: the targets were real.
    stopped = server.aci("QueueInfo", QueueName="fetch", QueueAction="Stop", Token=token)
    assert stopped["response"] == "SUCCESS"
    assert server.aci("QueueInfo", QueueName="fetch", QueueAction="Pause")["response"] == "SUCCESS"
    assert queue_paused(server)
    assert server.aci("QueueInfo", QueueName="fetch", QueueAction="Resume")["response"] == "SUCCESS"
    deleting = server.aci("Fetch", FetchAction="Delete", Identifiers=identifier)
    server.wait_for_status(deleting["responsedata"]["token"], "Finished")
    assert not document.exists()
