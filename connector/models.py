"""What the connector keeps: actions and their logs, queues, workers, fetch tasks.

Only ``connector.queue`` changes an action's ``status``; everything else reads.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from connector.ingest.kinds import TYPES as EXTRACT_TYPES
from connector.ingest.kinds import ExtractSettings
from connector.prepared import PreparedInsert


class Status(models.TextChoices):
    QUEUED = "Queued"
    PROCESSING = "Processing"
    FINISHED = "Finished"
    ERROR = "Error"
    CANCELLED = "Cancelled"
    STOPPED = "Stopped"


FINAL_STATUSES = frozenset({Status.FINISHED, Status.ERROR, Status.CANCELLED, Status.STOPPED})


class RunMilliseconds(models.Func):
    """How long an action ran, in whole milliseconds (NULL until it has started and ended).

    Spelled the same in the index below and in the dashboard's sort, so the
    database walks the index; built-in functions only, so any SQLite connection
    (not only Django's, which registers its own) can write the table.
    """

    output_field = models.BigIntegerField()

    def __init__(self) -> None:
        super().__init__(models.F("finished_at"), models.F("started_at"))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="CAST(round((julianday(%(expressions)s)) * 86400000) AS INTEGER)",
            arg_joiner=") - julianday(",
            **extra,
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="(round(EXTRACT(EPOCH FROM (%(expressions)s)) * 1000)::bigint)",
            arg_joiner=" - ",
            **extra,
        )


class Action(models.Model):
    """One asynchronous action: the queue of record is this table."""

    token = models.CharField(max_length=200, unique=True)
    queue = models.CharField(max_length=40, default="fetch")
    fetch_action = models.CharField(max_length=40)
    #: The parameters the action was submitted with, names as the client sent them.
    params = models.JSONField(default=dict)
    #: The fetch task(s) the action works on, comma-separated, upper case.
    tasks = models.CharField(max_length=400, blank=True, default="")
    #: The tasks whose datastore or ingest output the action writes (a ``TaskWrite``
    #: row each), in the same form; empty for an action that writes none.
    writes = models.CharField(max_length=400, blank=True, default="")
    action_id = models.CharField("ActionID", max_length=400, blank=True, default="")
    priority = models.IntegerField(default=0)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    #: The worker process that holds the action while it is Processing.
    worker = models.CharField(max_length=120, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    stop_requested = models.BooleanField(default=False)
    stop_requested_at = models.DateTimeField(null=True, blank=True)

    progress = models.PositiveSmallIntegerField(default=0)
    #: What ``progress`` is a share of (connector/progress.py): "" the fetch action's
    #: own measure; for a Synchronize, the documents it expects to list in all
    #: (``progress_total``) from "previous" complete runs or its "listed" documents,
    #: or "unknown" (no honest percentage: the counts say how far it is).
    progress_basis = models.CharField(max_length=10, blank=True, default="")
    progress_total = models.PositiveIntegerField(null=True, blank=True)
    stage = models.CharField(max_length=200, blank=True, default="")
    #: Document counts per task: {"DOCS": {"seen": 3, "added": 1, ...}}.
    counts = models.JSONField(default=dict, blank=True)
    #: What the action produced: identifiers, per-document successes and failures.
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")

    submitted_by = models.CharField(max_length=150, blank=True, default="")
    submitted_from = models.CharField(max_length=200, blank=True, default="")
    cancelled_by = models.CharField(max_length=150, blank=True, default="")
    cancelled_from = models.CharField(max_length=200, blank=True, default="")
    stopped_by = models.CharField(max_length=150, blank=True, default="")
    stopped_from = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        indexes = [
            # The claim: the next queued action of a queue, by priority then age.
            models.Index(
                fields=["queue", "status", "-priority", "queued_at", "id"], name="action_claim"
            ),
            # The dashboard's list and the endpoint's GetStatus: newest first by status.
            models.Index(fields=["status", "-queued_at"], name="action_status_queued"),
            models.Index(fields=["-queued_at"], name="action_queued"),
            # Heartbeats and recovery.
            models.Index(fields=["worker", "status"], name="action_worker"),
            models.Index(fields=["status", "lease_expires_at"], name="action_lease"),
            # The Tasks page: each task's newest Synchronizes (dashboard/tasks.py).
            models.Index(fields=["fetch_action", "-queued_at"], name="action_fetch_queued"),
            # The dashboard list's search for one ActionID (exact), and its sorts
            # (each with id, the keyset cursor's tie-break).
            models.Index(fields=["action_id"], name="action_action_id"),
            models.Index(fields=["-started_at", "-id"], name="action_started"),
            models.Index(fields=["-priority", "-queued_at", "-id"], name="action_priority"),
            models.Index(RunMilliseconds(), "id", name="action_duration"),
            # The list's "finished between" filter, which the history's bars link to.
            models.Index(fields=["finished_at"], name="action_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.fetch_action} {self.status} ({self.pk})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class TaskWrite(models.Model):
    """A fetch task an action writes: made at submission for each task of an action
    that writes its datastore or ingest output (``FetchAction.writes_tasks``).

    What the hold trigger copies into ``TaskHold`` when the action starts
    (``connector.writers``); never changed afterwards.
    """

    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="task_writes")
    task = models.CharField(max_length=100)

    def __str__(self) -> str:
        return f"{self.task} by {self.action_id}"


class TaskHold(models.Model):
    """A task held by its writer: a row exists exactly while that action is Processing.

    A trigger on the action's status inserts the action's ``TaskWrite`` tasks
    here when it becomes Processing and deletes them when it leaves Processing,
    whatever code changes the status (``connector.writers``). The task is the
    primary key, so a second writer of a task can never be Processing: its
    status change fails. The table holds only the running writers' tasks, so
    the claim's check of a queued writer against it stays a few rows, however
    many writers have ever run or wait.

    No foreign-key constraint in the database (the trigger's insert would pay
    its check at every claim), and nothing to cascade: only final actions are
    ever deleted (``connector.retention``), and a final action holds nothing.
    """

    task = models.CharField(max_length=100, primary_key=True)
    action = models.ForeignKey(
        Action,
        on_delete=models.DO_NOTHING,
        related_name="task_holds",
        db_constraint=False,
        db_index=False,
    )

    def __str__(self) -> str:
        return f"{self.task} held by {self.action_id}"


class ActionTask(models.Model):
    """One fetch task an action works on: the list's task filter reads an index, not
    every row's comma-separated ``Action.tasks``. Written with the action (``queue._queue_new``)."""

    action = models.ForeignKey(
        Action, on_delete=models.CASCADE, related_name="task_rows", db_index=False
    )
    task = models.CharField(max_length=400)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["action", "task"], name="actiontask_unique"),
        ]
        indexes = [models.Index(fields=["task", "-action"], name="actiontask_task")]

    def __str__(self) -> str:
        return f"{self.task} of {self.action_id}"

    @staticmethod
    def record(action: Action) -> None:
        """The task rows of a new action, from its ``tasks``."""
        for name in dict.fromkeys(name for name in action.tasks.split(",") if name):
            _NEW_ACTION_TASKS.add(action_id=action.pk, task=name)


