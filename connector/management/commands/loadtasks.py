"""``manage.py loadtasks FILE``: make the fetch tasks match an IDOL-style INI file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connector.tasks_config import TasksConfigError, load_tasks_file


class Command(BaseCommand):
    help = (
        "Load fetch tasks from an INI file ([FetchTasks] Number=N, 0=NAME, ...; see"
        " docs/configuration.md). Idempotent; tasks an earlier version of the same"
        " file defined and this one does not are removed. A bad file changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="the tasks INI file")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = load_tasks_file(options["file"])
        except TasksConfigError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(report.summary)
