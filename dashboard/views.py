"""The dashboard's pages and buttons: thin views over queries and the queue.

Roles come from Django's model permissions on Action: ``view_action`` lets a
user see every page (a viewer), ``change_action`` also lets them press the
buttons (an operator). A button a user may not use is not rendered, and its
view refuses a forged POST with 403 and a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from connector import queue, schedules
from connector.addresses import client_address, server_address
from connector.fetch.base import fetch_action_names, writes_tasks
from connector.models import Action, AuditVia, FetchTask
from dashboard import bulk, outcome_history, queries, refused_posts, tasks, workers
from dashboard.audit_forms import AuditFilterForm
from dashboard.forms import (
    ActionFilterForm,
    BulkCancelForm,
    BulkRetryForm,
    PriorityForm,
    SubmitForm,
)
from dashboard.htmx_auth import login_required
from dashboard.queries import ActionFilters, Cursor

logger = logging.getLogger(__name__)

VIEW_PERMISSION = "connector.view_action"
OPERATE_PERMISSION = "connector.change_action"

View = Callable[..., HttpResponse]


def can_operate(user: Any) -> bool:
    return bool(user.has_perm(OPERATE_PERMISSION))


def viewer_required(view: View) -> View:
    """Signed in (else the sign-in page) and allowed to see actions (else 403)."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm(VIEW_PERMISSION):
            _refuse(request, "no view permission", "You may not view the connector's actions.")
        return view(request, *args, **kwargs)

    return login_required(checked)


def _require_operator(request: HttpRequest, refusal: str) -> None:
    """Refuse (PermissionDenied, logged and recorded) a request of anyone but an operator."""
    if not can_operate(request.user):
        _refuse(request, "not an operator", refusal)


def _refuse(request: HttpRequest, why: str, refusal: str) -> NoReturn:
    """Log and record a refused request (``why``), then refuse it with ``refusal``."""
    logger.warning(
        "Refused %s %s to %s from %s: %s",
        request.method,
        request.path,
        request.user.get_username(),
        client_address(request),
        why,
    )
    refused_posts.record(request, why)
    raise PermissionDenied(refusal)


def operator_required(view: View) -> View:
    """A POST from a signed-in operator; anyone else's is refused and logged."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        _require_operator(request, "Only operators may change actions and queues.")
        return view(request, *args, **kwargs)

    return login_required(require_POST(checked))


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _back(request: HttpRequest, default: str) -> HttpResponseRedirect:
    """Back to the page the form was on (``next``), if it is one of ours."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return HttpResponseRedirect(target or default)


# --- Pages ---------------------------------------------------------------------------


@require_GET
@viewer_required
def home(request: HttpRequest) -> HttpResponse:
    context = {"queues": queries.queue_overview(), "can_operate": can_operate(request.user)}
    if _is_htmx(request):
        return render(request, "dashboard/home.html#overview", context)
    return render(request, "dashboard/home.html", context)


@require_GET
@viewer_required
def history(request: HttpRequest) -> HttpResponse:
    """Endings per minute, hour or day, of every queue or one, every task or one."""
    range_name = request.GET.get("range") or outcome_history.DEFAULT_RANGE
    queue_name = request.GET.get("queue", "")
    task = request.GET.get("task", "").strip()
    invalid = []
    if range_name not in outcome_history.RANGES:
        invalid.append(f"Range {range_name[:100]!r} is not valid: choose hour, day or week.")
    if queue_name and queue_name not in queue.queue_names():
        invalid.append(f"Queue {queue_name[:100]!r} is not valid: there is no such queue.")
    if len(task) > 100:
        invalid.append("Task is not valid: a task name has at most 100 characters.")
    context = {
        "ranges": outcome_history.RANGES.values(),
        "range_name": range_name,
        "queue_name": queue_name,
        "task": task,
        "queue_names": queue.queue_names(),
        "known_tasks": queries.known_tasks(),
        "invalid": invalid,
        # An invalid filter shows no chart (as the list shows no rows), not every queue's.
        "h": None if invalid else outcome_history.history(range_name, queue=queue_name, task=task),
    }
    status = 400 if invalid else 200
    if _is_htmx(request):
        return render(request, "dashboard/history.html#history-live", context, status=status)
    return render(request, "dashboard/history.html", context, status=status)


