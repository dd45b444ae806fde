"""ACI-shaped requests that Django refuses before the view still get the ACI envelope.

A Host outside ALLOWED_HOSTS and a path that matches no URL used to get
Django's HTML 400/404, which an ACI client cannot read.
"""

from __future__ import annotations

import json

import pytest
from defusedxml import ElementTree

pytestmark = pytest.mark.django_db

BAD_HOST = "evil.example"


def _error(response) -> tuple[str, str, str]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml; charset=utf-8"
    root = ElementTree.fromstring(response.content)
    assert root.findtext("response") == "ERROR"
    error = root.find("responsedata/error")
    assert error is not None
    # All six fields, as the Java client reads them.
    for name in ("errorid", "rawerrorid", "errorstring", "errordescription", "errortime"):
        assert error.findtext(name), name
    return (
        root.findtext("action") or "",
        error.findtext("errorcode") or "",
        error.findtext("errordescription") or "",
    )


@pytest.mark.parametrize(
    "url",
    [
        "/action=GetVersion",
        "/a=QueueInfo&QueueName=fetch&QueueAction=GetStatus",
        "/?action=GetVersion",
    ],
)
def test_a_host_outside_allowed_hosts_gets_the_aci_error(client, url):
    action, code, description = _error(client.get(url, HTTP_HOST=BAD_HOST))
    assert code == "ERRORHOSTNOTALLOWED"
    assert BAD_HOST in description
    assert action in {"GETVERSION", "QUEUEINFO"}


def test_a_post_from_a_host_outside_allowed_hosts_gets_the_aci_error(client):
    response = client.post(
        "/", "action=GetVersion", content_type="text/plain; charset=UTF-8", HTTP_HOST=BAD_HOST
    )
    assert _error(response)[1] == "ERRORHOSTNOTALLOWED"


def test_the_bad_host_error_comes_in_the_format_asked_for(client):
    response = client.get("/?action=GetVersion&ResponseFormat=simplejson", HTTP_HOST=BAD_HOST)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    error = json.loads(response.content)["autnresponse"]["responsedata"]["error"]
    assert error["errorcode"] == "ERRORHOSTNOTALLOWED"


def test_a_bad_host_changes_nothing(aci):
    before = aci.snapshot()
    aci.client.get("/?action=Fetch&FetchAction=NoOp", HTTP_HOST=BAD_HOST)
    aci.client.get("/?action=QueueInfo&QueueName=fetch&QueueAction=Pause", HTTP_HOST=BAD_HOST)
    assert aci.snapshot() == before


@pytest.mark.parametrize("url", ["/foo=bar", "/Foo=bar&action=GetVersion", "/=x"])
def test_an_unknown_path_form_gets_the_aci_error(client, url):
    _, code, description = _error(client.get(url))
    assert code == "ERRORMISSINGPARAMS"
    assert "/action=NAME" in description


def test_other_unknown_paths_keep_a_plain_404_with_security_headers(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response


def test_a_bad_host_on_a_page_that_is_not_aci_keeps_a_plain_400_with_security_headers(client):
    response = client.get("/dashboard/", HTTP_HOST=BAD_HOST)
    assert response.status_code == 400
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response


def test_a_bare_get_of_the_root_from_a_bad_host_is_not_answered_as_aci(client):
    assert client.get("/", HTTP_HOST=BAD_HOST).status_code == 400


def test_a_failure_outside_the_view_is_an_aci_internal_error_on_aci_paths(rf):
    from connector.aci import fallbacks

    _, code, description = _error(fallbacks.server_error(rf.get("/action=GetVersion")))
    assert code == "ERRORINTERNAL"
    assert "Traceback" not in description
    assert fallbacks.server_error(rf.get("/dashboard/")).status_code == 500


def test_the_urlconf_names_the_fallbacks():
    from connector import urls

    assert urls.handler400 == "connector.aci.fallbacks.bad_request"
    assert urls.handler404 == "connector.aci.fallbacks.page_not_found"
    assert urls.handler500 == "connector.aci.fallbacks.server_error"
