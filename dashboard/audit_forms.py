"""The audit page's filters: every one optional, every one in the URL."""

from __future__ import annotations

from django import forms

from connector.models import AuditOutcome, AuditVerb, AuditVia
from dashboard.queries import AuditFilters

_ANY = [("", "Any")]


class AuditFilterForm(forms.Form):
    """A bad field is reported and left out of the filter, as on the actions list."""

    verb = forms.ChoiceField(required=False, choices=_ANY + AuditVerb.choices)
    outcome = forms.ChoiceField(required=False, choices=_ANY + AuditOutcome.choices)
    user = forms.CharField(required=False, max_length=150)
    via = forms.ChoiceField(required=False, choices=_ANY + AuditVia.choices)
    client = forms.CharField(required=False, max_length=200)
    token = forms.CharField(required=False, max_length=400)
    after = forms.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, widget=forms.HiddenInput()
    )

    def filters(self) -> AuditFilters:
        """The valid fields as filters (call after is_valid)."""
        data = getattr(self, "cleaned_data", {})
        return AuditFilters(
            verb=data.get("verb") or "",
            outcome=data.get("outcome") or "",
            user=(data.get("user") or "").strip(),
            via=data.get("via") or "",
            client=(data.get("client") or "").strip(),
            token=(data.get("token") or "").strip(),
        )

    def cursor(self) -> int | None:
        value = getattr(self, "cleaned_data", {}).get("after")
        return int(value) if value else None
