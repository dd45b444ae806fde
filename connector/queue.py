"""The queue: the only code that changes an action's status.

Every change is a guarded update (``UPDATE ... WHERE status = <expected>``), so
of two racing changes (a Cancel and a claim, a Stop and a finish) exactly one
wins and the other gets a clear error. Wake-ups and change notifications are
sent from ``transaction.on_commit``: the database row is the queue of record,
a message is only a hint.

Recovery policy for actions whose worker died (its lease expired without a
heartbeat): an action with a pending Stop becomes Stopped; an action claimed
fewer than ``CONNECTOR_MAX_ATTEMPTS`` times is queued again (keeping its place
by priority and queue time); otherwise it becomes Error, saying so. Only
this spends an attempt: an action its worker interrupted for a graceful
shutdown is queued again with the attempt given back (``release_actions``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Min
from django.utils import timezone

from connector import audit, signals, wakeups, writers
from connector.audit import Who
from connector.group_commit import GroupCommit
from connector.logs import action_context
from connector.models import (
    Action,
    ActionLogLine,
    ActionTask,
    ActionTransition,
    AuditVerb,
    AuditVia,
    QueueState,
    Status,
    TaskHold,
    TaskWrite,
    WorkerProcess,
)
from connector.prepared import PreparedInsert, PreparedRead
from connector.tokens import new_token

logger = logging.getLogger(__name__)


class QueueError(Exception):
    """A change the queue refused; the message says why."""


class UnknownQueue(QueueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"There is no queue named {name!r}")
        self.name = name


class ActionNotQueued(QueueError):
    def __init__(self, status: str) -> None:
        super().__init__(f"The action is {status}, not Queued")
        self.status = status


class ActionNotRunning(QueueError):
    def __init__(self, status: str) -> None:
        super().__init__(f"The action is {status}, not Processing")
        self.status = status


class QueueFull(QueueError):
    """The queue holds CONNECTOR_MAX_QUEUED_ACTIONS queued actions already (issue 6)."""

    def __init__(self, queue: str, limit: int) -> None:
        super().__init__(f"The {queue} queue already holds {limit} queued actions")
        self.queue = queue
        self.limit = limit


def queue_names() -> list[str]:
    return list(settings.CONNECTOR_QUEUES)


def resolve_queue(name: str) -> str:
    """The configured queue of that name (names are case-insensitive)."""
    wanted = name.strip().lower()
    for queue in settings.CONNECTOR_QUEUES:
        if queue.lower() == wanted:
            return queue
    raise UnknownQueue(name)


def maximum_threads(queue: str) -> int:
    return int(settings.CONNECTOR_QUEUES[queue]["MaximumThreads"])


def _lease_end(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.CONNECTOR_LEASE_SECONDS)


def _db_time(value: datetime) -> Any:
    """A time for raw SQL, as the ORM stores it (naive UTC on SQLite)."""
    return connection.ops.adapt_datetimefield_value(value)


def _db_json(value: Any) -> Any:
    """A value for a JSON column in raw SQL, as the ORM stores it."""
    return connection.ops.adapt_json_value(value, None)


def _changed(*pks: int) -> None:
    """Tell listeners (the dashboard) after the commit that these actions changed."""
    if pks:
        transaction.on_commit(
            lambda: signals.action_changed.send(sender=Action, pks=list(pks)), robust=True
        )


# --- Submitting ----------------------------------------------------------------


def submit_action(
    *,
    fetch_action: str,
    params: dict[str, str],
    tasks: Iterable[str] = (),
    priority: int = 0,
    queue: str = "fetch",
    action_id: str = "",
    submitted_by: str = "",
    submitted_from: str = "",
    via: AuditVia = AuditVia.ENDPOINT,
    token_host: str = "localhost",
    token_port: int = 8000,
) -> Action:
    """Store a new Queued action and wake a worker once it is committed."""
    return _queue_new(
        fetch_action=fetch_action,
        params=params,
        tasks=tasks,
        priority=priority,
        queue=queue,
        action_id=action_id,
        who=Who(via=via, user=submitted_by, client=submitted_from),
        token_host=token_host,
        token_port=token_port,
        verb=AuditVerb.SUBMIT,
        detail="",
    )


def _queue_new(
    *,
    fetch_action: str,
    params: dict[str, str],
    tasks: Iterable[str],
    priority: int,
    queue: str,
    action_id: str,
    who: Who,
    token_host: str,
    token_port: int,
    verb: AuditVerb,
    detail: str,
) -> Action:
    """The one place a new action is stored (submit and retry); QueueFull when the
    queue already holds its limit of queued actions.

    An action that writes its tasks gets a ``TaskWrite`` row per task: it will
    hold them while it runs, and wait while another writer holds one. On
    SQLite, submissions that come together share one commit (``GroupCommit``).
    """
    queue = resolve_queue(queue)
    names = [task.upper() for task in tasks]
    written = writers.tasks_written(fetch_action, names)

    def store() -> Action:
        _check_room(queue)
        action = _NEW_ACTIONS.save(
            Action(
                token=new_token(host=token_host, port=token_port, queue=queue),
                queue=queue,
                fetch_action=fetch_action.upper(),
                params=params,
                tasks=",".join(names),
                writes=",".join(written),
                action_id=action_id,
                priority=priority,
                status=Status.QUEUED,
                queued_at=timezone.now(),
                submitted_by=who.user,
                submitted_from=who.client,
            )
        )
        for task in written:
            _NEW_TASK_WRITES.add(action_id=action.pk, task=task)
        ActionTask.record(action)
        audit.record_done(verb=verb, who=who, action=action, detail=detail, at=action.queued_at)
        transaction.on_commit(lambda: wakeups.wake_queue(queue), robust=True)
        _changed(action.pk)
        return action

    return _SHARED_COMMITS.run(store)


#: The inserts of a new action, compiled once (connector/prepared.py): most of a
#: Fetch's CPU was Django compiling them (bench/README.md, "Endpoint CPU per request").
_NEW_ACTIONS = PreparedInsert(Action)
_NEW_TASK_WRITES = PreparedInsert(TaskWrite)
#: The endpoint's writes (new actions, Cancel, Stop) that come together are
#: committed together (connector/group_commit.py).
_SHARED_COMMITS = GroupCommit()


def _check_room(queue: str) -> None:
    """QueueFull when ``queue`` holds CONNECTOR_MAX_QUEUED_ACTIONS queued actions (0: no limit).

    Counted on the claim index (queue, status, ...). On SQLite the IMMEDIATE
    transaction makes count and insert one step; on PostgreSQL concurrent
    submissions can each see room for one more, so the queue may exceed the
    limit by at most the number of submissions in flight at that moment.
    """
    limit = settings.CONNECTOR_MAX_QUEUED_ACTIONS
    if limit and Action.objects.filter(queue=queue, status=Status.QUEUED).count() >= limit:
        raise QueueFull(queue, limit)


def duplicate_action(
    *,
    pk: int,
    submitted_by: str = "",
    submitted_from: str = "",
    via: AuditVia = AuditVia.ENDPOINT,
    token_host: str,
    token_port: int,
) -> Action:
    """Queue a new action with the parameters of an existing one."""
    original = Action.objects.get(pk=pk)
    return _queue_new(
        fetch_action=original.fetch_action,
        params=dict(original.params),
        tasks=[task for task in original.tasks.split(",") if task],
        priority=original.priority,
        queue=original.queue,
        action_id=original.action_id,
        who=Who(via=via, user=submitted_by, client=submitted_from),
        token_host=token_host,
        token_port=token_port,
        verb=AuditVerb.RETRY,
        detail=f"copy of action {original.pk} ({original.token})",
    )


# --- Changes asked for by clients ------------------------------------------------


def _current_status(pk: int) -> str:
    return Action.objects.filter(pk=pk).values_list("status", flat=True).get()


def _refused(*, verb: AuditVerb, who: Who, pk: int, error: QueueError, detail: str = "") -> None:
    """Record a change the queue's guard refused, in a transaction of its own.

    Called after the change's transaction ended, so that the error raised next
    cannot roll the record back with it.
    """
    with transaction.atomic():
        audit.record_refused(verb=verb, who=who, action_pk=pk, reason=str(error), detail=detail)


def cancel_action(
    *,
    pk: int,
    cancelled_by: str = "",
    cancelled_from: str = "",
    via: AuditVia = AuditVia.ENDPOINT,
    detail: str = "",
) -> None:
    """A Queued action becomes Cancelled and never runs; any other is refused."""
    who = Who(via=via, user=cancelled_by, client=cancelled_from)
    now = timezone.now()

    def cancel() -> str | None:
        values = {
            "status": Status.CANCELLED, "finished_at": _db_time(now),
            "cancelled_by": cancelled_by, "cancelled_from": cancelled_from,
        }  # fmt: skip
        changed = _change_if(pk, was=Status.QUEUED, returning=("token", "queue"), values=values)
        if changed is None:
            return _current_status(pk)
        action = Action(pk=pk, token=changed[0], queue=changed[1])
        audit.record_done(verb=AuditVerb.CANCEL, who=who, action=action, detail=detail, at=now)
        _changed(pk)
        return None

    if (status := _SHARED_COMMITS.run(cancel)) is not None:
        refusal = ActionNotQueued(status)
        _refused(verb=AuditVerb.CANCEL, who=who, pk=pk, error=refusal, detail=detail)
        raise refusal


def request_stop(
    *,
    pk: int,
    stopped_by: str = "",
    stopped_from: str = "",
    via: AuditVia = AuditVia.ENDPOINT,
) -> None:
    """Ask the worker of a Processing action to stop it at its next checkpoint.

    Once this returns, the action ends Stopped: a worker that completes the
    action before it reaches a checkpoint records it as Stopped too.
    """
    who = Who(via=via, user=stopped_by, client=stopped_from)
    now = timezone.now()

    def stop() -> str | None:
        values = {
            "stop_requested": True, "stop_requested_at": _db_time(now),
            "stopped_by": stopped_by, "stopped_from": stopped_from,
        }  # fmt: skip
        changed = _change_if(
            pk, was=Status.PROCESSING, returning=("token", "queue", "worker"), values=values
        )
        if changed is None:
            return _current_status(pk)
        token, queue_name, worker = changed
        action = Action(pk=pk, token=token, queue=queue_name, worker=worker)
        audit.record_done(verb=AuditVerb.STOP, who=who, action=action, at=now)
        transaction.on_commit(
            lambda: wakeups.tell_worker_to_stop(worker=worker, pk=pk), robust=True
        )
        _changed(pk)
        return None

    if (status := _SHARED_COMMITS.run(stop)) is not None:
        refusal = ActionNotRunning(status)
        _refused(verb=AuditVerb.STOP, who=who, pk=pk, error=refusal)
        raise refusal


def _change_if(
    pk: int, *, was: str, returning: tuple[str, ...], values: dict[str, Any]
) -> tuple[Any, ...] | None:
    """Set ``values`` (columns, ready for raw SQL) on the action if its status is
    ``was``, in one guarded statement; the ``returning`` columns of the changed
    row, or None.

    One statement instead of the ORM's update and a read of the row after it:
    Cancel and Stop are the endpoint's other writes (bench/README.md, "Endpoint
    CPU per request").
    """
    sql = _change_sql(connection.vendor, tuple(values), returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values.values(), pk, was])
        row = cursor.fetchone()
    return tuple(row) if row is not None else None


@functools.cache
def _change_sql(vendor: str, columns: tuple[str, ...], returning: tuple[str, ...]) -> str:
    """``_change_if``'s statement, made once per database and columns."""
    quote = connection.ops.quote_name
    return (
        f"UPDATE {quote(Action._meta.db_table)} SET "  # noqa: S608 - names only
        + ", ".join(f"{quote(name)} = %s" for name in columns)
        + f" WHERE {quote('id')} = %s AND {quote('status')} = %s"
        + f" RETURNING {', '.join(quote(name) for name in returning)}"
    )


