"""The fetch worker engine: claims and runs actions in bounded threads, heartbeats.

One engine per worker process. Its threads:

- ``MaximumThreads`` slot threads per queue. A free slot claims its next
  action itself, runs it, and claims again at once; when nothing is
  claimable it waits for a wake-up (``wake()``, from the channel consumer) or
  the poll interval. No hand-over between threads on the way: that is what
  lets one process drain well over a thousand short actions a second.
- the heartbeat first records the process and recovers lost work, then every
  interval renews the leases of the running actions, learns of pending Stops,
  updates ``WorkerProcess``, recovers actions of lost workers (any worker
  may recover anyone's) and queues the scheduled Synchronizes that are due
  (``connector.schedules``; any worker may queue them, each run once).
- retention: every ``CONNECTOR_RETENTION_INTERVAL_SECONDS`` deletes old final
  actions in short batches (``connector.retention``). A thread of its own: a
  large first clean-up must not hold up the heartbeat, or the leases it
  renews would run out.

Every line logged while an action runs carries its token (``connector.logs``).

Only the queue module changes an action's status; the engine decides when to
ask it. The engine never runs in the event loop: the consumer only calls the
thread-safe ``wake()`` and ``stop_local()``.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from connector import __version__, queue, retention, schedules
from connector.fetch.base import run
from connector.ingest import readers
from connector.logs import action_context
from connector.models import Action, WorkerProcess

logger = logging.getLogger(__name__)

#: At shutdown, how long the retention thread gets to end its batch.
INTERRUPT_WAIT_SECONDS = 5.0
#: A Stop message for an action not (yet) running here is kept this long, in
#: case it overtook the claim that gives the action to this worker.
EARLY_STOP_SECONDS = 60.0
#: Worker rows without a heartbeat for this long are deleted (dead processes).
FORGET_WORKERS_AFTER = timedelta(hours=1)


def new_worker_id() -> str:
    """hostname-pid-random: unique even when a pid is reused on the same host."""
    return f"{socket.gethostname()[:90]}-{os.getpid()}-{secrets.token_hex(3)}"


_current: WorkerEngine | None = None


def current_engine() -> WorkerEngine | None:
    """The engine of this process, if one is started (the consumer uses it)."""
    return _current


def set_current_engine(engine: WorkerEngine | None) -> None:
    global _current
    _current = engine


@dataclass
class _Running:
    action: Action
    queue: str
    stop_event: threading.Event = field(default_factory=threading.Event)


class WorkerEngine:
    """Claims and runs fetch actions for one process; see the module docstring."""

    def __init__(self, *, worker_id: str | None = None) -> None:
        self.id = worker_id or new_worker_id()
        self.hostname = socket.gethostname()[:200]
        self.pid = os.getpid()
        self.channel_name = ""
        # Read once: settings overridden in a test apply to engines made inside it.
        self.queues: dict[str, int] = {
            name: queue.maximum_threads(name) for name in settings.CONNECTOR_QUEUES
        }
        self.poll_seconds = float(settings.CONNECTOR_POLL_SECONDS)
        self.heartbeat_seconds = float(settings.CONNECTOR_HEARTBEAT_SECONDS)
        self.started_at = timezone.now()

        self._lock = threading.Lock()
        # Notified when an action ends (shutdown waits on it) and on wake-ups.
        self._changed = threading.Condition(self._lock)
        # Idle slots wait on this one (shutdown waits on the other), so that a
        # wake-up rouses one slot, not all of them: each empty claim is a write
        # transaction that requests would queue behind.
        self._work = threading.Condition(self._lock)
        self._wake_tokens = 0
        self._idle_slots = 0
        self._slots_looked = 0
        self._running: dict[int, _Running] = {}
        self._early_stops: dict[int, float] = {}
        # Set at shutdown: no more claims.
        self._closing = threading.Event()
        # Set at shutdown: stops now come from the shutdown, not from a client.
        self._interrupting = threading.Event()
        self._heartbeat_stop = threading.Event()
        # Rouses the heartbeat thread early: at shutdown, and when messages
        # are lost or flow again (messages_lost).
        self._poke_heartbeat = threading.Event()
        self._messages_lost = threading.Event()
        self._slots: list[threading.Thread] = []
        self._heartbeat_thread: threading.Thread | None = None
        self._retention_thread: threading.Thread | None = None
        self.retention_seconds = float(settings.CONNECTOR_RETENTION_INTERVAL_SECONDS)
        self._started = False
        self._shut_down = False
        #: Set once the process is registered and lost work recovered; slots
        #: claim only from then on.
        self.ready = threading.Event()
        #: Set once every slot has made its first claim (tests wait on it).
        self.claiming = threading.Event()

    # --- Called from any thread (the consumer, signal handlers, tests) -------------

    def wake(self) -> None:
        """There may be work: an idle slot claims now instead of at the next poll."""
        with self._work:
            self._add_wake_token()

    def _add_wake_token(self) -> None:
        # Capped: wake-ups that arrive while every slot is busy are worth one
        # look per slot afterwards, not one each.
        self._wake_tokens = min(self._wake_tokens + 1, sum(self.queues.values()))
        self._work.notify()

    def stop_local(self, pk: int) -> bool:
        """Set the stop flag of an action running here; True if it runs here."""
        with self._lock:
            running = self._running.get(pk)
            if running is None:
                # The message may have overtaken our claim of the action.
                self._early_stops[pk] = time.monotonic()
                return False
        running.stop_event.set()
        with action_context(running.action.token):
            logger.info("Stop of action %s passed to its thread", pk)
        return True

    def running_counts(self) -> dict[str, int]:
        with self._lock:
            counts = dict.fromkeys(self.queues, 0)
            for running in self._running.values():
                counts[running.queue] = counts.get(running.queue, 0) + 1
            return counts

    def running_pks(self) -> set[int]:
        with self._lock:
            return set(self._running)

    # --- Life cycle ----------------------------------------------------------------

    def start(self, *, channel_name: str = "") -> None:
        """Start the threads and return at once (no database access here).

        ``channel_name`` is this process's own channel: Stop messages for its
        actions are sent there (it is stored in the WorkerProcess row).
        """
        if self._started:
            raise RuntimeError("The worker engine is already started")
        self._started = True
        self.channel_name = channel_name
        set_current_engine(self)
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat_loop, name="fetch-heartbeat", daemon=True
        )
        self._slots = [
            threading.Thread(target=self._slot_loop, args=(name,), name=f"{name}-{n}", daemon=True)
            for name, size in self.queues.items()
            for n in range(size)
        ]
        self._retention_thread = threading.Thread(
            target=self._retention_loop, name="fetch-retention", daemon=True
        )
        for thread in [self._heartbeat_thread, self._retention_thread, *self._slots]:
            thread.start()
        logger.info(
            "Worker %s started: %s, polling every %s s, heartbeat every %s s",
            self.id,
            ", ".join(f"{name} MaximumThreads={n}" for name, n in self.queues.items()),
            self.poll_seconds,
            self.heartbeat_seconds,
        )

    def shutdown(self, grace: float | None = None) -> None:
        """Stop claiming and ask the running actions to stop at their next checkpoint;
        wait up to ``grace`` seconds for them.

        A shutdown is not a lost worker: each interrupted action is queued again
        with its attempt given back (``queue.release_actions``), by its own
        thread as soon as it stops, and here for any that did not reach a
        checkpoint within the grace (the process is about to exit). An action
        that resumes where it stopped (Synchronize, from its datastore) loses
        nothing, so there is no reason to wait for a running one to finish.
        """
        if grace is None:
            grace = float(settings.CONNECTOR_SHUTDOWN_GRACE_SECONDS)
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
            # Under the lock: an action registered from now on sees it (_register_running).
            self._interrupting.set()
            running = list(self._running.values())
        self._closing.set()
        with self._work:
            self._work.notify_all()
        for each in running:
            each.stop_event.set()
        logger.info(
            "Worker %s shutting down: %s running, asked to stop at their next checkpoint"
            " (up to %s s)",
            self.id,
            len(running),
            grace,
        )
        if self._started:
            self._save_process(quiet=True)
        left = self._wait_until_idle(grace)
        if left:
            logger.warning(
                "Worker %s: actions %s did not reach a checkpoint within %s s",
                self.id,
                sorted(left),
                grace,
            )
        # Heartbeats end before the release, or the next one would renew it.
        self._heartbeat_stop.set()
        self._poke_heartbeat.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join()
        if self._retention_thread is not None:
            # It stops between two batches; a batch is one short transaction.
            self._retention_thread.join(INTERRUPT_WAIT_SECONDS)
        if left:
            try:
                released = queue.release_actions(
                    worker=self.id,
                    pks=left,
                    reason=f"it did not reach a checkpoint within {grace:g} s",
                )
                logger.warning(
                    "Worker %s queued actions %s again (attempt not spent)",
                    self.id,
                    sorted(released.requeued),
                )
            except Exception:
                # Their leases run out anyway; recovery takes them then.
                logger.exception("Worker %s could not queue its actions again", self.id)
        deadline = time.monotonic() + 1.0
        for thread in self._slots:
            thread.join(max(0.0, deadline - time.monotonic()))
        # The reader processes of Synchronize end with the worker, here, not
        # in the interpreter's exit hooks while it tears itself down.
        readers.shutdown()
        if self._started:
            try:
                WorkerProcess.objects.filter(pk=self.id).delete()
            except Exception:
                logger.exception("Worker %s could not remove its process row", self.id)
        if current_engine() is self:
            set_current_engine(None)
        logger.info("Worker %s stopped", self.id)

    # --- Synchronous entry point (tests, batch use) ------------------------------------

    def run_until_idle(self, *, queues: list[str] | None = None) -> int:
        """Claim and run actions in the calling thread until none can be claimed.

        Respects Pause (a paused queue has nothing claimable). Returns how many
        actions ran. ``stop_local()`` works from other threads meanwhile.
        """
        names = queues or list(self.queues)
        ran = 0
        while True:
            claimed = [
                (name, action)
                for name in names
                for action in queue.claim_actions(queue=name, worker=self.id, limit=1)
            ]
            if not claimed:
                return ran
            for name, action in claimed:
                self._execute(self._register_running(name, action))
                ran += 1

    # --- The slots -----------------------------------------------------------------

    def _slot_loop(self, name: str) -> None:
        """One slot of a queue: claim an action, run it, repeat; wait when idle.

        While there is work, the end of each action and the claim of the next
        go to the database together (``queue.finish_and_claim``): one round
        trip per action.
        """
        try:
            while not self.ready.wait(self.poll_seconds):
                if self._closing.is_set():
                    return
            claimed = self._claim(name)
            self._count_first_look()
            while not self._closing.is_set():
                if not claimed:
                    self._wait_for_wakeup()
                    if self._closing.is_set():
                        break
                    claimed = self._claim(name)
                    continue
                with self._work:
                    if self._idle_slots:
                        # There may be more: rouse another slot to look.
                        self._add_wake_token()
                claimed = self._execute(self._register_running(name, claimed[0]), claim_next=True)
            if claimed:
                # Claimed as the shutdown began, and not started: back to the queue.
                queue.unclaim_action(pk=claimed[0].pk, worker=self.id)
        finally:
            connections.close_all()

    def _claim(self, name: str) -> list[Action]:
        try:
            return queue.claim_actions(queue=name, worker=self.id, limit=1)
        except Exception:
            logger.exception("Worker %s could not claim; retrying", self.id)
            close_old_connections()
            return []

    def _count_first_look(self) -> None:
        with self._lock:
            self._slots_looked += 1
            if self._slots_looked >= sum(self.queues.values()):
                self.claiming.set()

    def _wait_for_wakeup(self) -> None:
        """Wait for a wake-up, the shutdown, or the poll interval."""
        with self._work:
            self._idle_slots += 1
            try:
                woken = self._work.wait_for(
                    lambda: self._wake_tokens > 0 or self._closing.is_set(),
                    timeout=self.poll_seconds,
                )
                if woken and self._wake_tokens > 0:
                    self._wake_tokens -= 1
            finally:
                self._idle_slots -= 1

    def _register_running(self, name: str, action: Action) -> _Running:
        running = _Running(action=action, queue=name)
        with self._lock:
            if action.pk in self._running:
                # Only if our own expired lease was recovered and re-claimed by us.
                logger.warning("Action %s is already running in worker %s", action.pk, self.id)
            early = self._early_stops.pop(action.pk, None) is not None
            self._running[action.pk] = running
            shutting_down = self._interrupting.is_set()
        if early or action.stop_requested or shutting_down:
            running.stop_event.set()
        return running

    def _execute(self, running: _Running, *, claim_next: bool = False) -> list[Action]:
        """Run an action and record its end; with ``claim_next``, claim the
        slot's next action in the same transaction (unless the worker is
        closing) and return it."""
        with action_context(running.action.token):
            return self._execute_in_context(running, claim_next=claim_next)

    def _execute_in_context(self, running: _Running, *, claim_next: bool) -> list[Action]:
        action = running.action
        try:
            ending = run(
                action,
                worker=self.id,
                stop_event=running.stop_event,
                shutdown_event=self._interrupting,
            )
            if ending is None:
                # Interrupted by the shutdown: back to the queue, attempt not spent.
                queue.release_actions(worker=self.id, pks=[action.pk])
                return []
            if claim_next and not self._closing.is_set():
                return queue.finish_and_claim(
                    queue=running.queue, pk=action.pk, worker=self.id, ending=ending
                )
            queue.end_action(pk=action.pk, worker=self.id, ending=ending)
        except Exception:
            # The database failing under the finish: the lease is no longer
            # renewed, so recovery takes over.
            logger.exception("Worker %s could not record action %s", self.id, action.pk)
            close_old_connections()
        finally:
            with self._changed:
                if self._running.get(action.pk) is running:
                    del self._running[action.pk]
                self._changed.notify_all()
        return []

    def _wait_until_idle(self, timeout: float) -> set[int]:
        """Wait up to ``timeout`` for running actions to end; return those left."""
        with self._changed:
            self._changed.wait_for(lambda: not self._running, timeout=timeout)
            return set(self._running)

    # --- The heartbeat -------------------------------------------------------------

    def messages_lost(self, lost: bool) -> None:
        """The channel layer failed (``True``: wake-ups and Stops sent now are lost)
        or works again (``False``). Called from the event loop; no database here.

        While messages are lost the heartbeat thread looks for pending Stops at
        every poll interval, not only at each heartbeat, so a Stop takes at
        most a poll interval; the slots claim at every poll anyway. When the
        layer works again, every slot looks for work and the Stops are looked
        for at once: what was sent in between is lost.
        """
        if lost:
            self._messages_lost.set()
        else:
            self._messages_lost.clear()
            with self._work:
                self._wake_tokens = sum(self.queues.values())
                self._work.notify_all()
        self._poke_heartbeat.set()

    def look_for_stops(self) -> None:
        """Pass on the Stops pending for the actions running here (and renew their leases)."""
        running = self.running_pks()
        if running:
            for pk in queue.renew_leases(worker=self.id, pks=running):
                self.stop_local(pk)

    def _heartbeat_loop(self) -> None:
        try:
            self._start_up()
            next_beat = time.monotonic() + self.heartbeat_seconds
            while not self._heartbeat_stop.is_set():
                wait = next_beat - time.monotonic()
                if self._messages_lost.is_set():
                    wait = min(wait, self.poll_seconds)
                self._poke_heartbeat.wait(max(0.0, wait))
                self._poke_heartbeat.clear()
                if self._heartbeat_stop.is_set():
                    break
                try:
                    if time.monotonic() >= next_beat:
                        next_beat = time.monotonic() + self.heartbeat_seconds
                        self.heartbeat()
                    else:
                        self.look_for_stops()
                except Exception:
                    logger.exception("Worker %s heartbeat failed", self.id)
                    close_old_connections()
        finally:
            connections.close_all()

    def _retention_loop(self) -> None:
        """Delete old final actions once started up, then every retention interval."""
        try:
            if not self._wait_for_ready():
                return
            while True:
                try:
                    retention.delete_old_actions(stop=self._heartbeat_stop)
                except Exception:
                    logger.exception("Worker %s could not delete old actions", self.id)
                # Not needed again for an interval: don't keep a connection idle.
                connections.close_all()
                if self._heartbeat_stop.wait(self.retention_seconds):
                    return
        finally:
            connections.close_all()

    def _wait_for_ready(self) -> bool:
        """Wait until started up; False if the engine stops first."""
        while not self.ready.wait(self.poll_seconds):
            if self._heartbeat_stop.is_set():
                return False
        return not self._heartbeat_stop.is_set()

    def _start_up(self) -> None:
        """Record the process and recover lost work, then let the slots claim."""
        while not self._heartbeat_stop.is_set():
            try:
                self._save_process()
                queue.recover_expired()
                break
            except Exception:
                logger.exception("Worker %s could not start; retrying", self.id)
                close_old_connections()
                self._heartbeat_stop.wait(self.poll_seconds)
        self.ready.set()

    def heartbeat(self) -> None:
        """Renew leases, pass on pending Stops, record this process, recover lost work,
        queue scheduled Synchronizes that are due."""
        for pk in queue.renew_leases(worker=self.id, pks=self.running_pks()):
            self.stop_local(pk)
        self._save_process()
        queue.recover_expired()
        queue.forget_dead_workers(older_than=FORGET_WORKERS_AFTER)
        try:
            schedules.queue_due_synchronizes(now=timezone.now())
        except Exception:
            # A schedule problem must not cost the leases their renewal.
            logger.exception("Worker %s could not queue scheduled synchronizes", self.id)
        now = time.monotonic()
        with self._lock:
            for pk, when in list(self._early_stops.items()):
                if now - when > EARLY_STOP_SECONDS:
                    del self._early_stops[pk]

    def _save_process(self, *, quiet: bool = False) -> None:
        """Create or update this process's row (re-created if it was forgotten)."""
        try:
            WorkerProcess.objects.update_or_create(
                pk=self.id,
                defaults={
                    "hostname": self.hostname,
                    "pid": self.pid,
                    "channel_name": self.channel_name,
                    "started_at": self.started_at,
                    "heartbeat_at": timezone.now(),
                    "threads": dict(self.queues),
                    "running": self.running_counts(),
                    "stopping": self._closing.is_set(),
                    # For the dashboard's Workers page.
                    "version": __version__,
                    "readers": readers.process_ids(),
                },
            )
        except Exception:
            if not quiet:
                raise
            logger.exception("Worker %s could not record its state", self.id)
