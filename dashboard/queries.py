"""Reads that feed the dashboard's templates."""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Concat
from django.utils import timezone

from connector import queue, writers
from connector.history import HistoryStep, action_history
from connector.models import (
    FINAL_STATUSES,
    Action,
    ActionLogLine,
    ActionTask,
    AuditEntry,
    FetchTask,
    RunMilliseconds,
    Status,
    WorkerProcess,
)
from connector.tokens import InvalidToken, canonical_token
from dashboard.charts import MinuteChart, queue_charts
from dashboard.outcome_history import History, queue_histories

#: What a row of the list shows; the detail page loads the whole action.
ROW_FIELDS = (
    "token", "queue", "fetch_action", "tasks", "action_id", "status", "progress", "progress_basis",
    "progress_total", "stage", "queued_at", "started_at", "finished_at", "stop_requested",
    "priority", "counts", "writes",
)  # fmt: skip


def with_waits(actions: list[Action]) -> list[Action]:
    """Give each action ``waits``: the held tasks a queued writer waits for, and
    their holders (one writer per task), in one query for all of them."""
    waits = writers.waits([a.pk for a in actions if a.status == Status.QUEUED and a.writes])
    for action in actions:
        action.waits = waits.get(action.pk, [])  # type: ignore[attr-defined]
    return actions


PAGE_SIZE = 50
LOG_TAIL = 100
IDENTIFIERS_SHOWN = 200

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- Overview ---------------------------------------------------------------------


#: The overview counts the final actions queued within this window (Queued and
#: Processing ones whenever they were queued).
RECENT_WINDOW = timedelta(hours=24)


@dataclass
class QueueCard:
    name: str
    paused: bool
    #: Queued and Processing: all of them; final statuses: those queued since ``since``.
    counts: dict[str, int]
    since: datetime
    maximum_threads: int
    busy: int
    oldest_queued_at: datetime | None
    oldest_queued_age: timedelta | None
    workers: list[WorkerProcess] = field(default_factory=list)
    chart: MinuteChart | None = None
    #: The last hour's endings (``dashboard.outcome_history``).
    endings: History | None = None