def change_priority(
    *,
    pk: int,
    priority: int,
    changed_by: str = "",
    changed_from: str = "",
    via: AuditVia = AuditVia.ENDPOINT,
) -> None:
    """Only a Queued action can change its place in the queue."""
    who = Who(via=via, user=changed_by, client=changed_from)
    with transaction.atomic():
        # Locked (PostgreSQL; SQLite's write transaction does the same) so the
        # old priority recorded is the one this update replaces.
        before = Action.objects.select_for_update().only("token", "queue", "priority").get(pk=pk)
        updated = Action.objects.filter(pk=pk, status=Status.QUEUED).update(priority=priority)
        if updated:
            detail = f"priority {before.priority} -> {priority}"
            audit.record_done(verb=AuditVerb.PRIORITY, who=who, action=before, detail=detail)
            _changed(pk)
        else:
            refusal = ActionNotQueued(_current_status(pk))
    if not updated:
        _refused(
            verb=AuditVerb.PRIORITY, who=who, pk=pk, error=refusal, detail=f"priority {priority}"
        )
        raise refusal


def set_paused(
    *,
    queue: str,
    paused: bool,
    changed_by: str = "",
    changed_from: str = "",
    via: AuditVia = AuditVia.ENDPOINT,
) -> None:
    """Pause stops claims of the queue (running actions go on); Resume allows them."""
    queue = resolve_queue(queue)
    who = Who(via=via, user=changed_by, client=changed_from)
    now = timezone.now()
    with transaction.atomic():
        was_paused = is_paused(queue)
        QueueState.objects.update_or_create(
            name=queue,
            defaults={"paused": paused, "changed_at": now, "changed_by": changed_by},
        )
        audit.record_done(
            verb=AuditVerb.PAUSE if paused else AuditVerb.RESUME,
            who=who,
            queue=queue,
            detail=("already paused" if paused else "was not paused")
            if was_paused == paused
            else "",
            at=now,
        )
        if not paused:
            transaction.on_commit(lambda: wakeups.wake_workers(queue))


