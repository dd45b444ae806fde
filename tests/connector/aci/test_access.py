"""Who may call which action: roles, clients, API keys, trusted proxies (issue 6, item 1)."""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import settings as connector_settings
from connector.aci import access, queueinfo
from connector.addresses import client_address
from connector.models import Action, QueueState, Status

pytestmark = pytest.mark.django_db

LOOPBACK = ["127.0.0.1", "::1"]
ADMIN = {"actions": ["change", "status", "view"], "clients": LOOPBACK}
OUTSIDER = "203.0.113.9"
PROXY = "10.0.0.5"


@pytest.fixture
def roles(settings):
    """Set CONNECTOR_ACI_ROLES for one test: ``roles(name={...}, ...)``."""

    def configure(**spec):
        settings.CONNECTOR_ACI_ROLES = spec

    return configure


def call(aci, action, client=None, *, headers=None, **params):
    """The XML answer to ``action`` sent from ``client`` (REMOTE_ADDR)."""
    extra = {} if client is None else {"REMOTE_ADDR": client}
    query = urlencode({"action": action, **params})
    return aci.parse_xml(aci.get(f"/?{query}", headers=headers or {}, **extra))


def queue_info(aci, queue_action, client=None, *, headers=None, **params):
    return call(
        aci, "QueueInfo", client, headers=headers, QueueName="fetch", QueueAction=queue_action,
        **params,
    )  # fmt: skip


def not_authorized(aci, root):
    assert aci.error_code(root) == "ERRORNOTAUTHORIZED"
    error = root.find("responsedata/error")
    assert error.findtext("rawerrorid") == "0x74"
    assert error.findtext("errorstring") == "Not authorized"
    return aci.error_description(root)


# --- The default: loopback may do everything, nobody else anything ----------------


def test_loopback_may_submit_and_change_by_default(aci):
    token = aci.submit()
    aci.success(aci.queue_info("Cancel", Token=token))
    aci.success(aci.queue_info("Pause"))
    assert QueueState.objects.get(name="fetch").paused


def test_ipv6_loopback_and_mapped_ipv4_loopback_are_loopback(aci):
    for address in ("::1", "::ffff:127.0.0.1"):
        aci.success(call(aci, "Fetch", address, FetchAction="NoOp"))
    assert Action.objects.count() == 2


def test_another_client_may_not_submit_by_default_and_nothing_changes(aci, caplog):
    before = aci.snapshot()
    with caplog.at_level(logging.WARNING, logger="connector.aci.access"):
        description = not_authorized(aci, call(aci, "Fetch", OUTSIDER, FetchAction="NoOp"))
    assert OUTSIDER in description
    assert "fetch" in description.lower()
    assert aci.snapshot() == before
    (record,) = [r for r in caplog.records if r.name == "connector.aci.access"]
    assert record.levelno == logging.WARNING
    assert OUTSIDER in record.getMessage()
    assert "fetch" in record.getMessage()


def test_another_client_may_not_read_status_by_default(aci):
    not_authorized(aci, call(aci, "GetVersion", OUTSIDER))
    not_authorized(aci, queue_info(aci, "GetStatus", OUTSIDER))


def test_a_refusal_comes_in_the_format_asked_for(aci):
    response = aci.get("/?action=GetVersion&ResponseFormat=simplejson", REMOTE_ADDR=OUTSIDER)
    error = response.json()["autnresponse"]["responsedata"]["error"]
    assert error["errorcode"] == "ERRORNOTAUTHORIZED"
    assert error["errorid"] == "CONNECTORGETVERSION116"


def test_a_request_without_a_client_address_is_refused(aci):
    description = not_authorized(aci, call(aci, "GetVersion", ""))
    assert "unknown" in description


# --- Status clients may read and not change --------------------------------------

READS = [
    ("GetStatus", {}),
    ("GetVersion", {}),
    ("QueueInfo", {"QueueAction": "GetStatus"}),
    ("QueueInfo", {"QueueAction": "QueueStatus"}),
    ("QueueInfo", {"QueueAction": "progress", "Token": "TOKEN"}),
    ("QueueInfo", {"QueueAction": "GetActionParameters", "Token": "TOKEN"}),
]
CHANGES = [
    ("Fetch", {"FetchAction": "NoOp"}),
    ("QueueInfo", {"QueueAction": "Cancel", "Token": "TOKEN"}),
    ("QueueInfo", {"QueueAction": "Stop", "Token": "TOKEN"}),
    ("QueueInfo", {"QueueAction": "Pause"}),
    ("QueueInfo", {"QueueAction": "resume"}),
    ("QueueInfo", {"QueueAction": "ChangePriority", "Token": "TOKEN", "Priority": "5"}),
    ("QueueInfo", {"QueueAction": "Duplicate", "Token": "TOKEN"}),
    ("QueueInfo", {"QueueAction": "SelfDestruct"}),
    ("View", {"Identifier": "x"}),
]


