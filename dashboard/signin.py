"""One sign-in throttle and one failure log for every credential path, on django-axes.

Every password Django checks goes through ``django.contrib.auth.authenticate``
(the dashboard's sign-in, ``/admin/login/``, anything added later), so the
throttle sits there: ``axes.backends.AxesStandaloneBackend`` first in
``AUTHENTICATION_BACKENDS`` refuses a throttled attempt before any password is
looked at, and ``user_login_failed`` (sent for every failure, refusals
included) reaches :class:`SignInThrottle`, the axes handler that counts and
logs. ``axes.middleware.AxesMiddleware`` turns a refusal into
:func:`locked_out_response`; the dashboard's form asks first and shows the
same refusal in the form.

Two counts, each in a fixed window of ``CONNECTOR_LOGIN_WINDOW_SECONDS`` that
starts with its first failure, kept in Django's cache (per process, shared
through Redis when ``REDIS_URL`` is set):

- per identity and client: ``CONNECTOR_LOGIN_FAILURES`` failures, then that
  identity is refused from that address. Keyed by address too, so a stranger
  guessing cannot lock the real user out from the user's own desk.
- per client: ``CONNECTOR_LOGIN_CLIENT_FAILURES`` failures whatever the names,
  then that address is refused for every name (a guesser going through names).

The identity is the one Django authenticates, not the spelling typed:
``\uff56iewer1`` (a fullwidth v) is NFKC-normalised to ``viewer1`` by the form and by
the user model, so it counts against ``viewer1``; a name that matches a user
counts as that user's name. A success clears the identity's count (not the
client's). The client address honours ``CONNECTOR_TRUSTED_PROXIES``.

axes's own per-key counting is replaced (its one limit over all keys cannot
give a client a larger allowance than an identity, and its cache keys join
values without a separator); its backend, signals and middleware do the
rest, so no credential path can forget the throttle.
"""

from __future__ import annotations

import hashlib
import logging
import math
import unicodedata
from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.cache import AxesCacheHandler
from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse

from connector.addresses import client_address

logger = logging.getLogger(__name__)

_PREFIX = "connector:sign-in-failures:"


def refusal_message() -> str:
    minutes = math.ceil(settings.CONNECTOR_LOGIN_WINDOW_SECONDS / 60)
    return (
        "Too many failed sign-ins for this user from your address. Try again in"
        f" {minutes} minute{'s' if minutes != 1 else ''}, or ask an administrator."
    )


# --- Who is signing in, from where (AXES_USERNAME_CALLABLE, AXES_CLIENT_IP_CALLABLE) ---