def alive_workers(*, now: datetime | None = None) -> list[WorkerProcess]:
    """Workers that sent a heartbeat within one lease."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.CONNECTOR_LEASE_SECONDS)
    return list(
        WorkerProcess.objects.filter(heartbeat_at__gte=since, stopping=False).order_by("id")
    )


def card_counts(name: str, *, since: datetime) -> dict[str, int]:
    """A queue's actions by status: every unfinished one, and the final ones queued since ``since``.

    Counting every final action reads as many index entries as the table has
    rows (over 60 ms a card with a million actions, bench/dashboard.py); a
    window reads a range of the (status, queued_at) index and stays small
    however long the history kept is.
    """
    actions = Action.objects.filter(queue=name)
    counts = {}
    for status in Status:
        rows = actions.filter(status=status)
        if status in FINAL_STATUSES:
            rows = rows.filter(queued_at__gte=since)
        counts[status.value] = rows.count()
    return counts


def queue_overview(
    *, now: datetime | None = None, names: Iterable[str] | None = None
) -> list[QueueCard]:
    """A card per queue (only those of ``names``, in the configured order, if given)."""
    now = now or timezone.now()
    workers = alive_workers(now=now)
    shown = queue.queue_names()
    if names is not None:
        wanted = set(names)
        shown = [name for name in shown if name in wanted]
    charts = queue_charts(shown, now=now) if shown else {}
    endings = queue_histories(shown, now=now) if shown else {}
    # Whole minutes, so the list that a count links to (queued_from, to the
    # minute) shows exactly the actions counted.
    since = (now - RECENT_WINDOW).replace(second=0, microsecond=0)
    cards = []
    for name in shown:
        oldest = queue.oldest_queued_at(name)
        serving = [worker for worker in workers if name in (worker.threads or {})]
        cards.append(
            QueueCard(
                name=name,
                paused=queue.is_paused(name),
                counts=card_counts(name, since=since),
                since=since,
                maximum_threads=queue.maximum_threads(name),
                busy=sum(int((worker.running or {}).get(name, 0)) for worker in serving),
                oldest_queued_at=oldest,
                oldest_queued_age=(now - oldest) if oldest else None,
                workers=serving,
                chart=charts[name],
                endings=endings[name],
            )
        )
    return cards


# --- The list ---------------------------------------------------------------------


@dataclass(frozen=True)
class ActionFilters:
    status: str = ""
    fetch_action: str = ""
    task: str = ""
    queue: str = ""
    queued_from: datetime | None = None
    queued_to: datetime | None = None
    finished_from: datetime | None = None
    finished_to: datetime | None = None
    search: str = ""


@dataclass(frozen=True)
class Sort:
    """An order of the list: its key columns, then the id, all the same direction."""

    name: str
    label: str
    fields: tuple[str, ...]
    #: Only rows where the first key is set are listed (an unstarted action has no
    #: start time to sort by).
    needs: str = ""

    def order_by(self, *, descending: bool) -> list[str]:
        sign = "-" if descending else ""
        return [f"{sign}{name}" for name in (*self.fields, "id")]


#: The list's sorts, by the name its ``sort`` parameter gives ("-" first: descending).
SORTS = {
    sort.name: sort
    for sort in (
        Sort("queued", "Queued", ("queued_at",)),
        Sort("started", "Started", ("started_at",), needs="started_at"),
        Sort("priority", "Priority", ("priority", "queued_at")),
        Sort("duration", "Duration", ("duration",), needs="duration"),
    )
}
DEFAULT_SORT = "-queued"


def read_sort(text: str) -> tuple[Sort, bool] | None:
    """The sort and whether it is descending, or None for a name this list does not know."""
    descending = text.startswith("-")
    return (SORTS[text.lstrip("-")], descending) if text.lstrip("-") in SORTS else None


@dataclass(frozen=True)
class Cursor:
    """The position after the last row of a page: newest first by (queued_at, id)."""

    queued_at: datetime
    pk: int

    def encode(self) -> str:
        micros = (self.queued_at - _EPOCH) // timedelta(microseconds=1)
        return f"{micros}_{self.pk}"

    # Each condition starts with a plain range on queued_at, so SQLite walks the
    # queued_at index from the cursor and stops after a page. Written only as
    # "queued_at < t OR (queued_at = t AND id < pk)", SQLite searched both halves
    # and sorted everything older: half a second for page 2 of 1,000,000 actions
    # (bench/dashboard.py).
    def older(self, *, inclusive: bool = False) -> Q:
        """Rows after this position, newest first (``inclusive``: and the cursor's own row)."""
        same_time = Q(pk__lte=self.pk) if inclusive else Q(pk__lt=self.pk)
        return Q(queued_at__lte=self.queued_at) & (Q(queued_at__lt=self.queued_at) | same_time)

    def newer(self) -> Q:
        """Rows before this position, newest first."""
        return Q(queued_at__gte=self.queued_at) & (
            Q(queued_at__gt=self.queued_at) | Q(pk__gt=self.pk)
        )

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """The cursor, or None for anything this code did not write."""
        micros, _, pk = text.partition("_")
        try:
            return cls(_EPOCH + timedelta(microseconds=int(micros)), int(pk))
        except (ValueError, OverflowError):
            return None


@dataclass(frozen=True)
class Position:
    """A row's place in a sort: its key values and its id (the list's Older/Newer cursors)."""

    values: tuple[Any, ...]
    pk: int

    @classmethod
    def of(cls, action: Action, sort: Sort) -> Position:
        return cls(tuple(getattr(action, name) for name in sort.fields), action.pk)

    def encode(self) -> str:
        return "_".join([*(_encode_value(value) for value in self.values), str(self.pk)])

    @classmethod
    def decode(cls, text: str, sort: Sort) -> Position | None:
        """The position, or None for anything this code did not write for ``sort``."""
        parts = text.split("_")
        if len(parts) != len(sort.fields) + 1:
            return None
        try:
            values = tuple(
                _decode_value(part, name) for part, name in zip(parts, sort.fields, strict=False)
            )
            return cls(values, int(parts[-1]))
        except (ValueError, OverflowError):
            return None

    def beyond(self, sort: Sort, *, descending: bool) -> Q:
        """Rows after this one in the order (``descending`` as shown, or its reverse).

        Each level starts with a plain range on its key (``k <= v AND (k < v OR
        ...)``), so the database walks the sort's index from the position and stops
        after a page; written as a bare OR, SQLite searched both halves and sorted.
        """
        keys = [*sort.fields, "pk"]
        values = [*self.values, self.pk]
        before, at_or_before = ("lt", "lte") if descending else ("gt", "gte")
        condition = Q(**{f"{keys[-1]}__{before}": values[-1]})
        for key, value in zip(reversed(keys[:-1]), reversed(values[:-1]), strict=True):
            condition = Q(**{f"{key}__{at_or_before}": value}) & (
                Q(**{f"{key}__{before}": value}) | (Q(**{key: value}) & condition)
            )
        return condition


def _encode_value(value: Any) -> str:
    if isinstance(value, datetime):
        return str((value - _EPOCH) // timedelta(microseconds=1))
    return str(int(value))


def sortable(actions: QuerySet[Action]) -> QuerySet[Action]:
    """``actions`` with the run time the duration sort orders by (index action_duration)."""
    return actions.annotate(duration=RunMilliseconds())


def _decode_value(text: str, name: str) -> Any:
    number = int(text)
    if name.endswith("_at"):
        return _EPOCH + timedelta(microseconds=number)
    return number


@dataclass
class ActionPage:
    actions: list[Action]
    next_cursor: Cursor | None
    #: The cursors of the "Older" and "Newer" links in the page's sort (None: no such page).
    older: Position | None = None
    newer: Position | None = None


#: A filter that matches at most this many actions is read from its own index and
#: sorted; one that matches more walks the sort's index and checks each row, which
#: finds a page of common matches long before reading this many.
FEW_MATCHES = 5_000

#: Parameter text and parts of an ActionID are searched among this many newest
#: actions (a substring cannot use an index); whole tokens and ActionIDs everywhere.
SEARCH_WINDOW = 20_000


def _narrowed(rows: QuerySet[Any], probe: Q) -> Q:
    """``probe`` (a per-row check) when ``rows`` (the matching ids) are many, else "id in rows".

    A filter that matches nothing (task=NOSUCH) then costs one index look-up instead
    of a walk over every action.
    """
    if rows.order_by()[: FEW_MATCHES + 1].count() > FEW_MATCHES:
        return probe
    return Q(pk__in=rows)


def filtered_actions(filters: ActionFilters, *, sort: Sort | None = None) -> QuerySet[Action]:
    """The matching actions; ``sort`` (when not by queue time) chooses how a status is read."""
    actions = Action.objects.all()
    if filters.status and sort is not None and sort.name != "queued":
        # The status index orders by queue time: for another sort, a common status
        # (9 in 10 actions Finished) is better checked row by row along the sort's
        # index, which SQLite does only if the condition cannot use the status
        # index; a rare one (Queued) is read from it and sorted.
        actions = actions.alias(status_text=Concat("status", Value(""))).filter(
            _narrowed(
                Action.objects.filter(status=filters.status).values("pk"),
                Q(status_text=filters.status),
            )
        )
    elif filters.status:
        actions = actions.filter(status=filters.status)
    if filters.fetch_action:
        actions = actions.filter(fetch_action=filters.fetch_action.upper())
    if filters.task:
        task = filters.task.upper()
        # One whole task name, from the action's task rows (indexed by task).
        actions = actions.filter(
            _narrowed(
                ActionTask.objects.filter(task=task).values("action_id"),
                Q(Exists(ActionTask.objects.filter(action=OuterRef("pk"), task=task))),
            )
        )
    if filters.queue:
        # A queue with few actions: read from the claim index (queue, ...) and sorted.
        # One with many: checked row by row along the sort's index; as plain
        # "queue = ?" SQLite would read all of them from the claim index and sort.
        # (An index of its own, (queue, queued_at), made SQLite read the overview's
        # per-status counts through it: 500 ms at 1M.)
        actions = actions.alias(queue_text=Concat("queue", Value(""))).filter(
            _narrowed(
                Action.objects.filter(queue=filters.queue).values("pk"),
                Q(queue_text=filters.queue),
            )
        )
    if filters.queued_from:
        actions = actions.filter(queued_at__gte=filters.queued_from)
    if filters.queued_to:
        actions = actions.filter(queued_at__lt=filters.queued_to)
    if filters.finished_from or filters.finished_to:
        actions = actions.filter(_finished_between(filters.finished_from, filters.finished_to))
    if filters.search:
        # Its own query: one index per part of the search (at most SEARCH_WINDOW rows
        # found), not a walk of the list's order checking every row.
        actions = actions.filter(pk__in=Action.objects.filter(_search(filters.search)).values("pk"))
    return actions


def _finished_between(start: datetime | None, end: datetime | None) -> Q:
    """Ended at or after ``start`` and before ``end`` (the history's bars link here).

    A range that holds few actions (a minute's bar) is read from the finished_at
    index; one that holds many (a day's) is checked row by row along the list's
    sort. An action is queued before it ends, so "queued before ``end``" is true
    of every match and lets the queue-time walk start at ``end``, not at the newest.
    """
    bounds = Q()
    if start is not None:
        bounds &= Q(finished_at__gte=start)
    if end is not None:
        bounds &= Q(finished_at__lt=end)
    probe = bounds & Q(queued_at__lt=end) if end is not None else bounds
    return _narrowed(Action.objects.filter(bounds).values("pk"), probe)


def search_horizon() -> datetime | None:
    """The queue time of the SEARCH_WINDOW-th newest action (None: there are fewer)."""
    found = Action.objects.order_by("-queued_at", "-id").values_list("queued_at", flat=True)[
        SEARCH_WINDOW - 1 : SEARCH_WINDOW
    ]
    return next(iter(found), None)


def _search(text: str) -> Q:
    """A token or a whole ActionID anywhere; a part of an ActionID or of the parameters'
    text among the newest SEARCH_WINDOW actions."""
    text = text.strip()
    part = Q(action_id__icontains=text)
    # The parameters are searched as stored JSON text, where quotes, backslashes and
    # (on SQLite) non-ASCII letters are escaped: look for those spellings too.
    for spelling in {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}:
        part |= Q(params__icontains=spelling)
    horizon = search_horizon()
    if horizon is not None:
        part &= Q(queued_at__gte=horizon)
    found = Q(action_id=text) | part
    with suppress(InvalidToken):
        found |= Q(token=canonical_token(text))
    return found


def action_page(
    filters: ActionFilters,
    *,
    after: Cursor | Position | None = None,
    before: Position | None = None,
    sort: str = DEFAULT_SORT,
    size: int | None = None,
) -> ActionPage:
    """One page in ``sort``'s order; ``after`` (older) or ``before`` (newer) a row keep
    pages stable while actions arrive."""
    size = size or PAGE_SIZE
    chosen, descending = read_sort(sort) or read_sort(DEFAULT_SORT)  # type: ignore[misc]
    actions = filtered_actions(filters, sort=chosen)
    if chosen.name == "duration":
        actions = sortable(actions)
    if chosen.needs:
        actions = actions.filter(**{f"{chosen.needs}__isnull": False})
    if isinstance(after, Cursor):
        after = Position((after.queued_at,), after.pk) if chosen.name == "queued" else None
    if before is not None:
        rows = list(
            actions.filter(before.beyond(chosen, descending=not descending))
            .order_by(*chosen.order_by(descending=not descending))
            .only(*ROW_FIELDS)[: size + 1]
        )
        has_newer = len(rows) > size
        rows = rows[:size][::-1]
        has_older = bool(rows)
    else:
        if after is not None:
            actions = actions.filter(after.beyond(chosen, descending=descending))
        rows = list(
            actions.order_by(*chosen.order_by(descending=descending)).only(*ROW_FIELDS)[: size + 1]
        )
        has_older = len(rows) > size
        rows = rows[:size]
        has_newer = after is not None and bool(rows)
    rows = with_waits(rows)
    last = rows[-1] if has_older else None
    return ActionPage(
        rows,
        Cursor(last.queued_at, last.pk)
        if last and chosen.name == "queued" and descending
        else None,
        older=Position.of(last, chosen) if last else None,
        newer=Position.of(rows[0], chosen) if has_newer else None,
    )


#: "N new" stops counting here: the number only has to say "a lot".
NEWER_COUNT_LIMIT = 1000


def count_newer(filters: ActionFilters, *, than: Cursor | None) -> int:
    """Matching actions newer than a page's first row (all matching if it had none)."""
    actions = filtered_actions(filters)
    if than is not None:
        actions = actions.filter(than.newer())
    return actions.order_by()[: NEWER_COUNT_LIMIT + 1].count()


#: A final status's count stops here ("1,000+"): counting every Finished action of a
#: million reads a million index entries.
STATUS_COUNT_LIMIT = 1000


@dataclass(frozen=True)
class FilterCount:
    value: str
    count: int
    #: The count stopped at its limit: there are at least this many.
    capped: bool


def status_counts() -> list[FilterCount]:
    """Actions by status: Queued and Processing exactly (few, a short index range),
    the final ones up to STATUS_COUNT_LIMIT."""
    found = []
    for status in Status:
        rows = Action.objects.filter(status=status).order_by()
        if status in FINAL_STATUSES:
            count = rows[: STATUS_COUNT_LIMIT + 1].count()
            found.append(
                FilterCount(
                    status.value, min(count, STATUS_COUNT_LIMIT), count > STATUS_COUNT_LIMIT
                )
            )
        else:
            found.append(FilterCount(status.value, rows.count(), False))
    return found


def queue_counts() -> list[FilterCount]:
    """Each queue's actions, up to STATUS_COUNT_LIMIT."""
    found = []
    for name in queue.queue_names():
        count = Action.objects.filter(queue=name).order_by()[: STATUS_COUNT_LIMIT + 1].count()
        found.append(FilterCount(name, min(count, STATUS_COUNT_LIMIT), count > STATUS_COUNT_LIMIT))
    return found


def actions_for_rows(pks: list[int]) -> list[Action]:
    return with_waits(list(Action.objects.filter(pk__in=pks).only(*ROW_FIELDS).order_by("pk")))


def queues_of(pks: list[int]) -> set[str]:
    """The queues these actions are in (for the overview's live cards)."""
    return set(Action.objects.filter(pk__in=pks).values_list("queue", flat=True).distinct())


def row_action(pk: int) -> Action:
    return with_waits([Action.objects.only(*ROW_FIELDS).get(pk=pk)])[0]


def known_tasks() -> list[str]:
    return list(FetchTask.objects.values_list("name", flat=True))


def status_values() -> list[str]:
    return [status.value for status in Status]


# --- The detail page -----------------------------------------------------------------


#: The most audit entries the detail page shows of one action (newest first).
ACTION_AUDIT_SHOWN = 100


@dataclass
class ActionDetail:
    action: Action
    log_lines: list[ActionLogLine]
    identifiers: list[dict[str, str]]
    identifiers_total: int
    successes: list[str]
    failures: list[dict[str, str]]
    history: list[HistoryStep] = field(default_factory=list)
    audit_entries: list[AuditEntry] = field(default_factory=list)
    #: The tasks the action writes that a writer holds now: a copy (Retry) would
    #: wait for these holders (one writer per task).
    holders: list[writers.Wait] = field(default_factory=list)


def action_audit(pk: int) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action_id=pk).order_by("-id")[:ACTION_AUDIT_SHOWN])


