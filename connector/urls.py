from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path, re_path

from connector.aci import views as aci
from connector.ops import health, metrics
from dashboard.signin import SignInView


def account_urls(*, password_reset: bool) -> list[URLPattern | URLResolver]:
    """Sign-in (throttled, dashboard.signin) and sign-out; the password-reset
    pages only when mail can be sent (CONNECTOR_PASSWORD_RESET), since they
    mail a link. No password change here: an admin changes passwords in the
    admin or with `manage.py changepassword`."""
    urls: list[URLPattern | URLResolver] = [
        path("accounts/login/", SignInView.as_view(), name="login"),
        path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    ]
    if password_reset:
        urls += [
            path(
                "accounts/password_reset/",
                auth_views.PasswordResetView.as_view(),
                name="password_reset",
            ),
            path(
                "accounts/password_reset/done/",
                auth_views.PasswordResetDoneView.as_view(),
                name="password_reset_done",
            ),
            path(
                "accounts/reset/<uidb64>/<token>/",
                auth_views.PasswordResetConfirmView.as_view(),
                name="password_reset_confirm",
            ),
            path(
                "accounts/reset/done/",
                auth_views.PasswordResetCompleteView.as_view(),
                name="password_reset_complete",
            ),
        ]
    return urls


urlpatterns = [
    path("admin/", admin.site.urls),
    *account_urls(password_reset=settings.CONNECTOR_PASSWORD_RESET),
    path("dashboard/", include("dashboard.urls")),
    # Operations (docs/deployment.md): probes and Prometheus metrics.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    # The ACI endpoint: /action=X&..., /a=X&... (any case), and / with parameters.
    # (An inline (?i) flag would make Django's URL reversing fail.)
    re_path(r"^[Aa](?:[Cc][Tt][Ii][Oo][Nn])?=", aci.endpoint, name="aci-path"),
    path("", aci.root, name="aci"),
]

# A refused Host, an unknown path and an unexpected failure outside the view get
# the ACI error envelope when the request is shaped like an ACI one
# (connector/aci/fallbacks.py), Django's plain pages otherwise.
handler400 = "connector.aci.fallbacks.bad_request"
handler404 = "connector.aci.fallbacks.page_not_found"
handler500 = "connector.aci.fallbacks.server_error"