@require_GET
@viewer_required
def action_list(request: HttpRequest) -> HttpResponse:
    form = ActionFilterForm(request.GET)
    form.is_valid()
    invalid = form.invalid()
    sort = form.sort_name()
    after, before = form.position("after"), form.position("before")
    if invalid:
        page = queries.ActionPage([], None)
    else:
        page = queries.action_page(form.filters(), after=after, before=before, sort=sort)
    params = request.GET.copy()
    for name in ("after", "before", "than"):
        params.pop(name, None)
    filter_query = params.urlencode()
    next_query = newer_page_query = None
    if page.older is not None:
        next_query = _with(params, after=page.older.encode())
    if page.newer is not None:
        newer_page_query = _with(params, before=page.newer.encode())
    first_query = filter_query if after or before else None
    newer_query = None
    if first_query is None and sort == queries.DEFAULT_SORT and not invalid:
        # The first page does not take new actions in as they arrive (rows would
        # jump under the reader's eyes); it offers them: "N new - show".
        top = page.actions[0] if page.actions else None
        newer_query = _with(
            params, than=queries.Cursor(top.queued_at, top.pk).encode() if top else None
        )
    context = {
        "form": form,
        "invalid": invalid,
        "page": page,
        "next_query": next_query,
        "newer_page_query": newer_page_query,
        "first_query": first_query,
        "newer_query": newer_query,
        "filter_query": filter_query,
        "sort": sort,
        "sort_caption": _sort_caption(sort),
        "sort_links": _sort_links(params, sort),
        "status_counts": queries.status_counts(),
        "queue_counts": queries.queue_counts(),
        "count_limit": queries.STATUS_COUNT_LIMIT,
        "tasks": queries.known_tasks(),
        "can_operate": can_operate(request.user),
    }
    if _is_htmx(request):
        return render(request, "dashboard/actions.html#results", context)
    return render(request, "dashboard/actions.html", context)


def _with(params: QueryDict, **changes: str | None) -> str:
    """The query ``params`` with ``changes`` set (None: left out)."""
    changed = params.copy()
    for name, value in changes.items():
        if value is not None:
            changed[name] = value
    return changed.urlencode()


def _sort_caption(sort: str) -> str:
    chosen = queries.read_sort(sort)
    if chosen is None:
        return ""
    return f"by {chosen[0].label.lower()}, {'descending' if chosen[1] else 'ascending'}"


def _sort_links(params: QueryDict, current: str) -> dict[str, dict[str, str]]:
    """Per sort: the link that sorts by it (descending first, then flips), and its state."""
    links = {}
    for name in queries.SORTS:
        if current == f"-{name}":
            state, target = "descending", name
        elif current == name:
            state, target = "ascending", f"-{name}"
        else:
            state, target = "", f"-{name}"
        links[name] = {"query": _with(params, sort=target), "state": state}
    return links


@require_GET
@viewer_required
def newer_actions(request: HttpRequest) -> HttpResponse:
    """How many actions matching the filters arrived after the first page was read."""
    form = ActionFilterForm(request.GET)
    form.is_valid()
    params = request.GET.copy()
    params.pop("than", None)
    params.pop("after", None)
    context = {
        "count": 0
        if form.invalid()
        else queries.count_newer(form.filters(), than=form.cursor("than")),
        "limit": queries.NEWER_COUNT_LIMIT,
        "list_query": params.urlencode(),
    }
    return render(request, "dashboard/actions.html#newer", context)


