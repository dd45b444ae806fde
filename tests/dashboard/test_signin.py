"""Sign-in throttling: N failures per user name and address per window, then refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dashboard_helpers import PASSWORD, make_user
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def ops(db):
    return make_user("ops", "view_action")


def sign_in(password: str, *, username: str = "ops", address: str = "10.0.0.1") -> Client:
    client = Client(REMOTE_ADDR=address)
    client.response = client.post(LOGIN, {"username": username, "password": password})
    return client


def signed_in(client: Client) -> bool:
    return client.get(reverse("dashboard:home")).status_code == 200


def test_the_limit_is_five_failures_in_fifteen_minutes_by_default():
    assert settings.CONNECTOR_LOGIN_FAILURES == 5
    assert settings.CONNECTOR_LOGIN_WINDOW_SECONDS == 15 * 60


def test_failures_up_to_the_limit_still_allow_the_right_password(ops, settings):
    settings.CONNECTOR_LOGIN_FAILURES = 3
    for _ in range(2):
        assert sign_in("wrong").response.status_code == 200
    assert signed_in(sign_in(PASSWORD))


def test_after_the_limit_even_the_right_password_is_refused_with_a_clear_message(
    ops, settings, caplog
):
    settings.CONNECTOR_LOGIN_FAILURES = 3
    for _ in range(3):
        page = sign_in("wrong").response.content.decode()
        assert "Too many failed sign-ins" not in page
    client = sign_in(PASSWORD)
    assert client.response.status_code == 200
    assert "Too many failed sign-ins for this user from your address" in (
        client.response.content.decode()
    )
    assert not signed_in(client)
    assert "Sign-in as 'ops' from 10.0.0.1 refused: too many failures" in caplog.text
    assert "Failed sign-in as 'ops' from 10.0.0.1 (3 of 3 allowed)" in caplog.text


def test_the_throttle_is_per_user_name_and_address(ops, settings):
    settings.CONNECTOR_LOGIN_FAILURES = 2
    make_user("other", "view_action")
    for _ in range(2):
        sign_in("wrong")
    assert signed_in(sign_in(PASSWORD, address="10.0.0.2"))  # the user at their own desk
    assert signed_in(sign_in(PASSWORD, username="other"))
    assert not signed_in(sign_in(PASSWORD, username=" OPS "))  # same name, other spelling


def test_a_success_clears_the_count(ops, settings):
    settings.CONNECTOR_LOGIN_FAILURES = 2
    sign_in("wrong")
    assert signed_in(sign_in(PASSWORD))
    sign_in("wrong")
    assert signed_in(sign_in(PASSWORD))


def test_the_window_ends_and_sign_in_works_again(ops, settings, monkeypatch):
    settings.CONNECTOR_LOGIN_FAILURES = 2
    settings.CONNECTOR_LOGIN_WINDOW_SECONDS = 60
    clock = [1_000_000.0]
    monkeypatch.setattr("django.core.cache.backends.locmem.time.time", lambda: clock[0])
    for _ in range(2):
        sign_in("wrong")
    clock[0] += 59
    assert not signed_in(sign_in(PASSWORD))
    clock[0] += 2  # the window started with the first failure
    assert signed_in(sign_in(PASSWORD))


def test_unknown_user_names_are_throttled_too(settings):
    settings.CONNECTOR_LOGIN_FAILURES = 1
    sign_in("x", username="<b>nobody</b>")
    page = sign_in("x", username="<b>nobody</b>").response.content.decode()
    assert "Too many failed sign-ins" in page
    assert "<b>nobody</b>" not in page
