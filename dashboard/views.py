from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard import queries


@login_required
def home(request: HttpRequest) -> HttpResponse:
    context = {"actions": queries.recent_actions(), "queues": queries.queue_overview()}
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "dashboard/home.html#live", context)
    return render(request, "dashboard/home.html", context)
