"""Users of each role, and clients signed in as them."""

from __future__ import annotations

import pytest
from dashboard_helpers import make_user
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture
def viewer(db) -> User:
    return make_user("viewer", "view_action")


@pytest.fixture
def operator(db) -> User:
    return make_user("operator", "view_action", "change_action")


@pytest.fixture
def nobody(db) -> User:
    """Signed in, but with no permission on actions."""
    return make_user("nobody")


@pytest.fixture
def viewer_client(client: Client, viewer: User) -> Client:
    client.force_login(viewer)
    return client


@pytest.fixture
def operator_client(client: Client, operator: User) -> Client:
    client.force_login(operator)
    return client