def _with_token(params, token):
    params = {**params, "QueueName": "fetch"}
    if params.get("Token") == "TOKEN":
        params["Token"] = token
    return params


@pytest.mark.parametrize(("action", "params"), READS)
def test_a_status_client_may_read(aci, roles, action, params):
    roles(admin=ADMIN, status={"actions": ["status"], "clients": ["198.51.100.0/24"]})
    token = aci.submit()
    root = call(aci, action, "198.51.100.20", **_with_token(params, token))
    aci.success(root)


@pytest.mark.parametrize(("action", "params"), CHANGES)
def test_a_status_client_may_not_change_anything(aci, roles, action, params):
    roles(admin=ADMIN, status={"actions": ["status"], "clients": ["198.51.100.0/24"]})
    token = aci.submit()
    before = aci.snapshot()
    not_authorized(aci, call(aci, action, "198.51.100.20", **_with_token(params, token)))
    assert aci.snapshot() == before


@pytest.mark.parametrize("spelling", ["QUEUEINFO", "queueinfo", "Queue\u0131nfo"])
def test_an_action_is_classified_as_the_dispatcher_reads_it(aci, roles, spelling):
    # The dispatcher upper-cases: a dotless i is an I to it, so it must be one here too.
    roles(admin=ADMIN, status={"actions": ["status"], "clients": ["198.51.100.0/24"]})
    before = aci.snapshot()
    root = call(aci, spelling, "198.51.100.20", QueueName="fetch", QueueAction="Pause")
    not_authorized(aci, root)
    assert aci.snapshot() == before


def test_unknown_actions_are_status_class_and_not_implemented(aci, roles):
    roles(status={"actions": ["status"], "clients": ["*"]})
    assert aci.error_code(call(aci, "Teleport", OUTSIDER)) == "ERRORNOTIMPLEMENTED"


def test_a_role_may_name_single_queue_actions(aci, roles):
    roles(
        admin=ADMIN,
        canceller={"actions": ["QueueInfo:Cancel", "GetVersion"], "clients": ["192.0.2.1"]},
    )
    first, second = aci.submit(), aci.submit()
    aci.success(call(aci, "GetVersion", "192.0.2.1"))
    aci.success(queue_info(aci, "cancel", "192.0.2.1", Token=first))
    assert Action.objects.get(token=first).status == Status.CANCELLED
    not_authorized(aci, queue_info(aci, "ChangePriority", "192.0.2.1", Token=second, Priority="3"))
    not_authorized(aci, queue_info(aci, "GetStatus", "192.0.2.1"))
    not_authorized(aci, call(aci, "Fetch", "192.0.2.1", FetchAction="NoOp"))


def test_a_role_with_every_action_and_every_client(aci, roles):
    roles(everyone={"actions": ["*"], "clients": ["*"]})
    aci.success(call(aci, "Fetch", OUTSIDER, FetchAction="NoOp"))
    aci.success(call(aci, "Fetch", "2001:db8::7", FetchAction="NoOp"))


def test_the_client_is_recorded_with_the_change(aci, roles):
    roles(admin={"actions": ["*"], "clients": ["192.0.2.0/24"]})
    root = call(aci, "Fetch", "192.0.2.44", FetchAction="NoOp")
    token = aci.success(root).findtext("token")
    queue_info(aci, "Cancel", "192.0.2.45", Token=token)
    action = Action.objects.get(token=token)
    assert (action.submitted_from, action.cancelled_from) == ("192.0.2.44", "192.0.2.45")


# --- API keys ---------------------------------------------------------------------

KEYED = {"actions": ["*"], "clients": ["192.0.2.0/24"], "api_key": "s3cret-key"}


def test_the_right_api_key_lets_the_role_in(aci, roles):
    roles(admin=ADMIN, remote=KEYED)
    root = call(aci, "Fetch", "192.0.2.8", headers={"X-API-Key": "s3cret-key"}, FetchAction="NoOp")
    aci.success(root)


