"""access.may_send_body: whether a client could run any action, decided before its body."""

from __future__ import annotations

import pytest

from connector.aci.access import may_send_body
from connector.intake import is_aci_path


@pytest.fixture
def roles(settings):
    settings.CONNECTOR_ACI_ROLES = {
        "admin": {"actions": ["*"], "clients": ["10.0.0.1"]},
        "status": {"actions": ["status"], "clients": ["10.0.1.0/24"], "api_key": "s3cret"},
        "viewer": {"actions": ["QueueInfo:GetStatus"], "clients": ["10.0.2.1"]},
    }


def test_a_client_holding_a_role_may_send_a_body(roles):
    assert may_send_body("10.0.0.1", None).allowed


def test_a_role_of_one_queue_action_is_enough(roles):
    assert may_send_body("10.0.2.1", None).allowed


def test_a_client_holding_no_role_may_not(roles):
    decision = may_send_body("10.9.9.9", None)
    assert not decision.allowed
    assert decision.reason == "no role lets client 10.9.9.9 run any action"


def test_a_role_that_needs_a_key_needs_it_sent(roles):
    decision = may_send_body("10.0.1.5", None)
    assert not decision.allowed
    assert "needs an API key" in decision.reason
    assert may_send_body("10.0.1.5", "s3cret").allowed


def test_a_key_that_matches_no_role_is_refused_even_where_no_key_is_needed(roles):
    decision = may_send_body("10.0.0.1", "wrong")
    assert not decision.allowed
    assert "holds no valid API key" in decision.reason


def test_an_unknown_address_may_not(roles):
    assert not may_send_body("", None).allowed


@pytest.mark.parametrize(
    ("target", "aci"),
    [
        (b"/", True),
        (b"/?action=Fetch", True),
        (b"/action=GetVersion", True),
        (b"/A=GetVersion&x=1", True),
        (b"/accounts/login/", False),
        (b"/dashboard/", False),
        (b"/admin/login/?next=/admin/", False),
        (b"/nowhere", False),
    ],
)
def test_the_aci_endpoint_is_told_by_the_url_configuration(target, aci):
    assert is_aci_path(target) is aci