def identity(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str:
    """The user name Django would authenticate for this attempt.

    NFKC as the form and the user model normalise it, without the spaces the
    form strips; the user's own name when one matches (case as the user model
    compares it), else the name case-folded, so spellings of an unknown name
    count together.
    """
    field = get_user_model().USERNAME_FIELD
    raw: object = (credentials or {}).get(field)
    if raw is None and request is not None:
        raw = request.POST.get(field, "")
    typed = unicodedata.normalize("NFKC", str(raw or "")).strip()
    memo: dict[str, str] = (
        request.__dict__.setdefault("_connector_sign_in_identity", {})
        if request is not None
        else {}
    )
    if typed not in memo:
        user_model = get_user_model()
        try:
            memo[typed] = user_model._default_manager.get_by_natural_key(typed).get_username()
        except (user_model.DoesNotExist, ValueError):
            memo[typed] = typed.casefold()
    return memo[typed]


def client(request: HttpRequest) -> str:
    return client_address(request)


def failure_limit(request: HttpRequest | None, credentials: dict[str, Any] | None) -> int:
    """AXES_FAILURE_LIMIT: read at each use, so a changed setting applies at once."""
    return int(settings.CONNECTOR_LOGIN_FAILURES)


def cool_off(request: HttpRequest | None = None) -> timedelta:
    """AXES_COOLOFF_TIME: the window."""
    return timedelta(seconds=float(settings.CONNECTOR_LOGIN_WINDOW_SECONDS))


# --- The counts ------------------------------------------------------------------------


def _key(kind: str, *parts: str) -> str:
    # Hashed: user names may hold characters a cache key may not; joined with a
    # separator no name or address holds, so ("a1", "0.0.0.1") != ("a", "10.0.0.1").
    return _PREFIX + kind + ":" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


class SignInThrottle(AxesCacheHandler):
    """AXES_HANDLER: the two counts above, and the one failure log."""

    def _keys(self, request: HttpRequest, credentials: dict[str, Any] | None) -> tuple[str, str]:
        address = client(request)
        return _key("identity", identity(request, credentials), address), _key("client", address)

    def _counts(self, request: HttpRequest, credentials: dict[str, Any] | None) -> tuple[int, int]:
        by_identity, by_client = self._keys(request, credentials)
        return int(self.cache.get(by_identity, 0)), int(self.cache.get(by_client, 0))

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        return self._counts(request, credentials)[0]

    def is_locked(self, request: Any, credentials: dict[str, Any] | None = None) -> bool:
        by_identity, by_client = self._counts(request, credentials)
        return (
            by_identity >= settings.CONNECTOR_LOGIN_FAILURES
            or by_client >= settings.CONNECTOR_LOGIN_CLIENT_FAILURES
        )

    def _count(self, key: str) -> int:
        window = max(1, math.ceil(float(settings.CONNECTOR_LOGIN_WINDOW_SECONDS)))
        # add, then incr: the window starts with the first failure and no later
        # failure moves it (axes's own handler would touch the key each time).
        if self.cache.add(key, 1, timeout=window):
            return 1
        try:
            return int(self.cache.incr(key))
        except ValueError:
            # The window ended between add and incr: this failure starts a new one.
            self.cache.set(key, 1, timeout=window)
            return 1

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
    ) -> None:
        if request is None:
            # Nothing to key the address by; still one log line for the failure.
            logger.warning("Failed sign-in as %r without a request", identity(None, credentials))
            return
        name = identity(request, credentials)
        address = client(request)
        if getattr(request, "axes_locked_out", False):
            # Refused by the backend before the password was looked at: not
            # counted, so the window still ends when it was due to.
            log_refused(name, address, request.path)
            return
        by_identity_key, by_client_key = self._keys(request, credentials)
        count = self._count(by_identity_key)
        self._count(by_client_key)
        logger.warning(
            "Failed sign-in as %r from %s (%s of %s allowed) at %s",
            name,
            address,
            count,
            settings.CONNECTOR_LOGIN_FAILURES,
            request.path,
        )

    def user_logged_in(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        if request is None:
            return
        self.cache.delete(_key("identity", user.get_username(), client(request)))
        logger.info(
            "Signed in as %r from %s at %s", user.get_username(), client(request), request.path
        )

    def user_logged_out(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        return None


class SignInBackend(AxesStandaloneBackend):
    """First of AUTHENTICATION_BACKENDS: refuses a throttled attempt before any password check.

    A call without a request (code, not a web credential path: every sign-in
    view passes its request; Django's test client's ``login()``) has no client
    to count by and passes through; its failure is still logged.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)  # type: ignore[no-any-return]


def log_refused(name: str, address: str, path: str) -> None:
    logger.warning("Sign-in as %r from %s refused: too many failures (at %s)", name, address, path)


def locked_out_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: what a refused attempt gets on a path other than the dashboard's."""
    return HttpResponse(refusal_message(), status=429, content_type="text/plain; charset=utf-8")


# --- The dashboard's sign-in -----------------------------------------------------------


class ThrottledAuthenticationForm(AuthenticationForm):
    """Asks the throttle first, so a refusal shows in the form, as the page a user knows."""

    def clean(self) -> dict[str, Any]:
        if self.request is not None:
            field = get_user_model().USERNAME_FIELD
            credentials = {field: str(self.data.get("username", ""))}
            if not AxesProxyHandler.is_allowed(self.request, credentials):
                log_refused(
                    identity(self.request, credentials), client(self.request), self.request.path
                )
                raise forms.ValidationError(refusal_message(), code="throttled")
        return super().clean()


class SignInView(LoginView):
    authentication_form = ThrottledAuthenticationForm