def is_paused(queue: str) -> bool:
    return bool(_PAUSED.rows(queue=queue))


#: ``is_paused``'s query, compiled once (connector/prepared.py): SQLite's claims ask it.
_PAUSED: PreparedRead[QueueState] = PreparedRead(
    lambda queue: QueueState.objects.filter(name=queue, paused=True).values_list("pk")[:1]
)


# --- What workers do -------------------------------------------------------------


# One statement: choose, guard and take. Table names come from the models.
# The choice is a CTE, evaluated exactly once: as an ``IN (SELECT ... LIMIT n
# FOR UPDATE SKIP LOCKED)`` subquery PostgreSQL may run it again while the
# update goes on, and then it finds further Queued rows and takes more than n.
# On PostgreSQL the update finds the chosen rows through ``= ANY(ARRAY(...))``:
# planned with ``IN``, and the statistics of a queue just filled, it scanned
# every Queued row once per claim (bench/README.md, scale-out).
#
# One writer per task (``connector.writers``): an action that writes tasks is
# passed over while another action holds one of them (it stays Queued and
# waits); an action that writes none pays one comparison of ``writes``. A
# writer is compared with the held tasks only (``TaskHold``: the running
# writers' tasks, a few rows), not with the tasks of every writer queued or
# ever run: ``writes`` lists its tasks between commas, which task names never
# contain. The trigger that inserts the holds fails the statement if two
# writers of one task would both be Processing (two claimers at once, each not
# yet seeing the other's hold): ``_claiming`` tries again, and the loser then
# passes it over.
# A claim of several takes at most one writer of a task, the first in claim
# order, so that one statement never takes two writers of one task.
_CLAIM_SQL = (
    "WITH picked AS {materialized}(SELECT id{picked_columns} FROM {action} a"
    " WHERE queue = %s AND status = %s"
    " AND (writes = '' OR NOT EXISTS (SELECT 1 FROM {holds} h WHERE {held_match}))"
    " ORDER BY priority DESC, queued_at, id LIMIT %s{skip_locked}){chosen_cte}"
    " UPDATE {action} SET status = %s, started_at = %s, worker = %s,"
    " lease_expires_at = %s, attempts = attempts + 1"
    " WHERE {chosen}"
    " AND status = %s"
    " AND NOT EXISTS (SELECT 1 FROM {queue_state} WHERE name = %s AND paused)"
    " RETURNING {returning}"
)
#: What a worker reads of an action it claimed, in the model's order (as
#: ``Model.from_db`` wants them); the other fields load if asked for.
_CLAIMED_FIELDS = [
    field
    for field in Action._meta.concrete_fields
    if field.attname
    in {
        "id", "token", "queue", "fetch_action", "params", "tasks", "action_id", "priority",
        "status", "queued_at", "started_at", "worker", "lease_expires_at", "attempts",
        "stop_requested",
    }
]  # fmt: skip


