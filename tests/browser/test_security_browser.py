"""Issue 13 in Debian's chromium against a real ``serve``: what a hostile document or page
can do to a signed-in operator.

- A repository document opened through ``View`` runs no script and renders no active
  content in the connector's origin (item 1): the attack of the issue, an ``evil.html``
  that loads ``evil.js`` through ``View``, opened by a signed-in admin.
- A page on another port of the same host cannot read the live dashboard with the
  operator's cookie (item 11).

Each attack has a control: the same markup served by a page of another server does run,
so a marker that stays unset means the connector stopped it, not that the test was blind.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error
from processes import Server

from connector.repositories.filesystem import encode_identifier

pytestmark = [pytest.mark.browser, pytest.mark.processes]

#: What evil.js does when it runs: the issue's attack, marked so that any part of it shows.
EVIL_JS = """
document.title = "evil.js ran";
window.name = "evil.js ran";
fetch("/action=QueueInfo&QueueName=fetch&QueueAction=Pause");
fetch("/admin/auth/user/add/").then(r => r.text()).then(page => {
  const token = page.match(/name="csrfmiddlewaretoken" value="([^"]+)"/)[1];
  const form = new URLSearchParams({csrfmiddlewaretoken: token, username: "evil",
    password1: "Evil-password-123", password2: "Evil-password-123"});
  return fetch("/admin/auth/user/add/", {method: "POST", body: form});
});
"""
#: A style that would show if a document were applied as a style sheet.
EVIL_CSS = "body { background-color: rgb(1, 2, 3) !important; }"


def pixel_png() -> bytes:
    """A valid PNG of one grey pixel."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack("!I", len(data)) + body + struct.pack("!I", zlib.crc32(body))

    header = struct.pack("!IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )


def evil_html(js_url: str) -> str:
    """The issue's page: a script loaded through View, plus inline ones for good measure."""
    return (
        "<!doctype html><html><head><title>evil.html</title>"
        f'<script src="{js_url}"></script></head><body>'
        "<script>document.title = 'inline script ran'</script>"
        "<img src=x onerror=\"document.title = 'event handler ran'\">"
        "</body></html>"
    )


class Observer:
    """Another web server on another port of 127.0.0.1: the hostile page's origin."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        observer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                observer.requests.append(self.path)
                kind, body = observer.pages.get(self.path, ("text/plain", b"not here"))
                self.send_response(200 if self.path in observer.pages else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def page(self, path: str, html: str) -> str:
        self.pages[path] = ("text/html; charset=utf-8", html.encode())
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def observer() -> Iterator[Observer]:
    running = Observer()
    yield running
    running.close()


@pytest.fixture(scope="module")
def documents(server: Server) -> dict[str, str]:
    """The hostile documents in the demo task's root; their View URLs (paths)."""
    root = Path(server.site.env["CONNECTOR_DEMO_DIR"])
    assert root.is_dir()

    def view(name: str) -> str:
        return f"/action=View&Identifier={encode_identifier('DEMO', 0, name)}"

    (root / "evil.js").write_text(EVIL_JS)
    (root / "evil.css").write_text(EVIL_CSS)
    (root / "evil.html").write_text(evil_html(view("evil.js")))
    (root / "evil.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><script>document.title = "svg ran"</script></svg>'
    )
    (root / "pixel.png").write_bytes(pixel_png())
    (root / "notes.txt").write_text("<script>document.title = 'text ran'</script>")
    return {name: view(name) for name in ("evil.js", "evil.css", "evil.html", "evil.svg")} | {
        "pixel.png": view("pixel.png"),
        "notes.txt": view("notes.txt"),
    }


def nothing_happened(server: Server) -> None:
    """None of evil.js's effects on the server."""
    assert server.site.query("SELECT paused FROM connector_queuestate WHERE name = 'fetch'") in (
        [],
        [(0,)],
    )
    assert server.site.query("SELECT id FROM auth_user WHERE username = 'evil'") == []


def open_document(page: Any, url: str) -> list[Any]:
    """Navigate to url as a user clicking a link would; the downloads it started."""
    downloads: list[Any] = []
    page.on("download", lambda download: downloads.append(download))
    try:
        page.goto(url)
    except Error as error:  # a download is not a page: Playwright says "Download is starting"
        assert "Download is starting" in str(error), error
    page.wait_for_timeout(500)  # time for any script to run, and its requests to be answered
    return downloads


def test_the_control_evil_js_runs_from_another_server(page, observer, resume):
    """The marker works: the same script, served as a script by another server, runs."""
    observer.pages["/evil.js"] = ("text/javascript", EVIL_JS.encode())
    page.goto(observer.page("/control.html", evil_html("/evil.js")))
    page.wait_for_function("window.name === 'evil.js ran'")
    assert page.title() == "event handler ran"  # the inline script and handler ran after it


def test_an_html_document_opened_through_view_by_an_admin_runs_no_script(
    page, server, documents, resume
):
    """The attack of issue 13 item 1: the admin opens View of evil.html while signed in."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    downloads = open_document(page, documents["evil.html"])
    assert "ran" not in page.title()
    assert page.evaluate("window.name") != "evil.js ran"
    nothing_happened(server)
    assert problems == []
    # Not rendered at all: saved as a file, the admin still on the dashboard.
    assert [d.suggested_filename for d in downloads] == ["evil.html"]
    assert page.url.endswith("/dashboard/")


@pytest.mark.parametrize("name", ["evil.js", "evil.css", "evil.svg"])
def test_scripts_styles_and_svg_opened_through_view_are_downloads_not_pages(
    page, server, documents, name, resume
):
    downloads = open_document(page, documents[name])
    assert "ran" not in page.title()
    nothing_happened(server)
    assert [d.suggested_filename for d in downloads] == [name]


def test_a_view_script_or_style_included_by_a_page_of_the_connectors_origin_does_nothing(
    page, server, documents, resume
):
    """Even a page of the connector's origin that names View as a script or style (markup
    that slipped in somewhere, without the site's CSP) gets neither to run or apply:
    the bytes are application/octet-stream with nosniff."""
    page_url = f"{server.base}/injected-page"
    markup = (
        "<!doctype html><html><head><title>injected</title>"
        f'<link rel="stylesheet" href="{documents["evil.css"]}">'
        f'<script src="{documents["evil.js"]}"></script></head>'
        f'<body><iframe id="frame" src="{documents["evil.html"]}"></iframe></body></html>'
    )
    # Playwright answers for this one URL of the connector's origin; the page's
    # subresources come from the real server.
    page.route(page_url, lambda route: route.fulfill(body=markup, content_type="text/html"))
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if m.type == "error" else None)
    page.goto(page_url)
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)
    assert page.title() == "injected"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(1, 2, 3)"
    assert any("MIME type" in text for text in blocked), blocked
    nothing_happened(server)


def test_a_view_script_included_by_a_page_of_another_origin_does_nothing(
    page, observer, documents, server, resume
):
    markup = (
        "<!doctype html><html><head><title>elsewhere</title>"
        f'<script src="{server.base}{documents["evil.js"]}"></script></head><body></body></html>'
    )
    page.goto(observer.page("/includes-view.html", markup))
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)
    assert page.title() == "elsewhere"
    nothing_happened(server)


def test_plain_text_and_raster_images_are_still_shown_inline_and_inert(page, documents):
    page.goto(documents["notes.txt"])
    # Shown as text: the markup is its content, not its page.
    assert "<script>" in page.locator("body").inner_text()
    assert "ran" not in page.title()
    page.goto(documents["pixel.png"])
    assert page.evaluate("document.images.length === 1 && document.images[0].naturalWidth") == 1


# Item 11: the live dashboard is read only by pages of its own origin.

SOCKET_PROBE = """
<!doctype html><html><head><title>probe</title></head><body><script>
  window.probe = {opened: false, messages: 0, closed: false};
  const socket = new WebSocket("%s");
  socket.onopen = () => { window.probe.opened = true; };
  socket.onmessage = () => { window.probe.messages += 1; };
  socket.onclose = () => { window.probe.closed = true; };
</script></body></html>
"""


def test_a_page_on_another_port_cannot_read_the_live_dashboard_with_the_viewers_cookie(
    viewer_page, server, observer
):
    ws_url = f"ws://127.0.0.1:{server.port}/ws/dashboard/"
    # The control: the dashboard's own page opens the same socket.
    viewer_page.goto("/dashboard/actions/")
    viewer_page.evaluate(
        "url => new Promise((ok, no) => { const s = new WebSocket(url);"
        " s.onopen = () => { s.close(); ok(); }; s.onclose = no; })",
        ws_url,
    )
    # The viewer's cookie goes with a socket from any port of 127.0.0.1 (cookies
    # know no ports, and the two are same-site): only the origin check stands.
    assert any(c["name"] == "sessionid" for c in viewer_page.context.cookies(ws_url))
    viewer_page.goto(observer.page("/probe.html", SOCKET_PROBE % ws_url))
    viewer_page.wait_for_function("window.probe && (window.probe.opened || window.probe.closed)")
    server.aci("Fetch", FetchAction="Identifiers", ConfigSection="DEMO")
    viewer_page.wait_for_timeout(500)
    assert viewer_page.evaluate("window.probe") == {
        "opened": False,
        "messages": 0,
        "closed": True,
    }
    assert f"origin '{observer.base}' is not this site's" in server.site.logs()
