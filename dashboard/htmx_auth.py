"""Sign-in required, in a form htmx understands.

Django's ``login_required`` answers a signed-out request with a redirect to the
sign-in page. A browser follows it inside an htmx request, and htmx then swaps
the whole sign-in page into the part of the page it was updating (a table row,
the list). An htmx request of a signed-out user gets instead an ``HX-Redirect``
to the sign-in page, which htmx turns into a full navigation; ``next`` is the
page the user was on (``HX-Current-URL``), not the fragment or button URL the
request went to, so signing in again leads back to that page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_required as django_login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

View = Callable[..., HttpResponse]


def is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def page_of(request: HttpRequest) -> str:
    """The path (and query) of the page an htmx request came from, if it is one of ours."""
    current = str(getattr(getattr(request, "htmx", None), "current_url", None) or "")
    if current and url_has_allowed_host_and_scheme(
        current, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(current)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.get_full_path()


def sign_in_redirect(request: HttpRequest) -> HttpResponse:
    """To the sign-in page and back: a navigation for htmx, a redirect otherwise."""
    redirect = redirect_to_login(page_of(request) if is_htmx(request) else request.get_full_path())
    if is_htmx(request):
        return HttpResponseClientRedirect(redirect["Location"])
    return redirect


def login_required(view: View) -> View:
    """``django.contrib.auth``'s ``login_required``, with ``sign_in_redirect`` for htmx."""
    plain = django_login_required(view)

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if is_htmx(request) and not request.user.is_authenticated:
            return sign_in_redirect(request)
        return plain(request, *args, **kwargs)

    return checked