#: ``ActionTask.record``'s insert, compiled once (connector/prepared.py): a Fetch's hot path.
_NEW_ACTION_TASKS = PreparedInsert(ActionTask)


class ActionLogLine(models.Model):
    """A line of an action's own log, kept for the dashboard and GetStatus."""

    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="log_lines")
    logged_at = models.DateTimeField()
    level = models.CharField(max_length=10)
    message = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.logged_at:%H:%M:%S} {self.level} {self.message}"


class ActionTransition(models.Model):
    """A step of an action's status history that the action's row forgets.

    A re-queue (recovery of a dead worker's action, or a worker giving back one
    it never started) clears ``started_at`` and ``worker``; the queue keeps the
    spell of Processing that ended and the re-queue here. The other steps come
    from the row itself (see ``connector.history``).
    """

    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="transitions")
    status = models.CharField(max_length=20)
    at = models.DateTimeField()
    note = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        # The action's history is read in the order it was written.
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.action_id} {self.status} {self.at:%H:%M:%S}"


class AuditVerb(models.TextChoices):
    SUBMIT = "submit"
    RETRY = "retry", "retry (duplicate)"
    CANCEL = "cancel"
    STOP = "stop"
    PRIORITY = "priority"
    PAUSE = "pause"
    RESUME = "resume"
    #: A worker's recovery of an action whose worker died.
    RECOVER = "recover"


