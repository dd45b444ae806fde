"""The dashboard's forms: the list's filters and the priority change."""

from __future__ import annotations

from django import forms

from connector import queue
from connector.fetch.base import fetch_action_names
from dashboard.queries import ActionFilters, Cursor, status_values


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M")


class ActionFilterForm(forms.Form):
    """Every field optional; a bad field is reported and left out of the filter."""

    status = forms.ChoiceField(required=False)
    fetch_action = forms.ChoiceField(required=False, label="Fetch action")
    task = forms.CharField(required=False, max_length=100)
    queue = forms.ChoiceField(required=False)
    queued_from = forms.DateTimeField(
        required=False, label="Queued from", widget=DateTimeLocalInput()
    )
    queued_to = forms.DateTimeField(
        required=False, label="Queued before", widget=DateTimeLocalInput()
    )
    q = forms.CharField(
        required=False,
        max_length=400,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Token, ActionID or parameter text"}
        ),
    )
    after = forms.CharField(required=False, widget=forms.HiddenInput())
    #: Only for the "N new" count: the first row of the page the browser shows.
    than = forms.CharField(required=False, widget=forms.HiddenInput())

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        any_choice = [("", "Any")]
        fields = self.fields
        fields["status"].choices = any_choice + [(s, s) for s in status_values()]  # type: ignore[attr-defined]
        fields["fetch_action"].choices = any_choice + [(n, n) for n in fetch_action_names()]  # type: ignore[attr-defined]
        fields["queue"].choices = any_choice + [(n, n) for n in queue.queue_names()]  # type: ignore[attr-defined]

    def filters(self) -> ActionFilters:
        """The valid fields as filters (call after is_valid)."""
        data = getattr(self, "cleaned_data", {})
        return ActionFilters(
            status=data.get("status") or "",
            fetch_action=data.get("fetch_action") or "",
            task=(data.get("task") or "").strip(),
            queue=data.get("queue") or "",
            queued_from=data.get("queued_from"),
            queued_to=data.get("queued_to"),
            search=(data.get("q") or "").strip(),
        )

    def cursor(self, name: str = "after") -> Cursor | None:
        text = getattr(self, "cleaned_data", {}).get(name) or ""
        return Cursor.decode(text) if text else None


class PriorityForm(forms.Form):
    priority = forms.IntegerField(min_value=-1_000_000, max_value=1_000_000)
