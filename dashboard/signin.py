"""Sign-in with throttling: a few wrong passwords per user name and address, then a pause.

Failures are counted in Django's cache per (user name, client address) in a
fixed window that starts with the first failure. Once
``CONNECTOR_LOGIN_FAILURES`` have failed within ``CONNECTOR_LOGIN_WINDOW_SECONDS``,
further attempts from that address for that name are refused without looking
at the password, with a message saying so, until the window ends. A success
clears the count. Keyed by address too, so a stranger guessing cannot lock the
real user out from the user's own desk.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache

from connector.addresses import client_address

logger = logging.getLogger(__name__)

_PREFIX = "connector:sign-in-failures:"


def _key(username: str, address: str) -> str:
    # Hashed: user names may hold characters a cache key may not.
    digest = hashlib.sha256(f"{username.strip().lower()}\0{address}".encode()).hexdigest()
    return _PREFIX + digest


def failures(username: str, address: str) -> int:
    return int(cache.get(_key(username, address), 0))


def is_throttled(username: str, address: str) -> bool:
    return failures(username, address) >= settings.CONNECTOR_LOGIN_FAILURES


def record_failure(username: str, address: str) -> int:
    """Count one failure; the window starts with the first."""
    key = _key(username, address)
    window = int(settings.CONNECTOR_LOGIN_WINDOW_SECONDS)
    cache.add(key, 0, timeout=window)
    try:
        return int(cache.incr(key))
    except ValueError:
        # The window ended between add and incr: this failure starts a new one.
        cache.set(key, 1, timeout=window)
        return 1


def clear_failures(username: str, address: str) -> None:
    cache.delete(_key(username, address))


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self) -> dict[str, Any]:
        username = str(self.data.get("username", ""))
        address = client_address(self.request) if self.request is not None else ""
        if is_throttled(username, address):
            logger.warning("Sign-in as %r from %s refused: too many failures", username, address)
            minutes = math.ceil(settings.CONNECTOR_LOGIN_WINDOW_SECONDS / 60)
            raise forms.ValidationError(
                "Too many failed sign-ins for this user from your address. Try again in"
                f" {minutes} minute{'s' if minutes != 1 else ''}, or ask an administrator.",
                code="throttled",
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            count = record_failure(username, address)
            logger.warning(
                "Failed sign-in as %r from %s (%s of %s allowed)",
                username,
                address,
                count,
                settings.CONNECTOR_LOGIN_FAILURES,
            )
            raise
        clear_failures(username, address)
        return cleaned


class SignInView(LoginView):
    authentication_form = ThrottledAuthenticationForm