class AuditVia(models.TextChoices):
    ENDPOINT = "endpoint"
    DASHBOARD = "dashboard"
    SCHEDULE = "schedule"
    WORKER = "worker"


class AuditOutcome(models.TextChoices):
    DONE = "done"
    REFUSED = "refused"


class AuditEntry(models.Model):
    """Who asked for a change of an action or a queue, from where, when, and what came of it.

    Written by ``connector.audit`` in the transaction of the change itself (and,
    for a refusal, in a transaction of its own), never changed afterwards.
    """

    at = models.DateTimeField()
    verb = models.CharField(max_length=20, choices=AuditVerb.choices)
    outcome = models.CharField(max_length=10, choices=AuditOutcome.choices)
    #: Why a refused request was refused; empty when done.
    reason = models.CharField(max_length=400, blank=True, default="")
    #: Kept when the action is deleted (retention): the token still names it.
    action = models.ForeignKey(
        Action,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_entries",
        db_index=False,  # the ("action", "-id") index below serves the lookups
    )
    token = models.CharField(max_length=200, blank=True, default="")
    queue = models.CharField(max_length=40, blank=True, default="")
    #: The dashboard user's name; empty for the endpoint (clients do not sign in).
    user = models.CharField(max_length=150, blank=True, default="")
    #: The client address of the request; empty for the schedule and workers.
    client = models.CharField(max_length=200, blank=True, default="")
    via = models.CharField(max_length=10, choices=AuditVia.choices)
    #: What changed beyond the verb: "priority 0 -> 5", "bulk cancel", "copy of action 7".
    detail = models.CharField(max_length=400, blank=True, default="")

    class Meta:
        verbose_name_plural = "audit entries"
        # Newest first by id: ids follow the order entries were written, and a
        # single-column cursor keeps the audit page's keyset paging simple.
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["action", "-id"], name="audit_action"),
            models.Index(fields=["verb", "-id"], name="audit_verb"),
            models.Index(fields=["user", "-id"], name="audit_user"),
            models.Index(fields=["client", "-id"], name="audit_client"),
            models.Index(fields=["token", "-id"], name="audit_token"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.verb} {self.outcome} {self.token or self.queue}"


class QueueState(models.Model):
    """Per-queue switches shared by every process (Pause and Resume)."""

    name = models.CharField(max_length=40, primary_key=True)
    paused = models.BooleanField(default=False)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.CharField(max_length=150, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name} ({'paused' if self.paused else 'running'})"


class WorkerProcess(models.Model):
    """A live (or lately live) worker process; its channel receives Stop messages."""

    id = models.CharField(max_length=120, primary_key=True)
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    channel_name = models.CharField(max_length=200, blank=True, default="")
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    #: Running actions per queue at the last heartbeat: {"fetch": 2}.
    running = models.JSONField(default=dict, blank=True)
    #: MaximumThreads per queue of this process: {"fetch": 4}.
    threads = models.JSONField(default=dict, blank=True)
    stopping = models.BooleanField(default=False)
    #: The connector's version the process runs (``connector.__version__``).
    version = models.CharField(max_length=40, blank=True, default="")
    #: The pids of its Synchronize reader processes at the last heartbeat
    #: (``connector.ingest.readers``); empty while none are started.
    readers = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name_plural = "worker processes"

    def __str__(self) -> str:
        return self.id