# Of several picked, a writer that shares a task with a writer picked before it
# (in claim order) is left Queued for a later claim, even if that one is itself
# left Queued: simple, and never two writers of a task.
_ONE_WRITER_CTE = (
    ", chosen AS {materialized}(SELECT id FROM picked p WHERE p.writes = ''"
    " OR NOT EXISTS (SELECT 1 FROM picked q JOIN {writes} wq ON wq.action_id = q.id"
    " WHERE q.writes <> ''"
    " AND (-q.priority, q.queued_at, q.id) < (-p.priority, p.queued_at, p.id)"
    " AND wq.task IN (SELECT task FROM {writes} wp WHERE wp.action_id = p.id)))"
)


@functools.cache
def _claim_sql(*, postgresql: bool, several: bool) -> str:
    """The claim statement, made once: for PostgreSQL or SQLite, the only databases
    allowed, and for one action or several."""
    materialized = "MATERIALIZED " if postgresql else ""
    chosen = "chosen" if several else "picked"
    writes = TaskWrite._meta.db_table
    return _CLAIM_SQL.format(
        action=Action._meta.db_table,
        holds=TaskHold._meta.db_table,
        queue_state=QueueState._meta.db_table,
        skip_locked=" FOR UPDATE SKIP LOCKED" if postgresql else "",
        # On PostgreSQL an equality the primary key can answer; a scan of the
        # few held rows either way.
        held_match="h.task = ANY(string_to_array(a.writes, ','))"
        if postgresql
        else "instr(',' || a.writes || ',', ',' || h.task || ',') > 0",
        materialized=materialized,
        picked_columns=", writes, priority, queued_at" if several else "",
        chosen_cte=_ONE_WRITER_CTE.format(materialized=materialized, writes=writes)
        if several
        else "",
        chosen=(
            "id = ANY(ARRAY(SELECT id FROM {}))" if postgresql else "id IN (SELECT id FROM {})"
        ).format(chosen),
        returning=", ".join(str(field.column) for field in _CLAIMED_FIELDS),
    )