def action_detail(pk: int) -> ActionDetail:
    """Raises Action.DoesNotExist for an unknown pk."""
    (action,) = with_waits([Action.objects.get(pk=pk)])
    tail = list(ActionLogLine.objects.filter(action_id=pk).order_by("-id")[:LOG_TAIL])
    tail.reverse()
    result = action.result if isinstance(action.result, dict) else {}
    identifiers = _as_list(result.get("identifiers"))
    return ActionDetail(
        action=action,
        log_lines=tail,
        identifiers=[_item(item) for item in identifiers[:IDENTIFIERS_SHOWN]],
        identifiers_total=len(identifiers),
        successes=[str(item) for item in _as_list(result.get("success"))],
        failures=[_item(item) for item in _as_list(result.get("failed"))],
        history=action_history(action, now=timezone.now()),
        audit_entries=action_audit(pk),
        holders=writers.holders([task for task in action.writes.split(",") if task]),
    )


def _item(item: Any) -> dict[str, str]:
    """An identifier or a failure as the template shows it: a dict of texts."""
    if isinstance(item, dict):
        return {str(key): str(value) for key, value in item.items()}
    return {"identifier": str(item)}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


# --- Bulk cancel -----------------------------------------------------------------------

#: The most actions one bulk cancel handles: each goes through the queue on its own.
BULK_LIMIT = 10_000


