from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from connector.aci import views as aci
from connector.ops import health, metrics
from dashboard.signin import SignInView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Sign-in with throttling (dashboard.signin) ahead of Django's own login URL.
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
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