@require_GET
@viewer_required
def action_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        detail = queries.action_detail(pk)
    except Action.DoesNotExist:
        raise Http404("No such action") from None
    context = {
        "detail": detail,
        "action": detail.action,
        "can_operate": can_operate(request.user),
        "priority_form": PriorityForm(initial={"priority": detail.action.priority}),
    }
    if _is_htmx(request):
        return render(request, "dashboard/action_detail.html#detail", context)
    return render(request, "dashboard/action_detail.html", context)


@require_GET
@viewer_required
def audit_log(request: HttpRequest) -> HttpResponse:
    """Who changed what, from where and when: newest first, filtered, paged by id."""
    form = AuditFilterForm(request.GET)
    form.is_valid()
    page = queries.audit_page(form.filters(), after=form.cursor())
    params = request.GET.copy()
    params.pop("after", None)
    first_query = params.urlencode() if form.cursor() is not None else None
    next_query = None
    if page.next_cursor is not None:
        params["after"] = str(page.next_cursor)
        next_query = params.urlencode()
    context = {"form": form, "page": page, "next_query": next_query, "first_query": first_query}
    if _is_htmx(request):
        return render(request, "dashboard/audit.html#audit-results", context)
    return render(request, "dashboard/audit.html", context)


# --- Buttons --------------------------------------------------------------------------


def _row_or_back(request: HttpRequest, pk: int, error: str = "") -> HttpResponse:
    """An htmx button gets its row again (with the refusal, if any); a form goes back."""
    if _is_htmx(request):
        context = {
            "action": queries.row_action(pk),
            "can_operate": can_operate(request.user),
            "row_error": error,
            "next": request.POST.get("next", ""),
        }
        return render(request, "dashboard/actions.html#action-row", context)
    if error:
        messages.error(request, error)
    return _back(request, reverse("dashboard:action", args=[pk]))


def _existing(pk: int) -> None:
    if not Action.objects.filter(pk=pk).exists():
        raise Http404("No such action")


@operator_required
def action_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    _existing(pk)
    try:
        queue.cancel_action(
            pk=pk,
            cancelled_by=request.user.get_username(),
            cancelled_from=client_address(request),
            via=AuditVia.DASHBOARD,
        )
    except queue.QueueError as refused:
        return _row_or_back(request, pk, f"Not cancelled: {refused}.")
    logger.info("Action %s cancelled by %s", pk, request.user.get_username())
    if not _is_htmx(request):
        messages.success(request, "Cancelled.")
    return _row_or_back(request, pk)


@operator_required
def action_stop(request: HttpRequest, pk: int) -> HttpResponse:
    _existing(pk)
    try:
        queue.request_stop(
            pk=pk,
            stopped_by=request.user.get_username(),
            stopped_from=client_address(request),
            via=AuditVia.DASHBOARD,
        )
    except queue.QueueError as refused:
        return _row_or_back(request, pk, f"Not stopped: {refused}.")
    logger.info("Stop of action %s requested by %s", pk, request.user.get_username())
    if not _is_htmx(request):
        messages.success(request, "Stop requested; the action stops at its next checkpoint.")
    return _row_or_back(request, pk)


@operator_required
def action_retry(request: HttpRequest, pk: int) -> HttpResponse:
    _existing(pk)
    host, port = server_address(request)
    try:
        action = queue.duplicate_action(
            pk=pk,
            submitted_by=request.user.get_username(),
            submitted_from=client_address(request),
            via=AuditVia.DASHBOARD,
            token_host=host,
            token_port=port,
        )
    except queue.QueueFull as full:
        messages.error(request, f"Not queued again: {full}; wait for some to run.")
        return redirect("dashboard:action", pk=pk)
    logger.info("Action %s retried as %s by %s", pk, action.pk, request.user.get_username())
    messages.success(request, f"Queued again as a new action (a copy of action {pk}).")
    return redirect("dashboard:action", pk=action.pk)