def queued_matching(filters: ActionFilters, *, upto: Cursor | None = None) -> QuerySet[Action]:
    """Queued actions matching the filters, at or older than ``upto`` when given.

    ``upto`` is the newest one the operator was shown the count of, so an action
    queued after they confirmed is not cancelled with the others.
    """
    actions = filtered_actions(filters).filter(status=Status.QUEUED)
    if upto is not None:
        actions = actions.filter(upto.older(inclusive=True))
    return actions


def newest_queued_matching(filters: ActionFilters) -> Cursor | None:
    newest = queued_matching(filters).order_by("-queued_at", "-id").only("queued_at").first()
    return Cursor(newest.queued_at, newest.pk) if newest else None


def count_queued_matching(filters: ActionFilters, *, upto: Cursor | None = None) -> int:
    return queued_matching(filters, upto=upto).order_by().count()


def queued_matching_pks(filters: ActionFilters, *, upto: Cursor | None) -> list[int]:
    actions = queued_matching(filters, upto=upto).order_by("queued_at", "id")
    return list(actions.values_list("pk", flat=True)[:BULK_LIMIT])


# --- Bulk retry ------------------------------------------------------------------------


def ended_matching(filters: ActionFilters, *, upto: Cursor | None = None) -> QuerySet[Action]:
    """Ended actions matching the filters, at or older than ``upto`` when given (the
    newest one the operator was shown the count of)."""
    actions = filtered_actions(filters).filter(status__in=FINAL_STATUSES)
    if upto is not None:
        actions = actions.filter(upto.older(inclusive=True))
    return actions


