"""The history page and the overview's live endings chart: actions that ended per
minute, hour or day, by final status, with queue wait and run time percentiles.

Read from ``OutcomeMinute`` (``connector.outcomes``), never from the action
table: a range is one query over at most 60, 1,440 or 10,080 minutes' rows of
one task (or of the queues, ``task = ''``), however many actions there are.
Percentiles come from the merged log-scale histograms, so they are estimates
within a bucket: the value shown is the bucket's geometric middle, within
``PRECISION_PERCENT`` of the true one. Every bar links to the actions list
filtered to exactly the actions it counts: queue, task, status and "finished
from/before" the bar's bounds (UTC minutes, the same the rollup uses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Case, F, IntegerField, Sum, Value, When
from django.urls import reverse
from django.utils import timezone

from connector.models import HISTOGRAM_EDGES_MS, OutcomeMinute, Status, histogram_columns

#: Bottom to top in a bar, and the legend's order.
SERIES = [Status.FINISHED, Status.ERROR, Status.CANCELLED, Status.STOPPED]
#: What the page calls each (a final status, as the list's filter names it).
SERIES_LABELS = {
    Status.FINISHED: "Finished (processed)",
    Status.ERROR: "Error (failed)",
    Status.CANCELLED: "Cancelled",
    Status.STOPPED: "Stopped",
}
WAIT = histogram_columns("wait")
RUN = histogram_columns("run")
#: Adjacent bucket edges differ by 10^(1/5); the middle is within this of any value in it.
PRECISION_PERCENT = round((10 ** (1 / 10) - 1) * 100)


@dataclass(frozen=True)
class Range:
    name: str
    label: str
    span: timedelta
    step: timedelta
    #: The ``when`` filter's kind for a bar's start.
    time_kind: str

    @property
    def bars(self) -> int:
        return self.span // self.step


RANGES = {
    r.name: r
    for r in (
        Range("hour", "Last hour, per minute", timedelta(hours=1), timedelta(minutes=1), "minute"),
        Range("day", "Last day, per hour", timedelta(days=1), timedelta(hours=1), "minute"),
        Range("week", "Last week, per day", timedelta(days=7), timedelta(days=1), "datetime"),
    )
}
DEFAULT_RANGE = "hour"


def window(chosen: Range, now: datetime) -> tuple[datetime, datetime]:
    """The range's whole steps (UTC), ending with the one ``now`` is in."""
    now = now.astimezone(UTC)
    if chosen.step == timedelta(days=1):
        floor = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elif chosen.step == timedelta(hours=1):
        floor = now.replace(minute=0, second=0, microsecond=0)
    else:
        floor = now.replace(second=0, microsecond=0)
    end = floor + chosen.step
    return end - chosen.span, end


@dataclass(frozen=True)
class Estimate:
    """A percentile from a histogram: the bucket it falls in and the bucket's middle."""

    low_ms: float
    high_ms: float | None

    @property
    def ms(self) -> float:
        if self.high_ms is None:
            return self.low_ms
        if self.low_ms <= 0:
            return self.high_ms
        return math.sqrt(self.low_ms * self.high_ms)

    @property
    def text(self) -> str:
        if self.low_ms <= 0:
            return f"under {duration_text(self.high_ms or 0)}"
        if self.high_ms is None:
            return f"{duration_text(self.low_ms)} or more"
        return f"≈ {duration_text(self.ms)}"


def duration_text(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:.1f} h"


def percentile(histogram: list[int], fraction: float) -> Estimate | None:
    """The bucket holding the ``fraction`` point (nearest rank); None for no values."""
    total = sum(histogram)
    if not total:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    index = 0
    while seen + histogram[index] < rank:
        seen += histogram[index]
        index += 1
    edges = HISTOGRAM_EDGES_MS
    low = edges[index - 1] if index > 0 else 0.0
    high = edges[index] if index < len(edges) else None
    return Estimate(low, high)


@dataclass
class Segment:
    status: str
    count: int
    url: str
    y: float = 0.0
    height: float = 0.0


@dataclass
class Bar:
    start: datetime
    end: datetime
    segments: list[Segment]
    x: float = 0.0
    width: float = 0.0

    @property
    def total(self) -> int:
        return sum(segment.count for segment in self.segments)


@dataclass
class History:
    """One range of endings, of every queue or one, of every task or one."""

    range: Range
    queue: str
    task: str
    start: datetime
    end: datetime
    bars: list[Bar]
    totals: dict[str, int]
    total_urls: dict[str, str]
    wait: dict[str, Estimate | None]
    run: dict[str, Estimate | None]
    width: int = 960
    height: int = 200
    peak: int = 0
    precision_percent: int = PRECISION_PERCENT
    series: list[tuple[str, str]] = field(
        default_factory=lambda: [(s.value, SERIES_LABELS[s]) for s in SERIES]
    )

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def legend(self) -> list[tuple[str, str, int, str]]:
        """Each series: its status, label, total over the range and the list of them."""
        return [
            (status, label, self.totals[status], self.total_urls[status])
            for status, label in self.series
        ]

    @property
    def busy_bars(self) -> list[Bar]:
        return [bar for bar in self.bars if bar.total]

    @property
    def id(self) -> str:
        """A prefix for the SVG's element ids, unique on a page of several charts."""
        return "history-" + "".join(c if c.isalnum() else "-" for c in f"{self.queue}-{self.task}")