#: How many times a claim is tried when it lost a task to another claim at the
#: same moment; each retry sees the other's hold, so a second one is rare.
CLAIM_ATTEMPTS = 5


def _claiming(attempt: Any, *, fallback: Any) -> Any:
    """``attempt()``, tried again while a task it would hold was taken by another
    claim at the same moment (the unique index of held tasks refused it).

    The failed statement changed nothing (its transaction rolled back). After
    ``CLAIM_ATTEMPTS`` refusals, ``fallback()`` instead.
    """
    for _ in range(CLAIM_ATTEMPTS):
        try:
            if connection.in_atomic_block:
                # Inside a caller's transaction, a savepoint keeps it usable.
                with transaction.atomic():
                    return attempt()
            return attempt()
        except IntegrityError as refused:
            logger.info("A claim lost a fetch task to another claim; trying again (%s)", refused)
    logger.warning("A claim lost a fetch task %s times in a row; giving up", CLAIM_ATTEMPTS)
    return fallback()


def claim_actions(*, queue: str, worker: str, limit: int) -> list[Action]:
    """Atomically take up to ``limit`` Queued actions of a queue for ``worker``.

    Highest priority first, then oldest. Nothing is claimed while the queue is
    paused. On PostgreSQL rows locked by another claimer are skipped; on SQLite
    the IMMEDIATE transaction makes claims one at a time.
    """
    if limit <= 0:
        return []
    return _claiming(partial(_claim_once, queue, worker, limit), fallback=list)


def _claim_once(queue: str, worker: str, limit: int) -> list[Action]:
    if connection.vendor != "postgresql" and is_paused(queue):
        # SQLite has one write lock, which a claim takes even when it finds the queue
        # paused: each submission's wake-up would make an idle worker take it for
        # nothing, holding up the next submissions (bench/README.md). A read first.
        return []
    sql, params = _claim_statement(queue=queue, worker=worker, limit=limit)
    if connection.vendor == "postgresql":
        # One round trip: the claim and its SET LOCAL in one message. Django's
        # psycopg cursors bind parameters on the client and send by the simple
        # query protocol, which runs the statements of one message as one
        # transaction (or inside the caller's, if one is open): three round
        # trips fewer than BEGIN, SET, claim, COMMIT (bench/README.md,
        # scale-out). A claim need not wait for its WAL flush: if the database
        # crashes before it, the action is Queued again, as recovery would make
        # it, and the worker's guarded finish fails. Half the flushes per
        # action; the finish stays durable (SET LOCAL ends with the claim).
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF; " + sql, params)
            cursor.nextset()
            rows = cursor.fetchall()
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    return _taken(rows)


def _claim_statement(*, queue: str, worker: str, limit: int) -> tuple[str, list[Any]]:
    now = timezone.now()
    params: list[Any] = [
        queue, Status.QUEUED, limit,
        Status.PROCESSING, _db_time(now), worker, _db_time(_lease_end(now)),
        Status.QUEUED, queue,
    ]  # fmt: skip
    return _claim_sql(postgresql=connection.vendor == "postgresql", several=limit > 1), params


def _taken(rows: list[tuple[Any, ...]]) -> list[Action]:
    """The claimed actions, in claim order; listeners told once committed."""
    claimed = _claimed_actions(rows)
    _changed(*(action.pk for action in claimed))
    return sorted(claimed, key=lambda a: (-a.priority, a.queued_at, a.pk))


def _claimed_actions(rows: list[tuple[Any, ...]]) -> list[Action]:
    """Actions from the claim's rows, each value converted as the ORM converts its reads.

    What ``raw()`` did, without its per-query set-up (a third of a claim's
    Python time: bench/README.md, scale-out).
    """
    if not rows:
        return []
    table = Action._meta.db_table
    converters = []
    for index, field in enumerate(_CLAIMED_FIELDS):
        column = field.get_col(table)
        for convert in connection.ops.get_db_converters(column) + field.get_db_converters(
            connection
        ):
            converters.append((index, convert, column))
    names = [field.attname for field in _CLAIMED_FIELDS]
    actions = []
    for row in rows:
        values = list(row)
        for index, convert, column in converters:
            values[index] = convert(values[index], column, connection)
        actions.append(Action.from_db(connection.alias, names, values))
    return actions


def record_progress(
    *,
    pk: int,
    worker: str,
    percent: int,
    stage: str,
    counts: dict[str, Any],
    basis: str = "",
    total: int | None = None,
) -> None:
    """``basis`` and ``total``: what ``percent`` is a share of (connector/progress.py)."""
    with transaction.atomic():
        if Action.objects.filter(pk=pk, status=Status.PROCESSING, worker=worker).update(
            progress=max(0, min(100, percent)),
            stage=stage[:200],
            counts=counts,
            progress_basis=basis,
            progress_total=total,
        ):
            _changed(pk)