@operator_required
def action_priority(request: HttpRequest, pk: int) -> HttpResponse:
    _existing(pk)
    form = PriorityForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The priority must be a whole number.")
        return redirect("dashboard:action", pk=pk)
    try:
        queue.change_priority(
            pk=pk,
            priority=form.cleaned_data["priority"],
            changed_by=request.user.get_username(),
            changed_from=client_address(request),
            via=AuditVia.DASHBOARD,
        )
    except queue.QueueError as refused:
        messages.error(request, f"Priority not changed: {refused}.")
    else:
        logger.info(
            "Priority of action %s set to %s by %s",
            pk,
            form.cleaned_data["priority"],
            request.user.get_username(),
        )
        messages.success(request, f"Priority set to {form.cleaned_data['priority']}.")
    return redirect("dashboard:action", pk=pk)


@operator_required
def queue_pause(request: HttpRequest, name: str) -> HttpResponse:
    paused = request.POST.get("paused") == "1"
    try:
        queue.set_paused(
            queue=name,
            paused=paused,
            changed_by=request.user.get_username(),
            changed_from=client_address(request),
            via=AuditVia.DASHBOARD,
        )
    except queue.UnknownQueue as unknown:
        raise Http404(str(unknown)) from None
    logger.info(
        "Queue %s %s by %s", name, "paused" if paused else "resumed", request.user.get_username()
    )
    if _is_htmx(request):
        card = queries.queue_overview(names=[queue.resolve_queue(name)])[0]
        return render(request, "dashboard/home.html#queue-card", {"q": card, "can_operate": True})
    messages.success(request, f"Queue {name} {'paused' if paused else 'resumed'}.")
    return redirect("dashboard:home")


# --- Submit ----------------------------------------------------------------------------


def _default_fetch_action() -> str:
    names = fetch_action_names()
    return "SYNCHRONIZE" if "SYNCHRONIZE" in names else (names[0] if names else "")


@viewer_required
def submit(request: HttpRequest) -> HttpResponse:
    """GET shows the form of one fetch action; POST checks it as the endpoint would and queues."""
    _require_operator(request, "Only operators may submit actions.")
    if request.method == "POST":
        form = SubmitForm(request.POST, fetch_action=request.POST.get("FetchAction", ""))
        if form.is_valid():
            host, port = server_address(request)
            done = form.submission
            try:
                action = queue.submit_action(
                    fetch_action=done.fetch_action,
                    params=done.params,
                    tasks=done.tasks,
                    priority=done.priority,
                    action_id=done.action_id,
                    submitted_by=request.user.get_username(),
                    submitted_from=client_address(request),
                    via=AuditVia.DASHBOARD,
                    token_host=host,
                    token_port=port,
                )
            except queue.QueueFull as full:
                # Issue 6's queue limit: the form stays filled in for a later try.
                form.add_error(None, f"Not queued: {full}; wait for some to run.")
            else:
                logger.info(
                    "%s submitted from the dashboard as %s by %s",
                    action.fetch_action,
                    action.token,
                    request.user.get_username(),
                )
                messages.success(request, f"{action.fetch_action} queued.")
                return redirect("dashboard:action", pk=action.pk)
    elif request.method == "GET":
        form = SubmitForm(
            fetch_action=request.GET.get("FetchAction", "") or _default_fetch_action()
        )
    else:
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    context = {
        "form": form,
        "fetch_action_names": fetch_action_names(),
        "writes_tasks": writes_tasks(form.fetch_action) if form.fetch_action else False,
    }
    if _is_htmx(request) and request.method == "GET":
        return render(request, "dashboard/submit.html#submit-form", context)
    return render(request, "dashboard/submit.html", context, status=400 if form.errors else 200)


# --- Bulk cancel and retry -----------------------------------------------------------------------


def _list_url(query: str) -> str:
    return reverse("dashboard:actions") + (f"?{query}" if query else "")


