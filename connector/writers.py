"""One writer per task: the database holds a task for the action that writes it.

An action that writes a task's datastore or ingest output (Synchronize,
Update, Delete, Hold, ReleaseHold, Insert: ``FetchAction.writes_tasks``) gets
a ``TaskWrite`` row per task at submission. A trigger on the action's status
copies them into ``TaskHold`` when the action becomes Processing and deletes
them when it leaves Processing, whatever code changes the status (claim,
finish, recovery, unclaim, release), and the task is ``TaskHold``'s primary
key, so a second holder fails: two writers of one task can never be
Processing together, on any number of workers and servers. The claim skips a
queued action whose task is held (``connector.queue``), so a second writer
waits, Queued, until the first ends, as IDOL queues its actions.

The trigger fires only on the transitions that matter, into and out of
Processing, of an action that writes a task: other status changes (a Cancel,
a finish of an action that writes nothing) do not call it. ``TaskHold`` holds
only the running writers' tasks, so the claim's check reads a few rows,
however many writers wait or have ever run (bench/README.md, one writer).

The trigger lives on the action table. On SQLite, a later migration that
rebuilds that table (Django copies it to a new one for most column changes)
drops its triggers, so ``install`` runs again after every ``migrate``
(``connector.apps``), and a test checks the trigger is there.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper

from connector import triggers
from connector.models import Action, Status, TaskHold, TaskWrite
from connector.prepared import PreparedRead

TRIGGER = "connector_action_holds_tasks"
FUNCTION = "connector_action_holds_tasks"


def _names() -> dict[str, str]:
    return {
        "action": Action._meta.db_table,
        "writes": TaskWrite._meta.db_table,
        "holds": TaskHold._meta.db_table,
        "trigger": TRIGGER,
        "function": FUNCTION,
        "processing": Status.PROCESSING.value,
        "when": _WHEN.format(processing=Status.PROCESSING.value),
    }


# The trigger's condition: a writer entering or leaving Processing, nothing else.
_WHEN = "NEW.writes <> '' AND (OLD.status = '{processing}') <> (NEW.status = '{processing}')"
# On SQLite one body for both ways: leaving deletes the holds and inserts none,
# entering deletes none (the action held nothing) and inserts its tasks.
_SQLITE = [
    "DROP TRIGGER IF EXISTS {trigger}",
    "CREATE TRIGGER {trigger} AFTER UPDATE OF status ON {action} FOR EACH ROW WHEN {when}"
    " BEGIN DELETE FROM {holds} WHERE action_id = NEW.id;"
    " INSERT INTO {holds} (task, action_id) SELECT task, NEW.id FROM {writes}"
    " WHERE action_id = NEW.id AND NEW.status = '{processing}'; END",
]
_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN IF NEW.status = '{processing}' THEN"
    " INSERT INTO {holds} (task, action_id) SELECT task, NEW.id FROM {writes}"
    " WHERE action_id = NEW.id;"
    " ELSE DELETE FROM {holds} WHERE action_id = NEW.id; END IF; RETURN NULL; END $$",
    "DROP TRIGGER IF EXISTS {trigger} ON {action}",
    "CREATE TRIGGER {trigger} AFTER UPDATE OF status ON {action} FOR EACH ROW"
    " WHEN ({when}) EXECUTE FUNCTION {function}()",
]


def install(connection: BaseDatabaseWrapper) -> None:
    """Create (or re-create) the trigger that holds a task while its writer is Processing."""
    statements = _POSTGRESQL if connection.vendor == "postgresql" else _SQLITE
    names = _names()
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement.format(**names))


def uninstall(connection: BaseDatabaseWrapper) -> None:
    triggers.drop(connection, trigger=TRIGGER, table=Action._meta.db_table, function=FUNCTION)


def installed(connection: BaseDatabaseWrapper) -> bool:
    """Whether the trigger is there (a check for tests and operators)."""
    return triggers.exists(connection, TRIGGER)


@dataclass(frozen=True)
class Wait:
    """A queued action waits for ``task``, held by the Processing action ``token``."""

    task: str
    pk: int
    token: str


def waits(pks: list[int]) -> dict[int, list[Wait]]:
    """For each of these actions that is waiting for a held task: what it waits for.

    One query, whatever the number of actions (GetStatus lists up to thousands).
    """
    if not pks:
        return {}
    mine = TaskWrite.objects.filter(action_id__in=pks, action__status=Status.QUEUED).values_list(
        "action_id", "task"
    )
    wanted: dict[str, list[int]] = {}
    for pk, task in mine:
        wanted.setdefault(task, []).append(pk)
    if not wanted:
        return {}
    held = TaskHold.objects.filter(task__in=list(wanted)).values_list(
        "task", "action_id", "action__token"
    )
    found: dict[int, list[Wait]] = {}
    for task, holder, token in held:
        for pk in wanted[task]:
            found.setdefault(pk, []).append(Wait(task=task, pk=holder, token=token))
    return found


def waits_of(action: Action) -> list[Wait]:
    """``waits`` of one action as read: what it waits for if it is Queued.

    One query instead of two: a Queued action's own rows are the tasks of its
    ``writes`` (made with it), and the trigger keeps them unheld while it is
    Queued, so only the holders are read. Should the action have been claimed
    since it was read, it holds its tasks itself: not a wait.
    """
    if action.status != Status.QUEUED or not action.writes:
        return []
    return [wait for wait in holders(action.writes.split(",")) if wait.pk != action.pk]


def tasks_written(fetch_action: str, tasks: list[str]) -> list[str]:
    """The tasks an action of ``fetch_action`` on ``tasks`` writes, once each."""
    # Imported here: the fetch actions import the queue, which calls this.
    from connector.fetch.base import writes_tasks

    return list(dict.fromkeys(tasks)) if writes_tasks(fetch_action) else []


def holders(tasks: list[str]) -> list[Wait]:
    """Which of these tasks are held now, and by which Processing action."""
    if not tasks:
        return []
    held = _HOLDERS.rows(tasks=tasks)
    return [Wait(task=task, pk=pk, token=token) for task, pk, token in held]


#: ``holders``' query, compiled once per number of tasks (connector/prepared.py).
_HOLDERS: PreparedRead[TaskHold] = PreparedRead(
    lambda tasks: TaskHold.objects.filter(task__in=tasks).values_list(
        "task", "action_id", "action__token"
    )
)
