"""Sign-in throttling: N failures per user name and address per window, then refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dashboard_helpers import PASSWORD, make_user
from django.conf import settings
from django.contrib.auth.models import User
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


# --- Issue 13 items 3 and 4: the identity Django authenticates, every path, per client ---


def test_a_fullwidth_spelling_counts_against_the_user_it_signs_in_as(settings, caplog):
    """A fullwidth viewer1 is NFKC-normalised to viewer1 by Django: it gets no fresh attempts."""
    settings.CONNECTOR_LOGIN_FAILURES = 3
    make_user("viewer1", "view_action")
    for _ in range(2):
        sign_in("wrong", username="viewer1")
    sign_in("wrong", username="\uff56iewer1")  # fullwidth v: the third failure of viewer1
    assert "Failed sign-in as 'viewer1' from 10.0.0.1 (3 of 3 allowed)" in caplog.text
    for spelling in ("viewer1", "\uff56iewer1", "\uff56\uff49\uff45\uff57\uff45\uff52\uff11"):
        client = sign_in(PASSWORD, username=spelling)
        assert "Too many failed sign-ins" in client.response.content.decode()
        assert not signed_in(client)
    assert signed_in(sign_in(PASSWORD, username="\uff56iewer1", address="10.0.0.2"))


def test_each_failure_is_logged_once(ops, caplog):
    for _ in range(2):
        sign_in("wrong")
    failures = [r for r in caplog.records if "Failed sign-in" in r.getMessage()]
    assert len(failures) == 2
    assert not [r for r in caplog.records if r.getMessage().startswith("AXES")]


def test_one_client_trying_many_names_is_refused_for_every_name(ops, settings):
    settings.CONNECTOR_LOGIN_FAILURES = 5
    settings.CONNECTOR_LOGIN_CLIENT_FAILURES = 4
    for name in ("alice", "bob", "carol", "dave"):
        sign_in("wrong", username=name)
    client = sign_in(PASSWORD)  # ops never failed, but this address did, four times
    assert "Too many failed sign-ins" in client.response.content.decode()
    assert not signed_in(client)
    assert signed_in(sign_in(PASSWORD, address="10.0.0.2"))


def test_the_client_limit_is_twenty_by_default():
    assert settings.CONNECTOR_LOGIN_CLIENT_FAILURES == 20


def test_the_client_is_the_one_a_trusted_proxy_names(ops, settings):
    settings.CONNECTOR_LOGIN_FAILURES = 2
    settings.CONNECTOR_TRUSTED_PROXIES = ["127.0.0.1"]
    for _ in range(2):
        Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.9").post(
            LOGIN, {"username": "ops", "password": "wrong"}
        )
    behind = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.9")
    behind.post(LOGIN, {"username": "ops", "password": PASSWORD})
    assert not signed_in(behind)
    other = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.8")
    other.post(LOGIN, {"username": "ops", "password": PASSWORD})
    assert signed_in(other)


ADMIN_LOGIN = "/admin/login/"


def admin_sign_in(password: str, *, username: str = "boss", address: str = "10.0.0.1") -> Client:
    client = Client(REMOTE_ADDR=address)
    client.response = client.post(
        ADMIN_LOGIN, {"username": username, "password": password, "next": "/admin/"}
    )
    return client


def test_the_admin_sign_in_is_throttled_and_logged_as_the_dashboard_is(settings, caplog):
    settings.CONNECTOR_LOGIN_FAILURES = 3
    User.objects.create_superuser("boss", password=PASSWORD)
    for _ in range(3):
        assert admin_sign_in("wrong").response.status_code == 200
    assert "Failed sign-in as 'boss' from 10.0.0.1 (3 of 3 allowed) at /admin/login/" in (
        caplog.text
    )
    refused = admin_sign_in(PASSWORD)
    assert refused.response.status_code == 429
    assert "Too many failed sign-ins" in refused.response.content.decode()
    assert refused.get("/admin/").status_code == 302  # not signed in
    assert "Sign-in as 'boss' from 10.0.0.1 refused: too many failures" in caplog.text
    # The count is shared: the dashboard's sign-in refuses boss from there too.
    assert not signed_in(sign_in(PASSWORD, username="boss"))
    assert admin_sign_in(PASSWORD, address="10.0.0.2").get("/admin/").status_code == 200


def test_a_fullwidth_spelling_gets_no_fresh_attempts_at_the_admin_either(settings):
    settings.CONNECTOR_LOGIN_FAILURES = 2
    User.objects.create_superuser("boss", password=PASSWORD)
    sign_in("wrong", username="boss")
    admin_sign_in("wrong", username="\uff42oss")
    assert admin_sign_in(PASSWORD, username="\uff42oss").response.status_code == 429


@pytest.mark.parametrize(
    "url",
    [
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        "/accounts/reset/MQ/set-password/",
        "/accounts/reset/done/",
        "/accounts/password_change/",
    ],
)
def test_no_password_reset_pages_without_mail(client, url):
    assert not settings.CONNECTOR_PASSWORD_RESET
    assert client.get(url).status_code == 404
    assert client.post(url, {"email": "a@example.com"}).status_code == 404


def test_the_admin_offers_no_password_reset_without_mail(client):
    page = client.get(ADMIN_LOGIN).content.decode()
    assert "Forgotten your password" not in page


def test_password_reset_pages_exist_once_mail_is_configured():
    from connector.urls import account_urls

    names = {u.name for u in account_urls(password_reset=True)}
    assert {"password_reset", "password_reset_confirm", "login", "logout"} <= names
    assert {u.name for u in account_urls(password_reset=False)} == {"login", "logout"}


def test_sign_out_still_works(ops):
    client = sign_in(PASSWORD)
    assert signed_in(client)
    client.post(reverse("logout"))
    assert not signed_in(client)
