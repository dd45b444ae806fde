from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from connector.aci import views as aci
from dashboard.signin import SignInView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Sign-in with throttling (dashboard.signin) ahead of Django's own login URL.
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("dashboard/", include("dashboard.urls")),
    # The ACI endpoint: /action=X&..., /a=X&... (any case), and / with parameters.
    # (An inline (?i) flag would make Django's URL reversing fail.)
    re_path(r"^[Aa](?:[Cc][Tt][Ii][Oo][Nn])?=", aci.endpoint, name="aci-path"),
    path("", aci.root, name="aci"),
]
