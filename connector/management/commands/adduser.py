"""``manage.py adduser NAME --role operator``: a dashboard user with a generated password."""

from __future__ import annotations

import secrets
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Field

from dashboard.roles import OPERATOR, ROLES, grant_role


class Command(BaseCommand):
    help = (
        "Create a dashboard user in one role (viewer: sees everything; operator: also"
        " submits, cancels, stops, retries, pauses; admin: also edits fetch tasks and"
        " users in the Django admin) and print its generated password once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", choices=ROLES, default=OPERATOR)

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"].strip()
        role: str = options["role"]
        user_model = get_user_model()
        # The user name field's own validators (letters, digits and @.+-_ for Django's).
        field = cast("Field[Any, Any]", user_model._meta.get_field(user_model.USERNAME_FIELD))
        try:
            username = field.clean(username, None)
        except ValidationError as error:
            raise CommandError(f"Not a valid user name: {' '.join(error.messages)}") from error
        if user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).exists():
            raise CommandError(
                f"The user {username} exists already; change its password with"
                f" `manage.py changepassword {username}`."
            )
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = user_model.objects.create_user(username, password=password)
            grant_role(user, role)
        self.stdout.write(
            f"Created the {role} {username}; its password (shown only now) is:\n  {password}\n"
            f"Change it with: python manage.py changepassword {username}"
        )