#: ``ScheduleStartTime`` values: ``now``, a time of day, or a date and time.
SCHEDULE_TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?")
SCHEDULE_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d ([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?")


def ingest_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an ingest URL, or None if it can ('' is no URL)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if any(c.isspace() for c in url):
        return "must not contain spaces"
    return None


def schedule_start_problem(text: str) -> str | None:
    """Why ``text`` is not a ScheduleStartTime, or None if it is ('' is no schedule)."""
    if text == "" or text == "now" or SCHEDULE_TIME_OF_DAY.fullmatch(text):
        return None
    if SCHEDULE_DATE_TIME.fullmatch(text):
        try:
            datetime.strptime(text[:10], "%Y-%m-%d")
        except ValueError:
            return "has a date that does not exist"
        return None
    return "must be now, HH:MM[:SS] or YYYY-MM-DD HH:MM[:SS]"


def _validate_ingest_url(value: str) -> None:
    if problem := ingest_url_problem(value):
        raise ValidationError(f"The ingest URL {problem}.")


def _validate_schedule_start(value: str) -> None:
    if problem := schedule_start_problem(value):
        raise ValidationError(f"The schedule start time {problem}.")


def extract_types_problem(value: object) -> str | None:
    """Why ``value`` is not a list of extractable types (None: it is)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return "must be a list of type names"
    unknown = [item for item in value if item.lower() not in EXTRACT_TYPES]
    if unknown:
        return f"unknown type {unknown[0]!r}; the types are {', '.join(EXTRACT_TYPES)}"
    return None


def _validate_extract_types(value: object) -> None:
    if problem := extract_types_problem(value):
        raise ValidationError(problem)


def _validate_follow_symlinks(value: bool) -> None:
    # Kept as a setting so configurations can say it; following links safely
    # (loops, links out of the root) is not built yet.
    if value:
        raise ValidationError("Following symbolic links is not supported yet.")


class FetchTask(models.Model):
    """A named, configured part of a repository, as a fetch task section in IDOL."""

    name = models.CharField(max_length=100, unique=True)
    directory_paths = models.JSONField(default=list, help_text="Root folders of the task.")
    file_match = models.JSONField(default=list, help_text="File name patterns; empty means *.")
    file_exclude_match = models.JSONField(
        default=list, blank=True, help_text="File name patterns of documents left out."
    )
    directory_recursive = models.BooleanField(default=True)
    directory_follow_symlinks = models.BooleanField(
        default=False,
        validators=[_validate_follow_symlinks],
        help_text="Follow symbolic links below the roots (not supported yet).",
    )
    ingest_directory = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="Folder of the IDX batches; empty: var/ingest/<TASK>.",
    )
    ingest_url = models.CharField(
        "ingest URL",
        max_length=2000,
        blank=True,
        default="",
        validators=[_validate_ingest_url],
        help_text="Optional http(s) URL that receives every IDX batch (POST).",
    )
    collect_destinations = models.JSONField(
        default=list, blank=True, help_text="Folders that Collect may copy documents into."
    )
    schedule_start_time = models.CharField(
        max_length=20,
        blank=True,
        default="",
        validators=[_validate_schedule_start],
        help_text="now, HH:MM[:SS] or YYYY-MM-DD HH:MM[:SS]; empty: no schedule.",
    )
    schedule_repeat_secs = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds between scheduled runs; empty: run once."
    )
    schedule_cycles = models.IntegerField(
        default=-1, help_text="How many scheduled runs; -1: no limit."
    )
    #: When the scheduler next queues the task's Synchronize; None: no (more)
    #: scheduled runs. Kept by connector.schedules, which claims a run by a
    #: guarded update of this field, so only one worker queues each run.
    schedule_next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: Scheduled Synchronizes queued since the schedule was last (re)set.
    schedule_runs_done = models.PositiveIntegerField(default=0, editable=False)
    # Documents as text (docs/ingest.md, "Documents as text").
    extract_text = models.BooleanField(
        default=True, help_text="Send PDF, Office, HTML and e-mail documents as their text."
    )
    extract_types = models.JSONField(
        default=list,
        blank=True,
        validators=[_validate_extract_types],
        help_text="Types to extract (pdf, docx, xlsx, ...); empty: every supported type.",
    )
    extract_max_bytes = models.PositiveBigIntegerField(
        default=32 * 1024 * 1024, help_text="Larger documents are sent by reference."
    )
    extract_timeout_seconds = models.FloatField(
        default=30.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(3600)],
        help_text="Seconds one document may take to extract.",
    )
    extract_max_text_bytes = models.PositiveBigIntegerField(
        default=8 * 1024 * 1024,
        help_text="A document whose text is longer is sent by reference.",
    )
    extract_archives = models.BooleanField(
        default=True,
        help_text="Members of zip and tar archives and e-mail attachments become documents.",
    )
    #: ``ExtractSettings.fingerprint`` (or "off") of the task's last complete
    #: Synchronize; when the settings differ, the next one sends every document
    #: again. '': not known yet (nothing is sent again for it).
    extract_sent_with = models.CharField(max_length=500, blank=True, default="", editable=False)
    #: An operator paused the schedule (the dashboard's Tasks page): no scheduled
    #: run is queued until it is resumed. Not in the INI file, so loadtasks keeps it.
    schedule_paused = models.BooleanField(default=False, editable=False)
    #: Documents the task's last complete Synchronize listed: what the next one
    #: expects (its percentage and time left); None: no complete run yet.
    documents_last_complete = models.PositiveIntegerField(null=True, blank=True, editable=False)
    #: The INI file the task came from, if any (loadtasks prunes by it).
    source = models.CharField(max_length=500, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            # Every worker's heartbeat looks for due schedules.
            models.Index(fields=["schedule_next_run_at"], name="fetchtask_schedule_due"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # Section names are case-insensitive in IDOL: keep one spelling.
        self.name = self.name.upper()
        super().save(*args, **kwargs)

    def extract_settings(self) -> ExtractSettings | None:
        """How Synchronize extracts this task's documents; None: it does not."""
        if not self.extract_text:
            return None
        types = frozenset(t.lower() for t in self.extract_types) or frozenset(EXTRACT_TYPES)
        return ExtractSettings(
            types=types,
            max_bytes=self.extract_max_bytes,
            timeout=self.extract_timeout_seconds,
            max_text_bytes=self.extract_max_text_bytes,
            archives=self.extract_archives,
            memory_limit=settings.CONNECTOR_EXTRACT_MEMORY_MIB * 1024 * 1024,
        )

    def extract_fingerprint(self) -> str:
        """What ``extract_sent_with`` records for the current settings."""
        settings = self.extract_settings()
        return settings.fingerprint() if settings is not None else "off"

    @property
    def ingest_path(self) -> Path:
        """The folder IDX batches go to; the default is resolved when used, so
        a task keeps following ``CONNECTOR_VAR_DIR`` if that moves."""
        if self.ingest_directory:
            return Path(self.ingest_directory)
        return Path(settings.VAR_DIR) / "ingest" / self.name


class DatastoreDocument(models.Model):
    """What Synchronize last ingested of one document of a task.

    A row is written only once the batch holding the document is committed
    (renamed into the ingest folder, and posted when the task has an ingest
    URL), so the table says exactly what the ingest target has.
    """

    # No index of its own: the two below start with the task.
    task = models.ForeignKey(
        FetchTask, on_delete=models.CASCADE, related_name="documents", db_index=False
    )
    identifier = models.CharField(max_length=8192)
    #: The identifier of the folder holding the document: Synchronize reads a
    #: folder's rows with one query.
    folder = models.CharField(max_length=8192, blank=True, default="")
    path = models.TextField()
    size = models.BigIntegerField()
    #: The file's modification time as ingested, in nanoseconds since the
    #: epoch (``st_mtime_ns``: compared exactly); -1 before the first ingestion.
    modified_ns = models.BigIntegerField(default=-1)
    #: sha256 of the content as ingested, hex; compared when only the time changed.
    content_hash = models.CharField(max_length=64, blank=True, default="")
    #: Custom metadata (FetchAction=Update) sent as fields with the document.
    metadata = models.JSONField(default=dict, blank=True)
    #: Under hold (FetchAction=Hold): not to be deleted or updated.
    held = models.BooleanField(default=False)
    last_ingested_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "identifier"], name="datastore_task_identifier")
        ]
        indexes = [
            models.Index(fields=["task", "folder"], name="datastore_task_folder"),
            # The Tasks page: a task's last ingestion without reading its rows.
            models.Index(fields=["task", "last_ingested_at"], name="datastore_task_ingested"),
        ]

    def __str__(self) -> str:
        return f"{self.task_id}:{self.path}"

    @property
    def modified(self) -> datetime | None:
        """``modified_ns`` as a time (None before the first ingestion)."""
        if self.modified_ns < 0:
            return None
        return datetime.fromtimestamp(self.modified_ns / 1e9, tz=UTC)


