"""Every XML answer is ``text/xml; charset=utf-8``, as IDOL servers send it.

OpenText's Java ACI client parses only responses whose content type starts with
``text/xml``; anything else (``application/xml`` included) is "a non-text ACI
response" to it, errors too.
"""

from __future__ import annotations

import pytest

from connector.aci import views

pytestmark = pytest.mark.django_db

XML_TYPE = "text/xml; charset=utf-8"


@pytest.mark.parametrize(
    "url",
    [
        "/?action=GetVersion",
        "/action=GetStatus",
        "/a=QueueInfo&QueueName=fetch&QueueAction=QueueStatus",
        # Errors: unknown action, missing parameter, a bad ResponseFormat (answered in XML).
        "/?action=NoSuchAction",
        "/?action=QueueInfo",
        "/?action=GetVersion&ResponseFormat=yaml",
    ],
)
def test_xml_answers_are_text_xml(client, url):
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == XML_TYPE


def test_the_last_resort_error_is_text_xml_with_an_errorid(client, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("rendering failed")

    # Every rendering fails, the error's too: only the fallback is left.
    monkeypatch.setattr(views, "render", broken)
    response = client.get("/?action=GetVersion")
    assert response.status_code == 200
    assert response["Content-Type"] == XML_TYPE
    assert b"<response>ERROR</response>" in response.content
    # The Java client's binary processor (View) needs an errorid to see an error.
    assert b"<errorid>CONNECTOR112</errorid>" in response.content
    assert b"<errorcode>ERRORINTERNAL</errorcode>" in response.content
