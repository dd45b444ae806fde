"""The viewer, operator and admin groups: made after migrate, given by adduser and serve."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from dashboard_helpers import submit
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from connector import queue
from connector.management.commands.serve import Command as Serve
from connector.models import FetchTask
from dashboard import roles

pytestmark = pytest.mark.django_db


def member(role: str, name: str | None = None) -> User:
    user = User.objects.create_user(name or f"a-{role}", password="a-long-enough-password")
    roles.grant_role(user, role)
    return User.objects.get(pk=user.pk)  # a fresh permission cache


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_migrate_made_the_three_groups_with_their_permissions():
    groups = {group.name: group for group in Group.objects.filter(name__in=roles.ROLES)}
    assert set(groups) == {"viewer", "operator", "admin"}
    codenames = {
        name: set(group.permissions.values_list("codename", flat=True))
        for name, group in groups.items()
    }
    assert "view_action" in codenames["viewer"]
    assert "change_action" not in codenames["viewer"]
    assert "change_action" in codenames["operator"]
    assert "change_fetchtask" not in codenames["operator"]
    assert {"add_fetchtask", "change_fetchtask", "delete_fetchtask"} <= codenames["admin"]
    assert {"add_user", "change_user", "delete_user"} <= codenames["admin"]


def test_making_the_groups_again_changes_nothing_and_keeps_added_permissions():
    viewer = Group.objects.get(name="viewer")
    extra = roles._permissions(["connector.view_datastoredocument"], using="default")
    viewer.permissions.add(*extra)
    before = {g.name: set(g.permissions.all()) for g in Group.objects.all()}
    roles.ensure_groups()
    after = {g.name: set(g.permissions.all()) for g in Group.objects.all()}
    assert after == before
    assert Group.objects.filter(name="viewer").count() == 1


def test_a_viewer_sees_the_pages_but_no_buttons_and_is_refused_a_post():
    action = submit()
    client = signed_in(member("viewer"))
    for page in (reverse("dashboard:home"), reverse("dashboard:actions")):
        html = client.get(page).content.decode()
        assert 'method="post" action="/dashboard/' not in html, page
    assert client.get(reverse("dashboard:action", args=[action.pk])).status_code == 200
    assert client.get(reverse("dashboard:submit")).status_code == 403
    response = client.post(reverse("dashboard:cancel", args=[action.pk]))
    assert response.status_code == 403
    assert client.get(reverse("admin:index")).status_code == 302  # not staff: the admin's login


def test_an_operator_group_member_pauses_a_queue_and_cancels():
    action = submit()
    client = signed_in(member("operator"))
    assert "Pause queue fetch" in client.get(reverse("dashboard:home")).content.decode()
    client.post(reverse("dashboard:pause", args=["fetch"]), {"paused": "1"})
    assert queue.is_paused("fetch")
    client.post(reverse("dashboard:cancel", args=[action.pk]))
    action.refresh_from_db()
    assert action.status == "Cancelled"
    assert client.get(reverse("admin:index")).status_code == 302


def test_an_admin_group_member_edits_fetch_tasks_and_users_in_the_django_admin():
    client = signed_in(member("admin"))
    assert client.get(reverse("admin:index")).status_code == 200
    assert 'href="/admin/"' in client.get(reverse("dashboard:home")).content.decode()
    assert client.get(reverse("admin:connector_fetchtask_add")).status_code == 200
    assert client.get(reverse("admin:auth_user_add")).status_code == 200
    # Actions change only through the queue, for admins too.
    action = submit()
    page = client.get(reverse("admin:connector_action_change", args=[action.pk]))
    assert page.status_code == 200
    assert 'name="status"' not in page.content.decode()


def test_an_operator_may_not_edit_fetch_tasks_in_the_django_admin():
    user = member("operator")
    user.is_staff = True
    user.save()
    client = signed_in(user)
    assert client.get(reverse("admin:connector_fetchtask_add")).status_code == 403
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_adduser_makes_a_member_of_the_role_and_prints_its_password_once():
    out = StringIO()
    call_command("adduser", "ops", "--role", "operator", stdout=out)
    password = re.search(r"shown only now\) is:\s+(\S+)", out.getvalue()).group(1)
    user = User.objects.get(username="ops")
    assert user.check_password(password)
    assert list(user.groups.values_list("name", flat=True)) == ["operator"]
    assert not user.is_staff
    client = Client()
    assert client.login(username="ops", password=password)
    assert "Pause queue" in client.get(reverse("dashboard:home")).content.decode()


def test_adduser_admin_is_staff_and_viewer_may_only_look():
    call_command("adduser", "boss", "--role", "admin", stdout=StringIO())
    call_command("adduser", "looker", "--role", "viewer", stdout=StringIO())
    assert User.objects.get(username="boss").is_staff
    looker = User.objects.get(username="looker")
    assert looker.has_perm("connector.view_action")
    assert not looker.has_perm("connector.change_action")


def test_adduser_refuses_an_existing_user_and_a_bad_name_and_changes_nothing():
    User.objects.create_user("ops", password="a-long-enough-password")
    with pytest.raises(CommandError, match="exists already"):
        call_command("adduser", "ops", "--role", "admin", stdout=StringIO())
    assert not User.objects.get(username="ops").groups.exists()
    with pytest.raises(CommandError, match="Not a valid user name"):
        call_command("adduser", "no spaces <b>", stdout=StringIO())
    assert User.objects.count() == 1


def test_the_first_run_admin_of_serve_is_in_the_admin_group():
    password = Serve()._ensure_admin()
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    assert list(admin.groups.values_list("name", flat=True)) == ["admin"]
    assert Serve()._ensure_admin() is None  # once only


def test_serve_tells_a_newcomer_how_to_make_viewers_and_operators():
    command = Serve(stdout=StringIO())
    command._print_welcome("127.0.0.1", 8000, worker=None, admin_password="secret")
    text = command.stdout._out.getvalue()
    assert "adduser NAME --role viewer" in text
    assert "adduser NAME --role operator" in text


def test_grant_role_refuses_an_unknown_role():
    user = User.objects.create_user("x")
    with pytest.raises(ValueError, match="Unknown role"):
        roles.grant_role(user, "root")
    assert not FetchTask.objects.exists() and not user.groups.exists()