@operator_required
def retry_selected(request: HttpRequest) -> HttpResponse:
    """A new copy of each ticked action that has ended (Queued and Processing ones are refused)."""
    form = BulkRetryForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(error) for error in form.non_field_errors()))
        return _back(request, reverse("dashboard:actions"))
    host, port = server_address(request)
    result = bulk.retry_many(
        form.cleaned_data["pks"],
        submitted_by=request.user.get_username(),
        submitted_from=client_address(request),
        host=host,
        port=port,
    )
    (messages.warning if result.not_tried else messages.success)(request, result.summary())
    return _back(request, reverse("dashboard:actions"))


@viewer_required
def retry_matching(request: HttpRequest) -> HttpResponse:
    """GET: how many ended actions the filter matches, and a form to confirm; POST: retry them."""
    _require_operator(request, "Only operators may retry actions.")

    def retry(filters: ActionFilters, upto: Cursor) -> None:
        host, port = server_address(request)
        result = bulk.retry_many(
            queries.ended_matching_pks(filters, upto=upto),
            submitted_by=request.user.get_username(),
            submitted_from=client_address(request),
            host=host,
            port=port,
        )
        (messages.warning if result.not_tried else messages.success)(request, result.summary())

    return _act_on_matching(
        request,
        verb="retried",
        newest=queries.newest_ended_matching,
        count=queries.count_ended_matching,
        act=retry,
        template="dashboard/retry_matching.html",
    )


@operator_required
def cancel_selected(request: HttpRequest) -> HttpResponse:
    form = BulkCancelForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(error) for error in form.non_field_errors()))
        return _back(request, reverse("dashboard:actions"))
    result = bulk.cancel_many(
        form.cleaned_data["pks"],
        cancelled_by=request.user.get_username(),
        cancelled_from=client_address(request),
    )
    messages.success(request, result.summary())
    return _back(request, reverse("dashboard:actions"))


@viewer_required
def cancel_matching(request: HttpRequest) -> HttpResponse:
    """GET: how many queued actions the filter matches, and a form to confirm; POST: cancel them."""
    _require_operator(request, "Only operators may cancel actions.")

    def cancel(filters: ActionFilters, upto: Cursor) -> None:
        result = bulk.cancel_many(
            queries.queued_matching_pks(filters, upto=upto),
            cancelled_by=request.user.get_username(),
            cancelled_from=client_address(request),
        )
        messages.success(request, result.summary())

    return _act_on_matching(
        request,
        verb="cancelled",
        newest=queries.newest_queued_matching,
        count=queries.count_queued_matching,
        act=cancel,
        template="dashboard/cancel_matching.html",
    )


def _act_on_matching(
    request: HttpRequest,
    *,
    verb: str,
    newest: Callable[[ActionFilters], Cursor | None],
    count: Callable[..., int],
    act: Callable[[ActionFilters, Cursor], None],
    template: str,
) -> HttpResponse:
    """The count-confirm-act flow of "all matching" (Cancel, Retry): GET counts the
    actions the filter matches up to the newest now (``newest``) and asks to confirm;
    POST acts on those (``act``), never on actions that arrived after the count."""
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    data = request.POST if request.method == "POST" else request.GET
    form = ActionFilterForm(data)
    form.is_valid()
    filters = form.filters()
    params = data.copy()
    for name in ("after", "before", "than", "upto", "csrfmiddlewaretoken"):
        params.pop(name, None)
    query = params.urlencode()
    if form.invalid():
        # Left out, a mistyped filter would widen "all matching" to every action.
        messages.error(request, f"Nothing was {verb}: " + " ".join(form.invalid()))
        return HttpResponseRedirect(_list_url(query))
    if request.method == "POST":
        upto = form.cursor("upto")
        if upto is None:
            messages.error(request, f"Nothing was {verb}: confirm on the count page first.")
        else:
            act(filters, upto)
        return HttpResponseRedirect(_list_url(query))
    newest_now = newest(filters)
    context = {
        "form": form,
        "count": count(filters, upto=newest_now) if newest_now else 0,
        "limit": queries.BULK_LIMIT,
        "upto": newest_now.encode() if newest_now else "",
        "list_url": _list_url(query),
        "hidden": [(name, value) for name, values in params.lists() for value in values],
    }
    return render(request, template, context)