def test_a_wrong_api_key_is_refused_and_changes_nothing(aci, roles, caplog):
    roles(admin=ADMIN, remote=KEYED)
    with caplog.at_level(logging.WARNING, logger="connector.aci.access"):
        root = call(
            aci, "Fetch", "192.0.2.8", headers={"X-API-Key": "s3cret-kez"}, FetchAction="NoOp"
        )
        description = not_authorized(aci, root)
    assert "X-API-Key" in description
    assert "s3cret" not in description
    assert "s3cret" not in caplog.text
    assert not Action.objects.exists()


def test_a_keyed_role_without_the_key_is_refused(aci, roles):
    roles(admin=ADMIN, remote=KEYED)
    description = not_authorized(aci, call(aci, "Fetch", "192.0.2.8", FetchAction="NoOp"))
    assert "needs an API key" in description


def test_the_right_key_from_a_client_outside_the_role_is_refused(aci, roles):
    roles(admin=ADMIN, remote=KEYED)
    root = call(aci, "Fetch", OUTSIDER, headers={"X-API-Key": "s3cret-key"}, FetchAction="NoOp")
    not_authorized(aci, root)


def test_a_wrong_key_is_refused_even_where_no_key_is_needed(aci, roles):
    roles(admin=ADMIN, remote=KEYED)
    root = call(aci, "GetVersion", "127.0.0.1", headers={"X-API-Key": "guess"})
    assert "X-API-Key" in not_authorized(aci, root)


def wire(text):
    """A header value as a server hands it over: the UTF-8 bytes sent, decoded as latin-1."""
    return text.encode("utf-8").decode("latin-1")


NON_ASCII_KEY = "clé-sécrète-€-键"


def test_a_non_ascii_key_sent_as_utf8_matches(aci, roles):
    roles(admin=ADMIN, remote={**KEYED, "api_key": NON_ASCII_KEY})
    headers = {"X-API-Key": wire(NON_ASCII_KEY)}
    aci.success(call(aci, "Fetch", "192.0.2.8", headers=headers, FetchAction="NoOp"))
    wrong = {"X-API-Key": wire(NON_ASCII_KEY[:-1] + "x")}
    not_authorized(aci, call(aci, "Fetch", "192.0.2.8", headers=wrong, FetchAction="NoOp"))
    assert Action.objects.count() == 1


def test_a_non_ascii_key_matches_under_asgi(roles):
    # The ASGI request decodes the raw header bytes itself (latin-1), as daphne serves it.
    from django.test import AsyncRequestFactory

    from connector.aci.views import endpoint

    roles(admin=ADMIN, remote={**KEYED, "api_key": NON_ASCII_KEY})
    request = AsyncRequestFactory().get(
        "/?action=Fetch&FetchAction=NoOp", headers={"X-API-Key": wire(NON_ASCII_KEY)}
    )
    request.META["REMOTE_ADDR"] = "192.0.2.8"
    assert b"<response>SUCCESS</response>" in endpoint(request).content


def test_a_key_configured_by_its_sha256_lets_the_role_in(aci, roles):
    digest = hashlib.sha256(NON_ASCII_KEY.encode()).hexdigest()
    roles(admin=ADMIN, remote={**KEYED, "api_key": f"sha256:{digest.upper()}"})
    headers = {"X-API-Key": wire(NON_ASCII_KEY)}
    aci.success(call(aci, "Fetch", "192.0.2.8", headers=headers, FetchAction="NoOp"))
    # The hash is not a key: sending it is refused.
    for sent in (digest, f"sha256:{digest}"):
        root = call(aci, "Fetch", "192.0.2.8", headers={"X-API-Key": sent}, FetchAction="NoOp")
        not_authorized(aci, root)
    assert Action.objects.count() == 1


@pytest.mark.parametrize("bad", ["sha256:abc", "sha256:" + "g" * 64, "SHA256:" + "0" * 63])
def test_a_malformed_hashed_key_stops_the_start(bad):
    with pytest.raises(ImproperlyConfigured, match="SHA-256"):
        access.parse_roles({"r": {"actions": ["*"], "clients": ["*"], "api_key": bad}})


def test_a_key_from_an_environment_that_is_not_utf8_is_its_bytes():
    # os.environ gives undecodable bytes as surrogates; the key is still those bytes.
    (role,) = access.parse_roles({"r": {"actions": ["*"], "clients": ["*"], "api_key": "k\udce9"}})
    assert role.key_digest == hashlib.sha256(b"k\xe9").digest()