def newest_ended_matching(filters: ActionFilters) -> Cursor | None:
    newest = ended_matching(filters).order_by("-queued_at", "-id").only("queued_at").first()
    return Cursor(newest.queued_at, newest.pk) if newest else None


def count_ended_matching(filters: ActionFilters, *, upto: Cursor | None = None) -> int:
    """Up to BULK_LIMIT + 1: more than one bulk retry takes is "more than BULK_LIMIT"."""
    return ended_matching(filters, upto=upto).order_by()[: BULK_LIMIT + 1].count()


def ended_matching_pks(filters: ActionFilters, *, upto: Cursor | None) -> list[int]:
    """The newest BULK_LIMIT of them, oldest first (copies are queued in the original order)."""
    actions = ended_matching(filters, upto=upto).order_by("-queued_at", "-id")
    return list(reversed(actions.values_list("pk", flat=True)[:BULK_LIMIT]))


# --- The audit page -----------------------------------------------------------------------

AUDIT_PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditFilters:
    verb: str = ""
    outcome: str = ""
    user: str = ""
    via: str = ""
    client: str = ""
    token: str = ""


@dataclass
class AuditPage:
    entries: list[AuditEntry]
    #: The id after which the next (older) page starts; None on the last page.
    next_cursor: int | None


def filtered_audit(filters: AuditFilters) -> QuerySet[AuditEntry]:
    """Exact matches: each filter has its own index (see AuditEntry.Meta)."""
    entries = AuditEntry.objects.all()
    for name in ("verb", "outcome", "user", "via", "client"):
        value = getattr(filters, name)
        if value:
            entries = entries.filter(**{name: value})
    if filters.token:
        # A token may be pasted in any spelling a client uses; a text that is no
        # token of ours is still looked for as it is (an entry keeps what it was given).
        try:
            token = canonical_token(filters.token)
        except InvalidToken:
            token = filters.token
        entries = entries.filter(token=token)
    return entries


def audit_page(
    filters: AuditFilters, *, after: int | None = None, size: int | None = None
) -> AuditPage:
    """One page, newest first by id; ``after`` (an id) keeps pages stable as entries arrive."""
    size = size or AUDIT_PAGE_SIZE
    entries = filtered_audit(filters)
    if after is not None:
        entries = entries.filter(pk__lt=after)
    rows = list(entries.order_by("-id")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return AuditPage(rows, rows[-1].pk if more else None)
