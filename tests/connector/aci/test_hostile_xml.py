"""XXE and entity expansion in InsertXML and IdentifiersXML, through the endpoint (issue 6).

The fetch tests refuse these at the fetch action's validation; here the whole
request path is checked: the answer is an ACI error naming the parameter, no
action is stored, and nothing of the referenced file reaches the caller.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from connector.models import Action

pytestmark = pytest.mark.django_db

SECRET = "TOP-SECRET-MARKER-6c1f"


def _laughs(levels: int) -> str:
    entities = ['<!ENTITY l0 "lol">']
    entities += [f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, levels)]
    return f"<!DOCTYPE r [{''.join(entities)}]><{{root}}>&l{levels - 1};</{{root}}>"


def hostile(secret: Path) -> dict[str, str]:
    url = secret.as_uri()
    return {
        "billion laughs": _laughs(10),
        "quadratic blowup": '<!DOCTYPE r [<!ENTITY a "'
        + "x" * 5000
        + '">]><{root}>'
        + "&a;" * 500
        + "</{root}>",
        "external entity": f'<!DOCTYPE r [<!ENTITY x SYSTEM "{url}">]><{{root}}>&x;</{{root}}>',
        "parameter entity": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}"> %p;]><{{root}}/>',
        "external dtd": f'<!DOCTYPE r SYSTEM "{url}"><{{root}}/>',
        "entity in attribute": (
            f'<!DOCTYPE r [<!ENTITY x SYSTEM "{url}">]>'
            '<{root}><identifier value="&x;"/></{root}>'
        ),
    }


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


CASES = ["billion laughs", "quadratic blowup", "external entity", "parameter entity",
         "external dtd", "entity in attribute"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    ("fetch_action", "parameter", "root"),
    [("Insert", "InsertXML", "insertXML"), ("Update", "IdentifiersXML", "identifiersXML")],
)
@pytest.mark.parametrize("how", ["url-encoded body", "multipart file"])
def test_hostile_xml_is_refused_and_leaks_nothing(
    aci, docs_task, secret, case, fetch_action, parameter, root, how
):
    xml = hostile(secret)[case].replace("{root}", root)
    params = {"action": "Fetch", "FetchAction": fetch_action, "ConfigSection": "DOCS"}
    if how == "url-encoded body":
        body = urlencode({**params, parameter: xml})
        response = aci.client.post("/", body, content_type="text/plain")
    else:
        upload = SimpleUploadedFile("x.xml", xml.encode(), content_type="application/xml")
        response = aci.client.post("/", {**params, parameter: upload})
    assert response.status_code == 200
    assert SECRET.encode() not in response.content
    root_element = aci.parse_xml(response)
    assert aci.error_code(root_element) == "ERRORPARAMINVALID"
    description = aci.error_description(root_element)
    assert parameter in description
    assert "without DTD or entities" in description
    assert not Action.objects.exists()
