"""Bad or missing settings stop the start with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``manage.py check`` in a fresh installation folder with this environment."""
    return manage(tmp_path, "check", **env)


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``manage.py`` with ``args`` in a fresh installation folder with this environment."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} and not k.startswith("CONNECTOR_")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "CONNECTOR_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_no_environment_at_all_is_a_valid_configuration(tmp_path):
    done = check(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout


def test_synchronize_leaves_the_worker_a_core_by_default(tmp_path):
    done = manage(
        tmp_path, "shell", "--no-imports", "-c",
        "import os; from django.conf import settings;"
        " print(settings.CONNECTOR_SYNCHRONIZE_READERS, os.cpu_count())",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    readers, cores = map(int, done.stdout.split())
    assert readers == min(4, cores - 1)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DATABASE_URL": "mysql://user:hunter2@db/connector"},
            "DATABASE_URL must be a URL starting with pgsql:// or postgres:// or postgresql://"
            " or sqlite://, not 'mysql://...'",
        ),
        ({"DATABASE_URL": "connector.sqlite3"}, "DATABASE_URL must be a URL"),
        (
            {"REDIS_URL": "http://cache:6379"},
            "REDIS_URL must be a URL starting with redis:// or rediss:// or unix://",
        ),
        ({"SECRET_KEY": "changeme"}, "SECRET_KEY must be at least 32 characters"),
        ({"ALLOWED_HOSTS": " , "}, "ALLOWED_HOSTS must name at least one host"),
        ({"DEBUG": "maybe"}, "DEBUG must be a boolean"),
        (
            {"CSRF_TRUSTED_ORIGINS": "connector.example.com"},
            "CSRF_TRUSTED_ORIGINS must list origins such as https://connector.example.com",
        ),
        ({"CSRF_TRUSTED_ORIGINS": "https://example.com/dashboard/"}, "CSRF_TRUSTED_ORIGINS"),
        ({"TIME_ZONE": "Mars/Olympus"}, "TIME_ZONE must be an IANA time zone"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of json, plain, not 'xml'"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of"),
        (
            {"CONNECTOR_LEASE_SECONDS": "10", "CONNECTOR_HEARTBEAT_SECONDS": "10"},
            "CONNECTOR_HEARTBEAT_SECONDS (10) must be less than CONNECTOR_LEASE_SECONDS (10)",
        ),
        ({"CONNECTOR_FETCH_THREADS": "0"}, "CONNECTOR_FETCH_THREADS must be at least 1"),
        ({"CONNECTOR_RETENTION_DAYS": "-1"}, "CONNECTOR_RETENTION_DAYS must be at least 0"),
        ({"CONNECTOR_RETENTION_DAYS": "month"}, "CONNECTOR_RETENTION_DAYS must be a number"),
        (
            {"CONNECTOR_RETENTION_BATCH_SIZE": "0"},
            "CONNECTOR_RETENTION_BATCH_SIZE must be at least 1",
        ),
        (
            {"CONNECTOR_METRICS_ALLOWED_IPS": "10.0.0.0/8,prometheus.local"},
            "CONNECTOR_METRICS_ALLOWED_IPS must list IP addresses or networks",
        ),
    ],
)
def test_a_bad_setting_stops_the_start_with_one_line_naming_it(tmp_path, env, message):
    done = check(tmp_path, **env)
    assert done.returncode == 1
    assert done.stderr.startswith("Configuration error: ")
    assert message in done.stderr
    # One line, no traceback, and no password from the URL.
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert "hunter2" not in done.stderr


def test_good_values_of_the_checked_settings_are_accepted(tmp_path):
    done = check(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'other.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:6379/0",
        SECRET_KEY="x" * 50,
        CSRF_TRUSTED_ORIGINS="https://connector.example.com,http://10.0.0.5:8000",
        TIME_ZONE="Europe/Paris",
        LOG_FORMAT="JSON",
        LOG_LEVEL="warning",
        CONNECTOR_RETENTION_DAYS="0",
        CONNECTOR_METRICS_ALLOWED_IPS="10.0.0.0/8, 192.168.1.7, ::1",
    )
    assert done.returncode == 0, done.stderr


def test_postgresql_without_a_secret_key_is_warned_about(tmp_path):
    done = check(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres")
    assert done.returncode == 0, done.stderr
    assert "connector.W001" in done.stderr
    with_key = check(
        tmp_path,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
        SECRET_KEY="k" * 50,
    )
    assert "connector.W001" not in with_key.stderr
