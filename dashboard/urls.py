from __future__ import annotations

from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
    path("history/", views.history, name="history"),
    path("actions/", views.action_list, name="actions"),
    path("actions/newer/", views.newer_actions, name="newer"),
    path("actions/cancel/", views.cancel_selected, name="cancel-selected"),
    path("actions/cancel-matching/", views.cancel_matching, name="cancel-matching"),
    path("actions/retry/", views.retry_selected, name="retry-selected"),
    path("actions/retry-matching/", views.retry_matching, name="retry-matching"),
    path("submit/", views.submit, name="submit"),
    path("actions/<int:pk>/", views.action_detail, name="action"),
    path("actions/<int:pk>/cancel/", views.action_cancel, name="cancel"),
    path("actions/<int:pk>/stop/", views.action_stop, name="stop"),
    path("actions/<int:pk>/retry/", views.action_retry, name="retry"),
    path("actions/<int:pk>/priority/", views.action_priority, name="priority"),
    path("queues/<str:name>/pause/", views.queue_pause, name="pause"),
    # The audit log (issue 4).
    path("audit/", views.audit_log, name="audit"),
    # Tasks and workers (issue 16).
    path("tasks/", views.task_list, name="tasks"),
    path("tasks/<str:name>/", views.task_detail, name="task"),
    path("tasks/<str:name>/synchronize/", views.task_synchronize, name="task-synchronize"),
    path("tasks/<str:name>/schedule/", views.task_schedule, name="task-schedule"),
    path("workers/", views.worker_list, name="workers"),
]
