"""Hardening: CSP, no inline code or unescaped markup on any page, cookies, check --deploy."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from dashboard_helpers import PASSWORD, finish, make_user, start, submit
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connector import csp, queue
from connector.models import Action, FetchTask

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
MARKUP = '<script>alert(1)</script><img src=x onerror="alert(2)">'


class InlineCodeFinder(HTMLParser):
    """What a Content-Security-Policy without 'unsafe-inline' or 'unsafe-eval' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        #: Where scripts and style sheets come from.
        self.assets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name, value in attrs:
            text = (value or "").strip().lower()
            if name.startswith("on"):
                self.problems.append(f"event handler {name} on <{tag}>")
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>")
            if name.startswith(("hx-on", "data-hx-on")) or name in {"hx-vars", "data-hx-vars"}:
                self.problems.append(f"{name} needs eval")
            if name in {"hx-vals", "data-hx-vals"} and text.startswith(("js:", "javascript:")):
                self.problems.append(f"{name} needs eval")
            if name in {"hx-trigger", "data-hx-trigger"} and "[" in text:
                self.problems.append(f"hx-trigger condition {value!r} needs eval")
            if name in {"href", "src", "action", "formaction"} and text.startswith("javascript:"):
                self.problems.append(f"javascript: URL in <{tag} {name}>")
        if tag == "link" and "stylesheet" in (attributes.get("rel") or ""):
            self.assets.append(attributes.get("href") or "")  # must come from here too
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            src = attributes.get("src")
            if src:
                self.assets.append(src)
            elif attributes.get("type") != "application/json":  # JSON is data, never run
                self.problems.append("inline <script>")


def inline_code(html: str) -> InlineCodeFinder:
    finder = InlineCodeFinder()
    finder.feed(html)
    return finder


@pytest.fixture
def marked_up_action(docs_task: FetchTask) -> Action:
    """An action whose every shown text holds markup and script."""
    action = submit(params={"Text": MARKUP}, tasks=[MARKUP], action_id=MARKUP)
    queue.add_log_lines(pk=action.pk, lines=[(timezone.now(), "INFO", MARKUP)])
    start(action)
    finish(
        action,
        counts={MARKUP: {"seen": 1}},
        result={
            "identifiers": [{"identifier": MARKUP, "reference": MARKUP}],
            "success": [MARKUP],
            "failed": [{"reference": f"/docs/{MARKUP}.txt", "reason": MARKUP}],
        },
    )
    return action


def dashboard_pages(action: Action) -> list[str]:
    return [
        reverse("dashboard:home"),
        reverse("dashboard:actions"),
        reverse("dashboard:actions") + "?search=" + MARKUP,
        reverse("dashboard:action", args=[action.pk]),
        reverse("dashboard:submit"),
        reverse("dashboard:submit") + "?FetchAction=" + MARKUP,
        reverse("dashboard:cancel-matching") + "?task=" + MARKUP,
        reverse("admin:index"),
        reverse("admin:connector_action_changelist"),
        reverse("admin:connector_action_change", args=[action.pk]),
        reverse("admin:connector_fetchtask_changelist"),
    ]


def test_no_page_has_inline_script_handlers_styles_or_eval(admin_client, marked_up_action):
    for page in dashboard_pages(marked_up_action):
        response = admin_client.get(page)
        assert response.status_code == 200, page
        found = inline_code(response.content.decode())
        assert found.problems == [], page
        # From this site only: no CDN, no other host.
        assert all(src.startswith("/") and not src.startswith("//") for src in found.assets), (
            page,
            found.assets,
        )


def test_no_page_shows_a_template_comment(admin_client, client, marked_up_action):
    # Django's {# #} comments end at the line's end: one spread over lines is shown as text.
    pages = [(admin_client, page) for page in dashboard_pages(marked_up_action)]
    pages.append((client, reverse("login")))
    for browser, page in pages:
        html = browser.get(page).content.decode()
        assert "{#" not in html and "#}" not in html, page
        assert "{%" not in html and "%}" not in html, page