# The hot path of every action's end, in SQL: the ORM's compilation of this
# update cost more than the database's work (see bench/README.md).
_FINISH_SQL = (
    "UPDATE {action} SET status = {status}, finished_at = %s, lease_expires_at = NULL,"
    " counts = %s, result = %s, progress = %s, progress_basis = %s, progress_total = %s,"
    " stage = %s, error = %s WHERE id = %s AND status = %s AND worker = %s"
)


@dataclass(frozen=True, slots=True)
class Ending:
    """How a run of an action ended: what its finish records."""

    counts: dict[str, Any]
    result: dict[str, Any]
    progress: int
    stage: str = ""
    stopped: bool = False
    error: str = ""
    #: What ``progress`` is a share of (connector/progress.py).
    progress_basis: str = ""
    progress_total: int | None = None


def end_action(*, pk: int, worker: str, ending: Ending) -> bool:
    """Record the end of an action this worker holds; False if it no longer holds it.

    An action that completes after a Stop was accepted is recorded as Stopped,
    so a client whose Stop succeeded always sees Stopped.
    """
    sql, params = _finish_statement(pk=pk, worker=worker, ending=ending)
    # One statement, so no transaction of its own (outside one, it commits
    # on its own): on PostgreSQL one round trip instead of BEGIN, UPDATE,
    # COMMIT. Durable: it waits for the WAL flush, as the session's default is.
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        updated = cursor.rowcount
    return _ended(pk=pk, worker=worker, updated=updated)


def finish_and_claim(*, queue: str, pk: int, worker: str, ending: Ending) -> list[Action]:
    """``end_action``, then ``claim_actions(limit=1)`` of ``queue``, in one transaction.

    A slot's next action comes in the same round trip and the same commit as
    the end of its last one: on PostgreSQL one message of two statements
    instead of two messages and two commits (bench/README.md, scale-out).
    The commit is durable, as the finish's own is. Returns what was claimed;
    a finish refused (the worker no longer holds the action) is logged, as
    ``end_action`` logs it, and the claim goes ahead. If the claim keeps
    losing a task to other claims, the action's end is recorded alone.
    """
    return _claiming(
        partial(_finish_and_claim_once, queue, pk, worker, ending),
        fallback=partial(_end_alone, pk, worker, ending),
    )


def _end_alone(pk: int, worker: str, ending: Ending) -> list[Action]:
    end_action(pk=pk, worker=worker, ending=ending)
    return []


def _finish_and_claim_once(queue: str, pk: int, worker: str, ending: Ending) -> list[Action]:
    finish_sql, finish_params = _finish_statement(pk=pk, worker=worker, ending=ending)
    claim_sql, claim_params = _claim_statement(queue=queue, worker=worker, limit=1)
    if connection.vendor == "postgresql":
        # One message, so one implicit transaction (see claim_actions); no SET
        # LOCAL, so its commit waits for the WAL flush.
        with connection.cursor() as cursor:
            cursor.execute(f"{finish_sql}; {claim_sql}", finish_params + claim_params)
            updated = cursor.rowcount
            cursor.nextset()
            rows = cursor.fetchall()
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(finish_sql, finish_params)
            updated = cursor.rowcount
            cursor.execute(claim_sql, claim_params)
            rows = cursor.fetchall()
    _ended(pk=pk, worker=worker, updated=updated)
    return _taken(rows)


def _finish_statement(*, pk: int, worker: str, ending: Ending) -> tuple[str, list[Any]]:
    progress = ending.progress
    if ending.error:
        status_sql, status_params = "%s", [Status.ERROR]
    elif ending.stopped:
        status_sql, status_params = "%s", [Status.STOPPED]
    else:
        status_sql = "CASE WHEN stop_requested THEN %s ELSE %s END"
        status_params = [Status.STOPPED, Status.FINISHED]
        progress = 100
    sql = _FINISH_SQL.format(action=Action._meta.db_table, status=status_sql)
    params = [
        *status_params,
        _db_time(timezone.now()),
        _db_json(ending.counts),
        _db_json(ending.result),
        progress,
        ending.progress_basis,
        ending.progress_total,
        ending.stage[:200],
        ending.error,
        pk,
        Status.PROCESSING,
        worker,
    ]
    return sql, params


def _ended(*, pk: int, worker: str, updated: int) -> bool:
    if updated:
        _changed(pk)
    else:
        logger.warning("Action %s finished on %s, which no longer holds it", pk, worker)
    return bool(updated)


def add_log_lines(*, pk: int, lines: Iterable[tuple[datetime, str, str]]) -> None:
    """Append (time, level, message) lines to an action's log."""
    ActionLogLine.objects.bulk_create(
        ActionLogLine(action_id=pk, logged_at=when, level=level, message=message)
        for when, level, message in lines
    )