def list_url(*, queue: str, task: str, status: str, start: datetime, end: datetime) -> str:
    """The actions list of exactly the actions a bar counts."""
    params = {"status": status}
    if queue:
        params["queue"] = queue
    if task:
        params["task"] = task
    # The list's form reads times in the server's zone, to the minute.
    params["finished_from"] = timezone.localtime(start).strftime("%Y-%m-%dT%H:%M")
    params["finished_to"] = timezone.localtime(end).strftime("%Y-%m-%dT%H:%M")
    return f"{reverse('dashboard:actions')}?{urlencode(params)}"


def _rows(
    chosen: Range, start: datetime, end: datetime, *, queues: list[str] | None, task: str
) -> list[dict[str, Any]]:
    """One query: per bar (its index), queue and status, the endings and the summed
    histograms. The hour's minute bars read minute rows; the day's and the week's read
    hour rows (at most 168 a series), a week's grouped into days by their bounds."""
    span = 60 if chosen.step >= timedelta(hours=1) else 1
    rows = OutcomeMinute.objects.filter(
        task=task, span_minutes=span, minute__gte=start, minute__lt=end
    )
    if queues is not None:
        rows = rows.filter(queue__in=queues)
    if chosen.step == timedelta(minutes=span):
        rows = rows.annotate(bar=F("minute"))
    else:
        bounds = [start + chosen.step * index for index in range(1, chosen.bars)]
        rows = rows.annotate(
            bar=Case(
                *(When(minute__lt=bound, then=Value(i)) for i, bound in enumerate(bounds)),
                default=Value(len(bounds)),
                output_field=IntegerField(),
            )
        )
    sums = {f"sum_{name}": Sum(name) for name in ["ended", *WAIT, *RUN]}
    grouped = rows.values("bar", "queue", "status").annotate(**sums).order_by()
    found: list[dict[str, Any]] = [dict(row) for row in grouped]
    for row in found:
        if isinstance(row["bar"], datetime):
            row["bar"] = (row["bar"] - start) // chosen.step
    return found


def _build(
    chosen: Range,
    start: datetime,
    end: datetime,
    rows: list[dict[str, Any]],
    *,
    queue: str,
    task: str,
    width: int,
    height: int,
) -> History:
    counts: dict[tuple[int, str], int] = {}
    by_status = {s.value: ([0] * len(WAIT), [0] * len(RUN)) for s in SERIES}
    for row in rows:
        key = (row["bar"], row["status"])
        counts[key] = counts.get(key, 0) + row["sum_ended"]
        waits, runs = by_status.setdefault(row["status"], ([0] * len(WAIT), [0] * len(RUN)))
        for index, name in enumerate(WAIT):
            waits[index] += row[f"sum_{name}"] or 0
        for index, name in enumerate(RUN):
            runs[index] += row[f"sum_{name}"] or 0
    slot = width / chosen.bars
    bars = []
    for index in range(chosen.bars):
        bar_start = start + chosen.step * index
        bar_end = bar_start + chosen.step
        segments = [
            Segment(
                status=s.value,
                count=counts.get((index, s.value), 0),
                url=list_url(queue=queue, task=task, status=s.value, start=bar_start, end=bar_end),
            )
            for s in SERIES
        ]
        bars.append(
            Bar(bar_start, bar_end, segments, x=round(index * slot, 2), width=_bar_width(slot))
        )
    peak = max((bar.total for bar in bars), default=0)
    for bar in bars:
        top = float(height)
        for segment in bar.segments:
            segment.height = round(height * segment.count / peak, 2) if peak else 0.0
            top -= segment.height
            segment.y = round(top, 2)
    totals = {s.value: sum(bar.segments[i].count for bar in bars) for i, s in enumerate(SERIES)}
    all_waits = [sum(column) for column in zip(*(w for w, _ in by_status.values()), strict=True)]
    all_runs = [sum(column) for column in zip(*(r for _, r in by_status.values()), strict=True)]
    return History(
        range=chosen,
        queue=queue,
        task=task,
        start=start,
        end=end,
        bars=bars,
        totals=totals,
        total_urls={
            s.value: list_url(queue=queue, task=task, status=s.value, start=start, end=end)
            for s in SERIES
        },
        wait={"p50": percentile(all_waits, 0.5), "p95": percentile(all_waits, 0.95)},
        run={"p50": percentile(all_runs, 0.5), "p95": percentile(all_runs, 0.95)},
        width=width,
        height=height,
        peak=peak,
    )


def _bar_width(slot: float) -> float:
    return round(slot - max(1.0, slot / 8), 2)


def history(
    range_name: str = DEFAULT_RANGE,
    *,
    queue: str = "",
    task: str = "",
    now: datetime | None = None,
) -> History:
    """The history page's chart: every queue (``queue`` empty) or one, every task or one."""
    chosen = RANGES[range_name]
    start, end = window(chosen, now or timezone.now())
    rows = _rows(chosen, start, end, queues=[queue] if queue else None, task=task.upper())
    return _build(chosen, start, end, rows, queue=queue, task=task.upper(), width=960, height=200)


def queue_histories(queues: list[str], *, now: datetime | None = None) -> dict[str, History]:
    """The overview's compact last hour of each queue: one query for them all."""
    chosen = RANGES["hour"]
    start, end = window(chosen, now or timezone.now())
    rows = _rows(chosen, start, end, queues=queues, task="")
    return {
        name: _build(
            chosen,
            start,
            end,
            [row for row in rows if row["queue"] == name],
            queue=name,
            task="",
            width=240,
            height=48,
        )
        for name in queues
    }
