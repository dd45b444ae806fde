"""What the connector keeps: actions and their logs, queues, workers, fetch tasks.

Only ``connector.queue`` changes an action's ``status``; everything else reads.
"""

from __future__ import annotations

from django.db import models


class Status(models.TextChoices):
    QUEUED = "Queued"
    PROCESSING = "Processing"
    FINISHED = "Finished"
    ERROR = "Error"
    CANCELLED = "Cancelled"
    STOPPED = "Stopped"


FINAL_STATUSES = frozenset({Status.FINISHED, Status.ERROR, Status.CANCELLED, Status.STOPPED})


class Action(models.Model):
    """One asynchronous action: the queue of record is this table."""

    token = models.CharField(max_length=200, unique=True)
    queue = models.CharField(max_length=40, default="fetch")
    fetch_action = models.CharField(max_length=40)
    #: The parameters the action was submitted with, names as the client sent them.
    params = models.JSONField(default=dict)
    #: The fetch task(s) the action works on, comma-separated, upper case.
    tasks = models.CharField(max_length=400, blank=True, default="")
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
        ]

    def __str__(self) -> str:
        return f"{self.fetch_action} {self.status} ({self.pk})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


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

    def __str__(self) -> str:
        return self.id


class FetchTask(models.Model):
    """A named, configured part of a repository, as a fetch task section in IDOL."""

    name = models.CharField(max_length=100, unique=True)
    directory_paths = models.JSONField(default=list, help_text="Root folders of the task.")
    file_match = models.JSONField(default=list, help_text="File name patterns; empty means *.")
    directory_recursive = models.BooleanField(default=True)
    #: The INI file the task came from, if any (loadtasks prunes by it).
    source = models.CharField(max_length=500, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # Section names are case-insensitive in IDOL: keep one spelling.
        self.name = self.name.upper()
        super().save(*args, **kwargs)