def renew_leases(*, worker: str, pks: Iterable[int] | None = None) -> set[int]:
    """Extend the leases of this worker's actions; return those with a Stop pending.

    ``pks`` limits the renewal to the actions the worker is really running: an
    action it holds in the database but no longer runs (its thread failed to
    record the end, or it was released at shutdown) must be left to expire and
    be recovered, not kept Processing for ever by the worker's heartbeat.
    """
    now = timezone.now()
    held = Action.objects.filter(worker=worker, status=Status.PROCESSING)
    if pks is not None:
        held = held.filter(pk__in=list(pks))
    with transaction.atomic():
        held.update(lease_expires_at=_lease_end(now))
        WorkerProcess.objects.filter(pk=worker).update(heartbeat_at=now)
    return set(held.filter(stop_requested=True).values_list("pk", flat=True))


#: Logged with an action put back in the queue by its worker's graceful shutdown.
SHUTDOWN_REQUEUE_NOTE = "Worker {worker} shut down; action queued again (attempt not spent)"


@dataclass(frozen=True)
class Released:
    requeued: list[int]
    stopped: list[int]


#: What an action taken back from its worker becomes: Queued again, as if never claimed.
_BACK_IN_QUEUE: dict[str, Any] = {
    "status": Status.QUEUED,
    "worker": "",
    "lease_expires_at": None,
    "started_at": None,
    "progress": 0,
    "progress_basis": "",
    "progress_total": None,
    "stage": "",
    "counts": {},
    "result": {},
}


def release_actions(*, worker: str, pks: Iterable[int], reason: str = "") -> Released:
    """Put back actions this worker interrupted for its graceful shutdown.

    A shutdown is not a lost worker, so the attempt the claim counted is given
    back (DESIGN: an attempt is spent only when a lease runs out): the action
    is Queued again at its old place, its history and its log say why. An
    action with a Stop pending ends Stopped instead, as the Stop asked. Only
    actions this worker still holds change (a guarded update each).
    """
    now = timezone.now()
    note = SHUTDOWN_REQUEUE_NOTE.format(worker=worker)
    if reason:
        note = f"{note}; {reason}"
    done = Released([], [])
    pks = list(pks)
    if not pks:
        return done
    held = Action.objects.filter(worker=worker, status=Status.PROCESSING)
    with transaction.atomic():
        rows = list(
            held.filter(pk__in=pks).values_list("pk", "stop_requested", "started_at", "queue")
        )
        transitions: list[ActionTransition] = []
        queues: set[str] = set()
        for pk, stop, started_at, name in rows:
            if stop:
                if held.filter(pk=pk).update(
                    status=Status.STOPPED, finished_at=now, lease_expires_at=None
                ):
                    done.stopped.append(pk)
                    add_log_lines(
                        pk=pk, lines=[(now, "INFO", "Stopped (the Stop came with a shutdown)")]
                    )
                continue
            if held.filter(pk=pk).update(**_BACK_IN_QUEUE, attempts=F("attempts") - 1):
                done.requeued.append(pk)
                queues.add(name)
                add_log_lines(pk=pk, lines=[(now, "WARNING", note)])
                transitions += audit.requeue_steps(
                    pk=pk, started_at=started_at, worker=worker, at=now, note=note
                )
        ActionTransition.objects.bulk_create(transitions)
        _changed(*done.requeued, *done.stopped)
        for name in queues:
            transaction.on_commit(partial(wakeups.wake_queue, name))
    return done


def unclaim_action(*, pk: int, worker: str) -> bool:
    """Give back an action this worker claimed but never started: Queued again, as before."""
    held = Action.objects.filter(pk=pk, worker=worker, status=Status.PROCESSING)
    with transaction.atomic():
        started_at = held.values_list("started_at", flat=True).first()
        returned = held.update(
            status=Status.QUEUED,
            worker="",
            started_at=None,
            lease_expires_at=None,
            attempts=F("attempts") - 1,
        )
        if returned:
            ActionTransition.objects.bulk_create(
                audit.requeue_steps(
                    pk=pk,
                    started_at=started_at,
                    worker=worker,
                    at=timezone.now(),
                    note=f"given back unstarted by worker {worker}",
                )
            )
            queue = Action.objects.filter(pk=pk).values_list("queue", flat=True).get()
            transaction.on_commit(partial(wakeups.wake_queue, queue))
            _changed(pk)
    return bool(returned)


@dataclass(frozen=True)
class Recovered:
    requeued: list[int]
    stopped: list[int]
    failed: list[int]