def test_keys_are_compared_as_digests_with_every_keyed_role(monkeypatch, roles):
    roles(
        a={"actions": ["*"], "clients": ["*"], "api_key": "first"},
        b={"actions": ["*"], "clients": ["*"], "api_key": "x" * 500},
        c={"actions": ["*"], "clients": ["*"]},
    )
    compared = []
    real = access.hmac.compare_digest

    def spy(sent, key):
        compared.append((len(sent), len(key)))
        return real(sent, key)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    decision = access.decide(access.classify("GetVersion"), client="127.0.0.1", api_key="first")
    assert decision.allowed
    # Both keyed roles, each as two 32-byte digests whatever the keys' lengths.
    assert compared[:2] == [(32, 32), (32, 32)]


def test_an_admin_api_key_from_the_environment_applies_to_loopback_too(monkeypatch):
    monkeypatch.setenv("CONNECTOR_ACI_ADMIN_API_KEY", "k1")
    monkeypatch.setenv("CONNECTOR_ACI_STATUS_CLIENTS", "10.0.0.0/8, *")
    monkeypatch.delenv("CONNECTOR_ACI_ROLES", raising=False)
    roles = {role.name: role for role in access.parse_roles(connector_settings._aci_roles())}
    assert roles["admin"].api_key == "k1"
    assert len(roles["status"].clients) == 3


# --- Behind a proxy ---------------------------------------------------------------


@pytest.fixture
def behind_proxy(settings, roles):
    settings.CONNECTOR_TRUSTED_PROXIES = [PROXY, "10.0.1.0/24"]
    roles(admin=ADMIN, office={"actions": ["*"], "clients": ["198.51.100.0/24"]})


def test_through_a_trusted_proxy_the_forwarded_client_is_the_client(aci, behind_proxy):
    root = call(
        aci, "Fetch", PROXY, headers={"X-Forwarded-For": "198.51.100.7"}, FetchAction="NoOp"
    )
    token = aci.success(root).findtext("token")
    assert Action.objects.get(token=token).submitted_from == "198.51.100.7"


def test_through_a_chain_of_trusted_proxies(aci, behind_proxy):
    headers = {"X-Forwarded-For": "198.51.100.7, 10.0.1.9"}
    token = aci.success(call(aci, "Fetch", PROXY, headers=headers, FetchAction="NoOp")).findtext(
        "token"
    )
    assert Action.objects.get(token=token).submitted_from == "198.51.100.7"


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(aci, behind_proxy):
    headers = {"X-Forwarded-For": "127.0.0.1"}
    description = not_authorized(
        aci, call(aci, "Fetch", OUTSIDER, headers=headers, FetchAction="NoOp")
    )
    assert OUTSIDER in description
    assert not Action.objects.exists()


def test_a_spoofed_entry_left_of_the_proxys_is_ignored(aci, behind_proxy):
    # The client wrote "198.51.100.7" itself; our proxy appended the real peer.
    headers = {"X-Forwarded-For": "198.51.100.7, 203.0.113.50"}
    description = not_authorized(
        aci, call(aci, "Fetch", PROXY, headers=headers, FetchAction="NoOp")
    )
    assert "203.0.113.50" in description
    assert not Action.objects.exists()


def test_a_proxy_on_loopback_does_not_make_its_clients_local(aci, settings, roles):
    settings.CONNECTOR_TRUSTED_PROXIES = ["127.0.0.1"]
    roles(admin=ADMIN)
    headers = {"X-Forwarded-For": OUTSIDER}
    not_authorized(aci, call(aci, "Fetch", "127.0.0.1", headers=headers, FetchAction="NoOp"))
    not_authorized(aci, call(aci, "GetVersion", "127.0.0.1", headers={"X-Forwarded-For": "junk"}))
    assert not Action.objects.exists()


def test_forwarded_for_is_ignored_without_trusted_proxies(aci, roles):
    roles(admin=ADMIN)
    headers = {"X-Forwarded-For": OUTSIDER}
    aci.success(call(aci, "Fetch", "127.0.0.1", headers=headers, FetchAction="NoOp"))
    assert Action.objects.get().submitted_from == "127.0.0.1"


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("192.0.2.1", "", "192.0.2.1"),
        ("192.0.2.1", "198.51.100.7", "192.0.2.1"),  # untrusted peer
        (PROXY, "", PROXY),  # a trusted peer without the header is the client
        (PROXY, "198.51.100.7", "198.51.100.7"),
        (PROXY, " 1.1.1.1 ,198.51.100.7 , 10.0.1.2", "198.51.100.7"),
        (PROXY, "10.0.1.3, 10.0.1.2", "10.0.1.3"),  # all trusted: the leftmost
        (PROXY, "[2001:db8::1]:4711", "2001:db8::1"),
        (PROXY, "198.51.100.7:5000", "198.51.100.7"),
        (PROXY, "::ffff:198.51.100.7", "198.51.100.7"),
        (PROXY, "198.51.100.7, unknown", ""),
        (PROXY, "unknown, 198.51.100.7", "198.51.100.7"),
        ("::ffff:10.0.0.5", "198.51.100.7", "198.51.100.7"),
    ],
)
def test_client_address_rule(settings, peer, forwarded, expected):
    settings.CONNECTOR_TRUSTED_PROXIES = [PROXY, "10.0.1.0/24"]
    meta = {"REMOTE_ADDR": peer}
    if forwarded:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_address(RequestFactory().get("/", **meta)) == expected