# --- Tasks and workers -----------------------------------------------------------------


@require_GET
@viewer_required
def task_list(request: HttpRequest) -> HttpResponse:
    """Every fetch task: roots, files, target, schedule, last Synchronize, datastore."""
    context = {
        "summaries": tasks.task_summaries(),
        "can_operate": can_operate(request.user),
        "scan": tasks.SYNCHRONIZE_SCAN,
        "documents_counted": tasks.DOCUMENTS_COUNTED,
    }
    if _is_htmx(request):
        return render(request, "dashboard/tasks.html#task-table", context)
    return render(request, "dashboard/tasks.html", context)


@require_GET
@viewer_required
def task_detail(request: HttpRequest, name: str) -> HttpResponse:
    try:
        summary = tasks.task_detail(name)
    except FetchTask.DoesNotExist:
        raise Http404("No such fetch task") from None
    context = {
        "s": summary,
        "task": summary.task,
        "can_operate": can_operate(request.user),
        "scan": tasks.SYNCHRONIZE_SCAN,
        "action_scan": tasks.ACTION_SCAN,
    }
    if _is_htmx(request):
        return render(request, "dashboard/task_detail.html#task-live", context)
    return render(request, "dashboard/task_detail.html", context)


def _task_or_404(name: str) -> FetchTask:
    try:
        return FetchTask.objects.get(name=name.upper())
    except FetchTask.DoesNotExist:
        raise Http404("No such fetch task") from None


@operator_required
def task_synchronize(request: HttpRequest, name: str) -> HttpResponse:
    """Synchronize now: the Submit form's path (same checks, same audit) for this task."""
    task = _task_or_404(name)
    form = SubmitForm(
        {"FetchAction": "SYNCHRONIZE", "TaskSections": task.name}, fetch_action="SYNCHRONIZE"
    )
    back = reverse("dashboard:task", args=[task.name])
    if not form.is_valid():
        messages.error(request, "Not queued: " + " ".join(_form_errors(form)))
        return _back(request, back)
    host, port = server_address(request)
    done = form.submission
    try:
        action = queue.submit_action(
            fetch_action=done.fetch_action,
            params=done.params,
            tasks=done.tasks,
            submitted_by=request.user.get_username(),
            submitted_from=client_address(request),
            via=AuditVia.DASHBOARD,
            token_host=host,
            token_port=port,
        )
    except queue.QueueFull as full:
        messages.error(request, f"Not queued: {full}; wait for some to run.")
        return _back(request, back)
    logger.info(
        "Synchronize of %s queued from the Tasks page as %s by %s",
        task.name,
        action.token,
        request.user.get_username(),
    )
    messages.success(request, f"Synchronize of {task.name} queued.")
    return _back(request, back)


def _form_errors(form: SubmitForm) -> list[str]:
    return [str(error) for errors in form.errors.values() for error in errors]


@operator_required
def task_schedule(request: HttpRequest, name: str) -> HttpResponse:
    """Pause or resume the task's schedule (``paused=1`` or ``0``), audited."""
    task = _task_or_404(name)
    paused = request.POST.get("paused") == "1"
    schedules.set_schedule_paused(
        name=task.name,
        paused=paused,
        changed_by=request.user.get_username(),
        changed_from=client_address(request),
        via=AuditVia.DASHBOARD,
    )
    messages.success(request, f"Schedule of {task.name} {'paused' if paused else 'resumed'}.")
    return _back(request, reverse("dashboard:task", args=[task.name]))


@require_GET
@viewer_required
def worker_list(request: HttpRequest) -> HttpResponse:
    """Each worker process, its heartbeat (late before its lease runs out), slots, actions."""
    context = {"view": workers.workers_view(), "can_operate": can_operate(request.user)}
    if _is_htmx(request):
        return render(request, "dashboard/workers.html#worker-list", context)
    return render(request, "dashboard/workers.html", context)