def recover_expired(*, now: datetime | None = None) -> Recovered:
    """Apply the recovery policy to Processing actions whose lease has run out."""
    now = now or timezone.now()
    expired = Action.objects.filter(status=Status.PROCESSING, lease_expires_at__lt=now)
    # Every heartbeat calls this: one query, and nothing more when nothing expired.
    rows = list(
        expired.values_list(
            "pk", "worker", "attempts", "stop_requested", "started_at", "token", "queue"
        )
    )
    if not rows:
        return Recovered([], [], [])
    candidates = [(pk, worker, attempts, stop) for pk, worker, attempts, stop, *_ in rows]
    # The row forgets a re-queued action's start; its history keeps it.
    started = {row[0]: row[4] for row in rows}
    tokens = {row[0]: row[5] for row in rows}
    names = {row[0]: (row[5], row[6]) for row in rows}
    stopped = [pk for pk, _, _, stop in candidates if stop]
    retry = [
        pk for pk, _, n, stop in candidates if not stop and n < settings.CONNECTOR_MAX_ATTEMPTS
    ]
    failed = [
        pk for pk, _, n, stop in candidates if not stop and n >= settings.CONNECTOR_MAX_ATTEMPTS
    ]
    workers = {pk: worker for pk, worker, _, _ in candidates}
    attempts = {pk: n for pk, _, n, _ in candidates}
    done: dict[str, list[int]] = {"requeued": [], "stopped": [], "failed": []}
    with transaction.atomic():
        for pk in stopped:
            if expired.filter(pk=pk).update(
                status=Status.STOPPED, finished_at=now, lease_expires_at=None
            ):
                done["stopped"].append(pk)
        for pk in retry:
            if expired.filter(pk=pk).update(**_BACK_IN_QUEUE):
                done["requeued"].append(pk)
        for pk in failed:
            if expired.filter(pk=pk).update(
                status=Status.ERROR,
                finished_at=now,
                lease_expires_at=None,
                error=_lost_error(attempts[pk]),
            ):
                done["failed"].append(pk)
        notes = {
            "requeued": "queued again",
            "stopped": "marked Stopped (a Stop was pending)",
            "failed": "marked Error (no attempts left)",
        }
        transitions: list[ActionTransition] = []
        entries = []
        for kind, pks in done.items():
            for pk in pks:
                message = f"Worker {workers[pk]} stopped responding; action {notes[kind]}"
                add_log_lines(pk=pk, lines=[(now, "WARNING", message)])
                if kind == "requeued":
                    transitions += audit.requeue_steps(
                        pk=pk, started_at=started.get(pk), worker=workers[pk], at=now, note=message
                    )
                token, name = names[pk]
                entries.append(
                    audit.done_entry(
                        verb=AuditVerb.RECOVER,
                        who=Who(via=AuditVia.WORKER),
                        action_pk=pk,
                        token=token,
                        queue=name,
                        detail=message,
                        at=now,
                    )
                )
        ActionTransition.objects.bulk_create(transitions)
        audit.record_many_done(entries)
        _changed(*(pk for pks in done.values() for pk in pks))
        if done["requeued"]:
            queues = set(
                Action.objects.filter(pk__in=done["requeued"]).values_list("queue", flat=True)
            )
            for name in queues:
                transaction.on_commit(partial(wakeups.wake_queue, name))
    for kind, pks in done.items():
        for pk in pks:
            # One line per action, with its token (connector.logs).
            with action_context(tokens.get(pk, "")):
                logger.warning(
                    "Recovered action %s of lost worker %s: %s", pk, workers[pk], notes[kind]
                )
    return Recovered(done["requeued"], done["stopped"], done["failed"])


def _lost_error(attempts: int) -> str:
    # Only a lost lease spends an attempt (a graceful shutdown gives it back,
    # see release_actions), so every attempt counted ended this way.
    return (
        "The worker running this action stopped responding (its lease ran out with no"
        f" heartbeat) and the action had been tried {attempts} times, each time on a worker"
        " that was lost that way; submit it again."
    )


def forget_dead_workers(*, older_than: timedelta) -> int:
    """Remove worker rows that have not sent a heartbeat for a long time."""
    deleted, _ = WorkerProcess.objects.filter(heartbeat_at__lt=timezone.now() - older_than).delete()
    return deleted


# --- Read helpers the endpoint and the dashboard share ------------------------------


def queue_counts(queue: str) -> dict[str, int]:
    """Actions of a queue by status (every status present, zero if none)."""
    # One count per status, each a range of the (queue, status, ...) index: a
    # GROUP BY aggregates row by row and took twice as long on 1,000,000
    # actions (bench/dashboard.py).
    return {
        status.value: Action.objects.filter(queue=queue, status=status).count() for status in Status
    }


def oldest_queued_at(queue: str) -> datetime | None:
    return Action.objects.filter(queue=queue, status=Status.QUEUED).aggregate(t=Min("queued_at"))[
        "t"
    ]
