"""A browser acting for another origin's page changes nothing; scripts are unaffected (issue 13).

The Chromium test (tests/browser/test_aci_cross_origin.py) shows it with a real
browser; these show each header rule, the clients that must keep working, and
the counted audit of refusals (issue 15).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest

from connector import audit
from connector.aci import refusals
from connector.aci.access import classify
from connector.models import Action, AuditEntry, AuditVerb, AuditVia, QueueState

pytestmark = pytest.mark.django_db

# What a page on another site makes Chromium send for an <img>, a form and fetch().
IMG = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
FORM_POST = {
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
    "Origin": "http://evil.example",
}
# IDOL's Java ACI client (Apache HttpClient) and curl: none of the browser's headers.
JAVA_CLIENT = {
    "User-Agent": "Apache-HttpClient/4.5.13 (Java/17.0.9)",
    "Accept-Encoding": "gzip,deflate",
    "Connection": "Keep-Alive",
}
CURL = {"User-Agent": "curl/8.5.0", "Accept": "*/*"}

FOREIGN = [
    pytest.param(IMG, id="img"),
    pytest.param(FORM_POST, id="form"),
    pytest.param({"Sec-Fetch-Site": "same-site"}, id="same-site: another port"),
    pytest.param({"Sec-Fetch-Site": "CROSS-SITE"}, id="any case"),
    pytest.param({"Sec-Fetch-Site": "nonsense"}, id="unknown Sec-Fetch-Site value"),
    pytest.param({"Origin": "http://evil.example"}, id="foreign Origin"),
    pytest.param({"Origin": "null"}, id="Origin null"),
    pytest.param({"Origin": "http://testserver:8001"}, id="Origin on another port"),
    pytest.param({"Origin": "https://testserver"}, id="Origin with another scheme"),
    pytest.param({"Origin": "not an origin"}, id="unreadable Origin"),
    pytest.param({"Referer": "http://evil.example/page.html"}, id="old browser: foreign Referer"),
    pytest.param(
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"},
        id="Origin decides when Sec-Fetch-Site says same-origin",
    ),
]

CHANGES = [
    pytest.param("Fetch", {"FetchAction": "NoOp"}, id="Fetch"),
    pytest.param("Fetch", {"FetchAction": "Delete", "Identifiers": "X"}, id="Fetch Delete"),
    pytest.param("QueueInfo", {"QueueAction": "Pause"}, id="Pause"),
    pytest.param("QueueInfo", {"QueueAction": "Stop", "Token": "T"}, id="Stop"),
    pytest.param("QueueInfo", {"QueueAction": "Cancel", "Token": "T"}, id="Cancel"),
    pytest.param("QueueInfo", {"QueueAction": "Duplicate", "Token": "T"}, id="Duplicate"),
]


def send(aci, action, headers=None, *, method="get", client="127.0.0.1", **params):
    query = urlencode({"action": action, "QueueName": "fetch", **params})
    if method == "post":
        response = aci.client.post(
            "/", query, content_type="text/plain", headers=headers or {}, REMOTE_ADDR=client
        )
    else:
        response = aci.client.get(f"/?{query}", headers=headers or {}, REMOTE_ADDR=client)
    return aci.parse_xml(response)


def crossed(aci, root):
    assert aci.error_code(root) == "ERRORCROSSORIGIN"
    error = root.find("responsedata/error")
    assert error.findtext("rawerrorid") == "0x77"
    assert error.findtext("errorstring") == "Request from another origin"
    return aci.error_description(root)


@pytest.fixture
def real_token(aci):
    """A token of a Processing action, so that Stop/Cancel/Duplicate would act on it."""
    token = aci.submit()
    aci.claim()
    return token


@pytest.mark.parametrize("headers", FOREIGN)
@pytest.mark.parametrize(("action", "params"), CHANGES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_change_a_browser_sends_for_another_origin_changes_nothing(
    aci, real_token, headers, action, params, method
):
    params = {k: (real_token if v == "T" else v) for k, v in params.items()}
    before = aci.snapshot()
    description = crossed(aci, send(aci, action, headers, method=method, **params))
    assert aci.snapshot() == before
    assert "another origin" in description


def test_a_running_action_is_not_stop_requested_by_a_foreign_page(aci, real_token):
    crossed(aci, send(aci, "QueueInfo", IMG, QueueAction="Stop", Token=real_token))
    assert Action.objects.get(token=real_token).stop_requested_at is None


def test_the_description_names_the_signal_and_the_way_out(aci):
    description = crossed(aci, send(aci, "Fetch", FORM_POST, FetchAction="NoOp"))
    assert "Sec-Fetch-Site: cross-site" in description
    assert "CSRF_TRUSTED_ORIGINS" in description
    referer = {"Referer": "http://evil.example/secret/path?x=1"}
    description = crossed(aci, send(aci, "Fetch", referer, FetchAction="NoOp"))
    assert "http://evil.example" in description
    assert "secret" not in description  # the other site's path is not repeated


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no headers"),
        pytest.param(JAVA_CLIENT, id="Java ACI client"),
        pytest.param(CURL, id="curl"),
        pytest.param({"Sec-Fetch-Site": "same-origin"}, id="own page"),
        pytest.param({"Sec-Fetch-Site": "none"}, id="typed address"),
        pytest.param(
            {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}, id="own fetch()"
        ),
        pytest.param({"Origin": "http://TESTSERVER:80"}, id="own Origin, default port"),
        pytest.param({"Referer": "http://testserver/dashboard/"}, id="own Referer"),
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_scripts_clients_and_the_own_origin_work_as_before(aci, headers, method):
    aci.success(send(aci, "Fetch", headers, method=method, FetchAction="NoOp"))
    aci.success(send(aci, "QueueInfo", headers, method=method, QueueAction="Pause"))
    assert Action.objects.count() == 1
    assert QueueState.objects.get(name="fetch").paused


TRUSTED = ["https://intranet.example.com", "http://*.example.org", "http://tools.example.net:8080"]


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"Origin": "https://intranet.example.com", "Sec-Fetch-Site": "cross-site"}, True),
        ({"Origin": "http://a.b.example.org", "Sec-Fetch-Site": "cross-site"}, True),
        ({"Origin": "http://example.org", "Sec-Fetch-Site": "cross-site"}, True),
        ({"Origin": "http://tools.example.net:8080"}, True),
        ({"Referer": "https://intranet.example.com/search?q=1"}, True),
        ({"Origin": "http://intranet.example.com"}, False),  # scheme
        ({"Origin": "http://tools.example.net"}, False),  # port
        ({"Origin": "http://example.org.evil.example"}, False),
        ({"Origin": "http://badexample.org"}, False),
        # An <img> of a trusted page sends no Origin: Sec-Fetch-Site decides.
        ({"Referer": "https://intranet.example.com/", "Sec-Fetch-Site": "cross-site"}, False),
    ],
)
def test_origins_listed_in_csrf_trusted_origins_may_act(aci, settings, headers, allowed):
    settings.CSRF_TRUSTED_ORIGINS = TRUSTED
    root = send(aci, "Fetch", headers, method="post", FetchAction="NoOp")
    if allowed:
        aci.success(root)
    else:
        crossed(aci, root)
    assert Action.objects.count() == int(allowed)


def test_status_actions_are_not_checked(aci):
    aci.success(send(aci, "QueueInfo", IMG, QueueAction="GetStatus"))
    aci.success(send(aci, "GetVersion", FORM_POST))


def test_a_view_embedded_by_another_origin_is_refused_a_followed_link_is_not(aci):
    script = {
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "no-cors",
        "Sec-Fetch-Dest": "script",
    }
    crossed(aci, send(aci, "View", script, Identifier="QUJD"))
    link = {
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document",
    }
    # Whatever View answers for this identifier, it is not the origin refusal.
    assert aci.error_code(send(aci, "View", link, Identifier="QUJD")) != "ERRORCROSSORIGIN"


def test_the_origin_check_comes_before_the_role_check(aci):
    # A foreign page driving a browser elsewhere learns nothing about roles.
    crossed(aci, send(aci, "Fetch", IMG, client="203.0.113.9", FetchAction="NoOp"))


def test_a_refusal_is_logged_as_a_warning(aci, caplog):
    with caplog.at_level(logging.WARNING, logger="connector.aci.origin"):
        crossed(aci, send(aci, "QueueInfo", IMG, QueueAction="Pause"))
    (record,) = [r for r in caplog.records if r.name == "connector.aci.origin"]
    assert record.levelno == logging.WARNING
    assert "Sec-Fetch-Site: cross-site" in record.getMessage()
    assert "pause" in record.getMessage()


# --- The audit of refusals, counted (issue 15) ---------------------------------------


def refused_entries():
    return list(AuditEntry.objects.filter(outcome="refused").order_by("id"))


def test_a_cross_origin_refusal_is_audited(aci):
    crossed(aci, send(aci, "Fetch", IMG, FetchAction="NoOp"))
    (entry,) = refused_entries()
    assert (entry.verb, entry.via, entry.client) == ("submit", "endpoint", "127.0.0.1")
    assert entry.reason.startswith("cross-origin: ")
    assert "Sec-Fetch-Site: cross-site" in entry.reason
    assert entry.detail == "refused 1 time in this minute: fetch"


def test_an_unauthorized_change_is_audited_a_refused_read_is_not(aci):
    outsider = "203.0.113.9"
    assert aci.error_code(send(aci, "GetVersion", client=outsider)) == "ERRORNOTAUTHORIZED"
    assert not refused_entries()
    root = send(aci, "QueueInfo", client=outsider, QueueAction="Pause")
    assert aci.error_code(root) == "ERRORNOTAUTHORIZED"
    (entry,) = refused_entries()
    assert (entry.verb, entry.client) == ("pause", outsider)
    assert entry.reason.startswith("not authorized: ")
    assert "QueueInfo:pause" in entry.reason


def test_a_flood_of_refusals_writes_one_entry_per_client_kind_and_minute(aci, monkeypatch):
    # The audit's clock stands still mid-minute, so the flood cannot straddle two minutes
    # (test_the_count_starts_again_each_minute_and_for_each_client covers the turn).
    still = datetime(2026, 12, 7, 3, 22, 30, tzinfo=UTC)
    monkeypatch.setattr(audit, "timezone", SimpleNamespace(now=lambda: still))
    outsider = "203.0.113.9"
    for number in range(40):
        if number % 2:
            root = send(aci, "Fetch", IMG, FetchAction="NoOp")
        else:
            root = send(aci, "QueueInfo", FORM_POST, method="post", QueueAction="Pause")
        crossed(aci, root)
    for _ in range(5):
        root = send(aci, "Fetch", client=outsider, FetchAction="NoOp")
        assert aci.error_code(root) == "ERRORNOTAUTHORIZED"
    crossing, unauthorized = refused_entries()
    assert crossing.client == "127.0.0.1"
    assert crossing.verb == "pause"  # the first refusal's
    assert crossing.detail == "refused 40 times in this minute: QueueInfo:pause, fetch"
    assert unauthorized.client == outsider
    assert unauthorized.detail == "refused 5 times in this minute: fetch"


def test_the_count_starts_again_each_minute_and_for_each_client():
    who = audit.Who(via=AuditVia.ENDPOINT, client="192.0.2.1")
    start = datetime(2026, 12, 6, 19, 31, 5, tzinfo=UTC)

    def refuse(at, client="192.0.2.1", kind="cross-origin"):
        audit.record_refusal_counted(
            verb=AuditVerb.STOP, who=audit.Who(via=who.via, client=client), kind=kind,
            reason="x", call="QueueInfo:stop", at=at,
        )  # fmt: skip

    for second in range(0, 50, 5):
        refuse(start + timedelta(seconds=second))
    refuse(start + timedelta(seconds=60))  # 19:32:05, the next minute
    refuse(start, client="192.0.2.2")
    refuse(start, kind="not authorized")
    counts = [
        (e.client, e.reason, e.at.minute, e.detail.split(" in ")[0]) for e in refused_entries()
    ]
    assert counts == [
        ("192.0.2.1", "cross-origin: x", 31, "refused 10 times"),
        ("192.0.2.1", "cross-origin: x", 32, "refused 1 time"),
        ("192.0.2.2", "cross-origin: x", 31, "refused 1 time"),
        ("192.0.2.1", "not authorized: x", 31, "refused 1 time"),
    ]


def test_the_list_of_calls_is_cut_before_the_count_is():
    who = audit.Who(via=AuditVia.ENDPOINT, client="192.0.2.1")
    at = datetime(2026, 12, 6, 19, 31, 5, tzinfo=UTC)
    for number in range(100):
        audit.record_refusal_counted(
            verb=AuditVerb.SUBMIT, who=who, kind="k", reason="r", call=f"call-{number:03}", at=at
        )
    (entry,) = refused_entries()
    assert entry.detail.startswith("refused 100 times in this minute: call-000, call-001")
    assert len(entry.detail) <= 400


def test_every_change_has_an_audit_verb_and_reads_have_none():
    from connector.aci.queueinfo import QUEUE_ACTIONS

    assert refusals.verb_of(classify("Fetch")) == AuditVerb.SUBMIT
    for queue_action in QUEUE_ACTIONS:
        call = classify("QueueInfo", queue_action)
        assert (refusals.verb_of(call) is not None) == (call.action_class == "change"), call
    assert refusals.verb_of(classify("GetStatus")) is None
    assert refusals.verb_of(classify("QueueInfo", "Teleport")) is None


def test_a_failing_audit_does_not_turn_a_refusal_into_an_error(aci, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(audit, "record_refusal_counted", broken)
    crossed(aci, send(aci, "Fetch", IMG, FetchAction="NoOp"))
