"""The dashboard's three roles, as Django groups holding model permissions.

The views check permissions, never group names, so a superuser, a member of a
group and a user given the permission one by one are treated alike:

- viewer: sees every page (``connector.view_action`` and the other view permissions);
- operator: also submits, cancels, stops, retries, changes priority and pauses
  queues (``connector.change_action``);
- admin: also edits fetch tasks and users in the Django admin (and is staff,
  which a group cannot give: ``adduser --role admin`` and ``serve`` set it).

The groups are made after every ``migrate`` (a ``post_migrate`` handler, so
no migration is needed) and only ever gain permissions: one an administrator
added to a group by hand stays.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS

logger = logging.getLogger(__name__)

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)

_VIEWER_PERMISSIONS = [
    "connector.view_action",
    "connector.view_actionlogline",
    "connector.view_fetchtask",
    "connector.view_queuestate",
    "connector.view_workerprocess",
]
_OPERATOR_PERMISSIONS = [*_VIEWER_PERMISSIONS, "connector.change_action"]
_ADMIN_PERMISSIONS = [
    *_OPERATOR_PERMISSIONS,
    "connector.add_fetchtask",
    "connector.change_fetchtask",
    "connector.delete_fetchtask",
    "auth.view_user",
    "auth.add_user",
    "auth.change_user",
    "auth.delete_user",
    "auth.view_group",
]

#: Each role's permissions, as ``app_label.codename``.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    VIEWER: _VIEWER_PERMISSIONS,
    OPERATOR: _OPERATOR_PERMISSIONS,
    ADMIN: _ADMIN_PERMISSIONS,
}


def ensure_groups(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, Group]:
    """Create the role groups if missing and give them their permissions; idempotent."""
    # The permissions of an app are made by auth's own post_migrate handler when
    # that app's turn comes, and auth's turn comes after this app's: make sure.
    for label in ("connector", "auth"):
        create_permissions(apps.get_app_config(label), verbosity=0, using=using)
    groups = {}
    for role, names in ROLE_PERMISSIONS.items():
        group, created = Group.objects.using(using).get_or_create(name=role)
        if created:
            logger.info("Created the %s group", role)
        group.permissions.add(*_permissions(names, using=using))
        groups[role] = group
    return groups


def _permissions(names: list[str], *, using: str) -> list[Permission]:
    found = []
    for name in names:
        app_label, codename = name.split(".", 1)
        found.append(
            Permission.objects.using(using).get(
                content_type__app_label=app_label, codename=codename
            )
        )
    return found


def ensure_groups_after_migrate(*, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """``post_migrate`` receiver (sent once per app; connected for this app only)."""
    ensure_groups(using=using)


def grant_role(user: Any, role: str) -> None:
    """Put the user in the role's group; admins are staff too (for the Django admin)."""
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}: one of {', '.join(ROLES)}")
    groups = ensure_groups()
    user.groups.add(groups[role])
    if role == ADMIN and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
