"""The dashboard's forms: the list's filters, the priority change, submit and bulk cancel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms

from connector import queue
from connector.aci.actions import ACTION_ID_MAX_LENGTH, read_priority
from connector.aci.request import stored_parameters
from connector.fetch.base import fetch_action_names, get_fetch_action
from connector.params import ParameterError, Params
from dashboard import queries
from dashboard.queries import ActionFilters, Cursor, status_values


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M")


class ActionFilterForm(forms.Form):
    """Every field optional; a bad one is reported and the list shows no rows (not
    every action: an operator who mistyped a filter must not act on the whole list)."""

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
    #: The history's bars link here: the actions that ended in the bar's minutes.
    finished_from = forms.DateTimeField(
        required=False, label="Finished from", widget=DateTimeLocalInput()
    )
    finished_to = forms.DateTimeField(
        required=False, label="Finished before", widget=DateTimeLocalInput()
    )
    q = forms.CharField(
        required=False,
        max_length=400,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Token, ActionID or parameter text"}
        ),
    )
    sort = forms.ChoiceField(required=False, widget=forms.HiddenInput())
    after = forms.CharField(required=False, widget=forms.HiddenInput())
    #: The "Newer" link: the page before this row, in the sort's order.
    before = forms.CharField(required=False, widget=forms.HiddenInput())
    #: Only for the "N new" count: the first row of the page the browser shows.
    than = forms.CharField(required=False, widget=forms.HiddenInput())
    #: Only for "Cancel all matching": the newest queued action the count was shown for.
    upto = forms.CharField(required=False, widget=forms.HiddenInput())

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        any_choice = [("", "Any")]
        fields = self.fields
        fields["status"].choices = any_choice + [(s, s) for s in status_values()]  # type: ignore[attr-defined]
        fields["fetch_action"].choices = any_choice + [(n, n) for n in fetch_action_names()]  # type: ignore[attr-defined]
        fields["queue"].choices = any_choice + [(n, n) for n in queue.queue_names()]  # type: ignore[attr-defined]
        fields["sort"].choices = [("", "")] + [  # type: ignore[attr-defined]
            (f"{sign}{name}", name) for name in queries.SORTS for sign in ("-", "")
        ]

    def invalid(self) -> list[str]:
        """What is wrong with the filters, one sentence each (call after is_valid)."""
        found = []
        for name, errors in self.errors.items():
            value = self.data.get(name, "")
            label = self.fields[name].label or name.replace("_", " ").capitalize()
            why = " ".join(str(error) for error in errors)
            found.append(f"{label} {str(value)[:100]!r} is not valid: {why}")
        return found

    def sort_name(self) -> str:
        return str(getattr(self, "cleaned_data", {}).get("sort") or queries.DEFAULT_SORT)

    def position(self, name: str) -> queries.Position | None:
        """The Older/Newer cursor ``name`` in the form's sort (None: absent or not ours)."""
        text = getattr(self, "cleaned_data", {}).get(name) or ""
        chosen = queries.read_sort(self.sort_name())
        if not text or chosen is None:
            return None
        return queries.Position.decode(text, chosen[0])

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
            finished_from=data.get("finished_from"),
            finished_to=data.get("finished_to"),
            search=(data.get("q") or "").strip(),
        )

    def cursor(self, name: str = "after") -> Cursor | None:
        text = getattr(self, "cleaned_data", {}).get(name) or ""
        return Cursor.decode(text) if text else None


class PriorityForm(forms.Form):
    priority = forms.IntegerField(min_value=-1_000_000, max_value=1_000_000)


# --- Submit ------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamField:
    """One parameter of a fetch action as the submit form shows it."""

    name: str
    kind: str = "text"  # text, task, textarea, number, checkbox
    required: bool = False
    help: str = ""


_IDENTIFIERS = ParamField("Identifiers", "textarea", help="Comma-separated document identifiers.")
_OPTIONAL_TASK = ParamField("ConfigSection", "task", help="Only identifiers of this task.")
_ONE_TASK = ParamField("ConfigSection", "task", required=True)

#: The parameters each fetch action reads; an action not named here gets a free-form
#: "Name=Value" box, so a newly registered action can still be submitted.
ACTION_FIELDS: dict[str, tuple[ParamField, ...]] = {
    "SYNCHRONIZE": (
        ParamField("TaskSections", "task", required=True),
        ParamField("Identifiers", "textarea", help="Documents to fetch again even if unchanged."),
    ),
    "IDENTIFIERS": (
        _ONE_TASK,
        ParamField("MaxDepth", "number", help="Levels of folders to list (default 1)."),
        ParamField("ContainersOnly", "checkbox"),
        ParamField("ParentIdentifiers", "textarea", help="List under these containers."),
    ),
    "COLLECT": (_OPTIONAL_TASK, _IDENTIFIERS, ParamField("Destination", required=True)),
    "DELETE": (_OPTIONAL_TASK, _IDENTIFIERS),
    "HOLD": (_OPTIONAL_TASK, _IDENTIFIERS),
    "RELEASEHOLD": (_OPTIONAL_TASK, _IDENTIFIERS),
    "INSERT": (_ONE_TASK, ParamField("InsertXML", "textarea", required=True)),
    "UPDATE": (_ONE_TASK, ParamField("IdentifiersXML", "textarea", required=True)),
    "SLEEP": (ParamField("Seconds", help="0 to 3600 (default 1)."), ParamField("Steps", "number")),
    "NOOP": (),
}

