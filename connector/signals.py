"""Signals other apps listen to; sent only after the change is committed."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent with ``pks`` (a list of Action primary keys) after a committed change of
#: those actions: status, progress, counts or priority.
action_changed = Signal()