# --- The setting ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "JSON object"),
        ({"r": []}, "object with actions"),
        ({"r": {"actions": ["fetch"], "clients": ["10.0.0.0/33"]}}, "10.0.0.0/33"),
        ({"r": {"actions": ["fetch"], "clients": ["example.com"]}}, "example.com"),
        ({"r": {"actions": ["launch"], "clients": []}}, "launch"),
        ({"r": {"actions": ["QueueInfo:Explode"], "clients": []}}, "queueinfo:explode"),
        ({"r": {"actions": "fetch", "clients": []}}, "list of names"),
        ({"r": {"actions": [], "clients": "*"}}, "list of addresses"),
        ({"r": {"actions": [], "clients": [], "apikey": "x"}}, "apikey"),
        ({"r": {"actions": [], "clients": [], "api_key": 5}}, "api_key"),
    ],
)
def test_a_bad_roles_setting_is_refused_naming_the_problem(raw, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        access.parse_roles(raw)


def test_bad_roles_json_in_the_environment_stops_the_start(monkeypatch):
    monkeypatch.setenv("CONNECTOR_ACI_ROLES", "{not json")
    with pytest.raises(ImproperlyConfigured, match="CONNECTOR_ACI_ROLES"):
        connector_settings._aci_roles()


def test_roles_from_json_in_the_environment(monkeypatch):
    monkeypatch.setenv(
        "CONNECTOR_ACI_ROLES",
        '{"ops": {"actions": ["Status", "QueueInfo:Stop"], "clients": ["*"]}}',
    )
    (role,) = access.parse_roles(connector_settings._aci_roles())
    assert role.name == "ops"
    assert role.actions == {"status", "queueinfo:stop"}


def test_roles_know_every_queue_action():
    assert set(access.KNOWN_QUEUE_ACTIONS) == {name.lower() for name in queueinfo.QUEUE_ACTIONS}


def test_only_the_read_only_queue_actions_are_status():
    status = {
        name for name in access.KNOWN_QUEUE_ACTIONS
        if access.classify("QueueInfo", name).action_class == access.STATUS
    }  # fmt: skip
    assert status == {"getstatus", "progress", "queuestatus", "getactionparameters"}


# Letters and the characters that upper- or lower-case to them.
_LOOKALIKES = {"i": "iI\u0131\u0130", "s": "sS\u017f", "k": "kK\u212a"}


@st.composite
def spellings(draw: st.DrawFn, names: list[str]) -> str:
    name = draw(st.sampled_from(names))
    letters = [draw(st.sampled_from(_LOOKALIKES.get(c, c + c.upper()))) for c in name]
    return draw(st.sampled_from(["", " "])) + "".join(letters) + draw(st.sampled_from(["", "\t"]))


@settings(max_examples=300, deadline=None, database=None)
@given(
    action=spellings(["fetch", "queueinfo", "view", "getstatus", "getversion"])
    | st.text(max_size=10),
    queue_action=spellings(list(access.KNOWN_QUEUE_ACTIONS)) | st.text(max_size=10),
)
def test_classification_follows_how_the_dispatcher_and_queueinfo_read_names(action, queue_action):
    call = access.classify(action, queue_action)
    routed = action.strip().upper()  # connector.aci.dispatch
    handler = queue_action.strip().lower()  # connector.aci.queueinfo
    if routed == "FETCH":
        assert call.action_class == access.CHANGE
    elif routed == "QUEUEINFO":
        read_only = handler in access.READ_ONLY_QUEUE_ACTIONS
        assert call.action_class == (access.STATUS if read_only else access.CHANGE)
    elif routed == "VIEW":
        assert call.action_class == access.VIEW
    else:
        assert call.action_class == access.STATUS