#: The run-time and queue-wait histograms of ``OutcomeMinute``: log-scale buckets,
#: five per decade from 1 ms to 10^8 ms (about 28 hours); bucket 0 holds what took
#: under 1 ms and the last what took 10^8 ms or more (``connector.outcomes``).
HISTOGRAM_EDGES_MS: tuple[float, ...] = tuple(10 ** (k / 5) for k in range(41))
HISTOGRAM_BUCKETS = len(HISTOGRAM_EDGES_MS) + 1


def histogram_columns(kind: str) -> list[str]:
    """The bucket columns of one histogram: ``wait`` (queued to started) or ``run``."""
    return [f"{kind}_{index:02d}" for index in range(HISTOGRAM_BUCKETS)]


class OutcomeMinute(models.Model):
    """How many actions of a queue (and of a task) reached a final status in one minute
    (or, ``span_minutes`` 60, in the hour starting at ``minute``), with histograms of their
    queue wait and run time: the dashboard's history. The hour rows keep a day's or a
    week's chart to at most 168 rows a series, however busy the minutes were.

    A trigger on the action table adds to it whenever an action's status becomes
    final, whatever code makes it so (``connector.outcomes``). The row with an
    empty ``task`` counts every action of the queue once; an action on tasks adds
    one more row per task, so a task's history is its own rows.
    """

    minute = models.DateTimeField()
    #: 1: the row counts one minute; 60: the hour that starts at ``minute``.
    span_minutes = models.PositiveSmallIntegerField(default=1)
    queue = models.CharField(max_length=40)
    task = models.CharField(max_length=400, blank=True, default="")
    status = models.CharField(max_length=12, choices=Status.choices)
    ended = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            # The trigger's upsert key; its order serves the history's reads
            # (one task, or the queues' '' rows, over a range of minutes).
            models.UniqueConstraint(
                fields=["task", "span_minutes", "minute", "queue", "status"],
                name="outcomeminute_key",
            ),
        ]
        # Retention deletes old minutes.
        indexes = [models.Index(fields=["minute"], name="outcomeminute_minute")]

    def __str__(self) -> str:
        period = "hour" if self.span_minutes == 60 else "minute"
        return f"{self.queue} {self.task} {self.status} {period} {self.minute}: {self.ended}"


for _kind in ("wait", "run"):
    for _column in histogram_columns(_kind):
        OutcomeMinute.add_to_class(_column, models.BigIntegerField(default=0))
