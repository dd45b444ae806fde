from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from connector.aci import views as aci

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("dashboard/", include("dashboard.urls")),
    # The ACI endpoint: /action=X&..., /a=X&..., and / with parameters.
    re_path(r"^(?i:action|a)=", aci.endpoint, name="aci-path"),
    path("", aci.root, name="aci"),
]
