"""Actions per minute over the last hour, per queue, as bars of a small server-side SVG.

One grouped query covers every queue: actions queued in the hour, counted per
queue and minute. It filters on ``queued_at``, which an index serves
(``action_queued``), so it reads only the last hour's rows however many
actions the table holds. Arrivals only: the card's endings (completions by
status, with wait and run times) are ``dashboard.outcome_history``'s, read from
a rollup the database keeps (``connector.outcomes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone

from connector.models import Action

MINUTES = 60
#: The drawing's size in SVG units (it scales with the card's width).
WIDTH = 240
HEIGHT = 48
_SLOT = WIDTH / MINUTES
_GAP = 1


@dataclass(frozen=True)
class Bar:
    minute: datetime
    count: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class MinuteChart:
    """One queue's hour: 60 bars, oldest first; the last is the minute under way."""

    bars: list[Bar]
    total: int
    peak: int
    start: datetime
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def busy_minutes(self) -> list[Bar]:
        """The minutes with actions, for the text alternative."""
        return [bar for bar in self.bars if bar.count]


def hour_window(now: datetime) -> tuple[datetime, datetime]:
    """The 60 whole minutes ending with the one ``now`` is in."""
    end = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - timedelta(minutes=MINUTES), end


def counts_per_minute(
    queues: list[str], *, now: datetime | None = None
) -> dict[str, dict[datetime, int]]:
    """Actions queued per queue and minute in the last hour: one grouped query."""
    start, end = hour_window(now or timezone.now())
    counts: dict[str, dict[datetime, int]] = {name: {} for name in queues}
    # No queue condition in SQL: with one, SQLite walks the claim index over
    # every action of the queue (150 ms with a million) instead of the hour's
    # range of the queued_at index; other queues' rows are skipped below.
    rows = (
        Action.objects.filter(queued_at__gte=start, queued_at__lt=end)
        .annotate(minute=TruncMinute("queued_at", tzinfo=UTC))
        .values("queue", "minute")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        if row["queue"] in counts:
            counts[row["queue"]][row["minute"]] = row["n"]
    return counts


def minute_chart(counts: dict[datetime, int], *, now: datetime | None = None) -> MinuteChart:
    """Bars scaled to the busiest minute (an empty hour draws no bar)."""
    start, _ = hour_window(now or timezone.now())
    by_minute = {minute.astimezone(UTC): n for minute, n in counts.items()}
    peak = max(by_minute.values(), default=0)
    bars = []
    for index in range(MINUTES):
        minute = start + timedelta(minutes=index)
        count = by_minute.get(minute, 0)
        height = round(HEIGHT * count / peak, 2) if peak else 0.0
        bars.append(
            Bar(
                minute=minute,
                count=count,
                x=round(index * _SLOT, 2),
                y=round(HEIGHT - height, 2),
                width=round(_SLOT - _GAP, 2),
                height=height,
            )
        )
    return MinuteChart(bars=bars, total=sum(by_minute.values()), peak=peak, start=start)


def queue_charts(queues: list[str], *, now: datetime | None = None) -> dict[str, MinuteChart]:
    now = now or timezone.now()
    per_queue = counts_per_minute(queues, now=now)
    return {name: minute_chart(per_queue[name], now=now) for name in queues}