def test_sign_in_and_refusal_pages_have_no_inline_code(client, nobody):
    found = inline_code(client.get(reverse("login")).content.decode())
    assert found.problems == [] and found.assets
    assert all(src.startswith("/static/") for src in found.assets)
    client.force_login(nobody)
    response = client.get(reverse("dashboard:home"))
    assert response.status_code == 403
    assert inline_code(response.content.decode()).problems == []


def test_markup_and_script_show_escaped_on_every_page(admin_client, marked_up_action):
    for page in dashboard_pages(marked_up_action):
        html = admin_client.get(page).content.decode()
        assert "<script>alert" not in html.lower(), page
        assert "<img src=x" not in html.lower(), page
    detail = admin_client.get(reverse("dashboard:action", args=[marked_up_action.pk]))
    assert detail.content.decode().count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4


def test_htmx_is_configured_for_the_policy(viewer_client):
    html = viewer_client.get(reverse("dashboard:home")).content.decode()
    assert (
        '<meta name="htmx-config" content=\'{"allowEval": false, "includeIndicatorStyles":'
        ' false, "allowScriptTags": false, "defaultSettleDelay": 0}\'>'
    ) in html


def test_every_response_carries_the_policy_and_refuses_framing(viewer_client):
    for url in (reverse("dashboard:home"), reverse("login"), "/action=GetVersion"):
        response = viewer_client.get(url)
        policy = response[csp.HEADER]
        assert "script-src 'self'" in policy
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"


def test_the_policy_can_be_replaced_by_a_setting(client, settings):
    settings.CONNECTOR_CONTENT_SECURITY_POLICY = "default-src 'none'"
    settings.MIDDLEWARE = list(settings.MIDDLEWARE)  # rebuild the chain with the setting
    assert client.get(reverse("login"))[csp.HEADER] == "default-src 'none'"


def test_sign_in_lasts_the_session_age_and_the_cookies_are_http_only(client):
    make_user("ops", "view_action")
    client.post(reverse("login"), {"username": "ops", "password": PASSWORD})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == settings.SESSION_COOKIE_AGE == 8 * 3600
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert settings.CSRF_COOKIE_HTTPONLY


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CONNECTOR_", "DJANGO_")) and key not in {"DEBUG", "SECRET_KEY"}
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_a_production_configuration(tmp_path):
    done = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        CONNECTOR_VAR_DIR=str(tmp_path),
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="connector.example.com",
        CONNECTOR_HTTPS="true",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_check_deploy_names_the_switch_on_plain_http(tmp_path):
    done = _manage("check", "--deploy", CONNECTOR_VAR_DIR=str(tmp_path))
    # The embedded default runs on plain http: secure cookies would never come back.
    assert "security.W012" in done.stderr and "security.W004" in done.stderr


def test_https_settings_are_off_in_debug_and_on_plain_http(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS,"
        " s.SECURE_SSL_REDIRECT)"
    )
    common = {"CONNECTOR_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "connector.settings"}
    on = _manage("shell", "--no-imports", "-c", code, CONNECTOR_HTTPS="true", **common)
    assert on.stdout.split() == ["True", "True", str(365 * 24 * 3600), "True"], on.stderr
    debug = _manage(
        "shell", "--no-imports", "-c", code, CONNECTOR_HTTPS="true", DEBUG="true", **common
    )
    assert debug.stdout.split() == ["False", "False", "0", "False"], debug.stderr
    plain = _manage("shell", "--no-imports", "-c", code, **common)
    assert plain.stdout.split() == ["False", "False", "0", "False"], plain.stderr


def test_a_sign_in_post_without_this_sites_csrf_token_is_refused():
    client = Client(enforce_csrf_checks=True)
    assert client.post(reverse("login"), {"username": "x", "password": "y"}).status_code == 403