OTHER_PARAMETERS = "OtherParameters"


def fields_of(fetch_action: str) -> tuple[ParamField, ...]:
    known = ACTION_FIELDS.get(fetch_action.upper())
    if known is None:
        return (
            ParamField(OTHER_PARAMETERS, "textarea", help="One Name=Value parameter per line."),
        )
    return known


class SubmitForm(forms.Form):
    """A Fetch of one fetch action, checked by the same rules as the ACI endpoint.

    Field names are the ACI parameter names, so the cleaned data is what a client
    of the endpoint would have sent.
    """

    FetchAction = forms.ChoiceField(label="Fetch action")
    ActionID = forms.CharField(
        required=False, label="ActionID", help_text="Your own reference, shown with the action."
    )
    Priority = forms.CharField(
        required=False,
        label="Priority",
        widget=forms.NumberInput(),
        help_text="Higher runs first (default 0).",
    )

    def __init__(self, *args: Any, fetch_action: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = fetch_action_names()
        self.fields["FetchAction"].choices = [(n, n) for n in names]  # type: ignore[attr-defined]
        self.fetch_action = fetch_action.upper() if fetch_action.upper() in names else ""
        self.fields["FetchAction"].initial = self.fetch_action
        self.fields["FetchAction"].widget = forms.HiddenInput()
        tasks = [("", "(none)")] + [(name, name) for name in queries.known_tasks()]
        self.param_names: list[str] = []
        for spec in fields_of(self.fetch_action) if self.fetch_action else ():
            field: forms.Field
            if spec.kind == "task":
                field = forms.ChoiceField(choices=tasks)
            elif spec.kind == "textarea":
                field = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}))
            elif spec.kind == "number":
                field = forms.CharField(widget=forms.NumberInput())
            elif spec.kind == "checkbox":
                field = forms.BooleanField()
            else:
                field = forms.CharField()
            # Required-ness is the fetch action's to say (with its own message); the
            # browser only gets a hint.
            field.required = False
            field.label = spec.name
            field.help_text = spec.help
            if spec.required:
                field.widget.attrs["required"] = "required"
            field.widget.attrs["data-param"] = "1"
            self.fields[spec.name] = field
            self.param_names.append(spec.name)

    def param_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.param_names]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.fetch_action or self.errors:
            return data
        params = self._params(data)
        if params is None:
            return data
        try:
            priority = read_priority(Params({"Priority": data.get("Priority") or ""}), 0)
        except ParameterError as error:
            self.add_error("Priority", str(error))
            return data
        action_id = (data.get("ActionID") or "").strip()
        if len(action_id) > ACTION_ID_MAX_LENGTH:
            self.add_error(
                "ActionID", f"The ActionID may be at most {ACTION_ID_MAX_LENGTH} characters long."
            )
            return data
        fetch_action = get_fetch_action(self.fetch_action)
        try:
            tasks = fetch_action.validate(Params(params))
        except ParameterError as error:
            field = next((n for n in self.param_names if n.lower() == error.name.lower()), None)
            self.add_error(field, str(error))
            return data
        self.submission = Submission(
            fetch_action=fetch_action.name,
            params=params,
            tasks=tasks,
            priority=priority,
            action_id=action_id,
        )
        return data

    def _params(self, data: dict[str, Any]) -> dict[str, str] | None:
        """The action's parameters as the endpoint would store them; blank ones left out."""
        params: dict[str, str] = {}
        for name in self.param_names:
            value = data.get(name)
            if name == OTHER_PARAMETERS:
                for number, line in enumerate(str(value or "").splitlines(), 1):
                    if not line.strip():
                        continue
                    key, equals, text = line.partition("=")
                    if not equals or not key.strip():
                        self.add_error(name, f"Line {number} is not Name=Value.")
                        return None
                    params[key.strip()] = text.strip()
            elif value is True:
                params[name] = "true"
            elif isinstance(value, str) and value.strip():
                params[name] = value.strip()
        return stored_parameters(Params(params), "FetchAction", "ActionID", "Priority")


@dataclass(frozen=True)
class Submission:
    fetch_action: str
    params: dict[str, str]
    tasks: list[str]
    priority: int
    action_id: str


class BulkCancelForm(forms.Form):
    """The rows ticked for "Cancel selected": whole numbers, at most BULK_LIMIT of them."""

    nothing = "Select at least one queued action to cancel."

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        raw = self.data.getlist("pk") if hasattr(self.data, "getlist") else []
        pks = sorted({int(value) for value in raw if str(value).isdigit()})
        if not pks:
            raise forms.ValidationError(self.nothing)
        if len(pks) > queries.BULK_LIMIT:
            raise forms.ValidationError(f"Select at most {queries.BULK_LIMIT} actions at a time.")
        data["pks"] = pks
        return data


class BulkRetryForm(BulkCancelForm):
    """The rows ticked for "Retry selected"."""

    nothing = "Select at least one ended action to retry."
