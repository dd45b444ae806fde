"""The endpoint's limits, each at its boundary: at the limit accepted, one over refused."""

from __future__ import annotations

import logging
import os
import runpy
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings

from connector import queue
from connector.aci import limits
from connector.aci.errors import AciError
from connector.models import Action, Status

pytestmark = pytest.mark.django_db

ROOT = Path(django_settings.BASE_DIR)


def fetch(aci, client=None, **params):
    extra = {} if client is None else {"REMOTE_ADDR": client}
    query = urlencode({"action": "Fetch", "FetchAction": "NoOp", **params})
    return aci.parse_xml(aci.get(f"/?{query}", **extra))


def post(aci, body: bytes):
    return aci.parse_xml(aci.client.post("/", body, content_type="text/plain"))


# --- Request size ----------------------------------------------------------------


def test_a_body_of_exactly_the_limit_is_accepted_one_byte_more_refused(aci, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    head = b"action=Fetch&FetchAction=NoOp&Note="
    aci.success(post(aci, head + b"z" * (1000 - len(head))))
    root = post(aci, head + b"z" * (1001 - len(head)))
    assert aci.error_code(root) == "ERRORREQUESTTOOLARGE"
    assert "1000 bytes" in aci.error_description(root)
    assert Action.objects.count() == 1


def test_exactly_the_parameter_count_is_accepted_one_more_refused(aci, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 6
    # action and FetchAction count too: 2 + 4 = 6.
    four = "&".join(f"p{n}=1" for n in range(4))
    aci.success(aci.parse_xml(aci.get(f"/?action=Fetch&FetchAction=NoOp&{four}")))
    root = aci.parse_xml(aci.get(f"/?action=Fetch&FetchAction=NoOp&{four}&p9=1"))
    assert aci.error_code(root) == "ERRORREQUESTTOOLARGE"
    assert "6 parameters" in aci.error_description(root)
    assert Action.objects.count() == 1


def test_parameters_are_counted_over_path_query_and_body(aci, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 4
    response = aci.client.post("/action=Fetch?FetchAction=NoOp&a1=1", "b1=1&b2=2", content_type="x")
    assert aci.error_code(aci.parse_xml(response)) == "ERRORREQUESTTOOLARGE"
    assert not Action.objects.exists()


def test_a_value_of_exactly_the_parameter_length_is_accepted_one_more_refused(aci, settings):
    settings.CONNECTOR_MAX_PARAMETER_LENGTH = 100
    aci.success(fetch(aci, Note="é" * 100))  # characters, not bytes
    root = fetch(aci, Note="é" * 101)
    assert aci.error_code(root) == "ERRORPARAMTOOLONG"
    assert "Note" in aci.error_description(root)
    assert Action.objects.count() == 1


def settings_with(monkeypatch, **env: str) -> dict:
    """connector/settings.py's values under ``env`` (run afresh, nothing else changes)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "connector" / "settings.py"))


def test_the_parameter_count_is_a_setting_from_the_environment(monkeypatch):
    values = settings_with(monkeypatch, CONNECTOR_MAX_PARAMETERS="7")
    assert values["DATA_UPLOAD_MAX_NUMBER_FIELDS"] == 7


# --- Identifiers per action ------------------------------------------------------


@pytest.mark.parametrize("name", ["Identifiers", "ParentIdentifiers"])
def test_exactly_the_identifier_limit_is_accepted_one_more_refused(aci, settings, name):
    settings.CONNECTOR_MAX_IDENTIFIERS = 3
    aci.success(fetch(aci, **{name: "a,b,,c,"}))  # empty items do not count
    root = fetch(aci, **{name: "a,b,c,d"})
    assert aci.error_code(root) == "ERRORREQUESTTOOLARGE"
    description = aci.error_description(root)
    assert name in description
    assert "4 identifiers" in description
    assert "at most 3" in description
    assert Action.objects.count() == 1


def test_the_identifier_limit_comes_before_the_fetch_action_checks_them(aci, settings, docs_task):
    settings.CONNECTOR_MAX_IDENTIFIERS = 2
    root = fetch(aci, FetchAction="Delete", Identifiers="x,y,z")
    assert aci.error_code(root) == "ERRORREQUESTTOOLARGE"


# --- Queued actions per queue ----------------------------------------------------


def test_a_queue_takes_exactly_its_limit_then_answers_queue_full(aci, settings):
    settings.CONNECTOR_MAX_QUEUED_ACTIONS = 3
    tokens = [aci.submit() for _ in range(3)]
    before = aci.snapshot()
    root = fetch(aci)
    assert aci.error_code(root) == "ERRORQUEUEFULL"
    assert root.findtext("responsedata/error/rawerrorid") == "0x75"
    description = aci.error_description(root)
    assert "3 queued actions" in description
    assert "fetch" in description
    assert aci.snapshot() == before
    # Duplicate is a submission too.
    root = aci.queue_info("Duplicate", Token=tokens[0])
    assert aci.error_code(root) == "ERRORQUEUEFULL"
    assert aci.snapshot() == before


def test_only_queued_actions_count_towards_the_limit(aci, settings):
    settings.CONNECTOR_MAX_QUEUED_ACTIONS = 2
    first = aci.submit()
    aci.submit()
    aci.claim()  # the first one is Processing now
    assert Action.objects.get(token=first).status == Status.PROCESSING
    third = aci.submit()
    aci.success(aci.queue_info("Cancel", Token=third))
    aci.submit()
    assert aci.error_code(fetch(aci)) == "ERRORQUEUEFULL"


def test_queue_full_is_the_queues_own_rule(db, settings):
    settings.CONNECTOR_MAX_QUEUED_ACTIONS = 1
    queue.submit_action(fetch_action="NOOP", params={})
    with pytest.raises(queue.QueueFull) as refused:
        queue.submit_action(fetch_action="NOOP", params={})
    assert (refused.value.queue, refused.value.limit) == ("fetch", 1)
    assert Action.objects.count() == 1


def test_zero_queued_actions_means_no_limit(db, settings):
    settings.CONNECTOR_MAX_QUEUED_ACTIONS = 0
    for _ in range(3):
        queue.submit_action(fetch_action="NOOP", params={})
    assert Action.objects.count() == 3


# --- Submissions per client --------------------------------------------------------


def test_a_client_may_submit_exactly_the_rate_limit_then_is_refused(aci, settings):
    settings.CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW = 3
    settings.CONNECTOR_ACI_RATE_WINDOW_SECONDS = 3600
    tokens = [aci.submit() for _ in range(3)]
    before = aci.snapshot()
    root = fetch(aci)
    assert aci.error_code(root) == "ERRORTOOMANYREQUESTS"
    assert root.findtext("responsedata/error/rawerrorid") == "0x76"
    description = aci.error_description(root)
    assert "more than 3 submissions" in description
    assert "Try again in" in description
    assert aci.error_code(aci.queue_info("Duplicate", Token=tokens[0])) == "ERRORTOOMANYREQUESTS"
    assert aci.snapshot() == before
    # Reading and changing what exists are not submissions.
    aci.success(aci.queue_info("GetStatus"))
    aci.success(aci.queue_info("Cancel", Token=tokens[0]))


def test_duplicate_counts_as_a_submission(aci, settings):
    settings.CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW = 2
    settings.CONNECTOR_ACI_RATE_WINDOW_SECONDS = 3600
    token = aci.submit()
    aci.success(aci.queue_info("Duplicate", Token=token))
    assert aci.error_code(fetch(aci)) == "ERRORTOOMANYREQUESTS"


def test_the_rate_limit_is_per_client(aci, settings):
    settings.CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW = 1
    settings.CONNECTOR_ACI_RATE_WINDOW_SECONDS = 3600
    aci.success(fetch(aci, "127.0.0.1"))
    aci.success(fetch(aci, "::1"))
    assert aci.error_code(fetch(aci, "127.0.0.1")) == "ERRORTOOMANYREQUESTS"
    assert Action.objects.count() == 2


def test_the_count_starts_again_in_the_next_window(db, settings):
    settings.CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW = 2
    settings.CONNECTOR_ACI_RATE_WINDOW_SECONDS = 10
    client = f"test-{uuid.uuid4()}"
    limits.take_submission(client, now=1000.0)
    limits.take_submission(client, now=1009.9)
    with pytest.raises(AciError) as refused:
        limits.take_submission(client, now=1009.95)
    assert refused.value.code == "ERRORTOOMANYREQUESTS"
    assert "Try again in 1 seconds" in refused.value.description
    limits.take_submission(client, now=1010.0)


def test_zero_submissions_per_window_means_no_limit(db, settings):
    settings.CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW = 0
    for _ in range(5):
        limits.take_submission("192.0.2.1", now=1000.0)


def test_a_refused_access_is_not_counted_as_a_submission(aci, settings):
    settings.CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW = 1
    settings.CONNECTOR_ACI_RATE_WINDOW_SECONDS = 3600
    for _ in range(3):
        assert aci.error_code(fetch(aci, "203.0.113.1")) == "ERRORNOTAUTHORIZED"
    aci.success(fetch(aci))


def _redis_available() -> bool:
    try:
        import redis

        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=1).ping()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _redis_available(), reason="no Redis at 127.0.0.1:6379")
def test_the_counters_are_shared_by_processes_through_redis(tmp_path):
    """Two separate processes with REDIS_URL count one client's submissions together."""
    client = f"test-{uuid.uuid4()}"  # a key of its own: nothing else in Redis is touched
    code = (
        "import sys\n"
        "from connector.aci import limits\n"
        "from connector.aci.errors import AciError\n"
        f"for n in range(int(sys.argv[-1])):\n"
        "    try:\n"
        f"        limits.take_submission({client!r})\n"
        "        print('ok')\n"
        "    except AciError as e:\n"
        "        print(e.code)\n"
    )
    env = {
        **os.environ,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW": "3",
        "CONNECTOR_ACI_RATE_WINDOW_SECONDS": "600",
        "CONNECTOR_VAR_DIR": str(tmp_path),
    }
    env.pop("DATABASE_URL", None)

    def run(times: int) -> list[str]:
        script = tmp_path / "count.py"
        script.write_text(
            "import django, os\n"
            "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'connector.settings')\n"
            "django.setup()\n" + code
        )
        done = subprocess.run(
            [sys.executable, str(script), str(times)],
            cwd=ROOT,
            env={**env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert run(2) == ["ok", "ok"]
    assert run(2) == ["ok", "ERRORTOOMANYREQUESTS"]


def test_the_cache_is_redis_when_redis_url_is_set(monkeypatch):
    values = settings_with(monkeypatch, REDIS_URL="redis://127.0.0.1:6379/3")
    default = values["CACHES"]["default"]
    assert default["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert default["LOCATION"] == "redis://127.0.0.1:6379/3"


def test_the_cache_is_in_process_without_redis(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    values = settings_with(monkeypatch)
    assert values["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")


def test_an_unavailable_counter_logs_one_warning_per_outage_and_one_line_on_recovery(
    db, settings, caplog, monkeypatch
):
    """Issue 14, 7: a traceback per submission while Redis was down."""
    settings.CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW = 5
    settings.CONNECTOR_ACI_RATE_WINDOW_SECONDS = 10
    down = {"now": False}
    real_add = limits.cache.add

    def add(*args: object, **kwargs: object) -> object:
        if down["now"]:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")
        return real_add(*args, **kwargs)

    monkeypatch.setattr(limits.cache, "add", add)
    client = f"test-{uuid.uuid4()}"
    with caplog.at_level(logging.DEBUG, logger="connector.aci.limits"):
        for outage in range(2):
            down["now"] = True
            for _ in range(50):  # not limited meanwhile: no refusal past 5
                limits.take_submission(client, now=1000.0 + 20 * outage)
            down["now"] = False
            limits.take_submission(client, now=1000.0 + 20 * outage)
    records = [r for r in caplog.records if r.name == "connector.aci.limits"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    infos = [r for r in records if r.levelno == logging.INFO]
    assert len(warnings) == 2, [r.getMessage() for r in records]
    assert "The submission counter is unavailable (ConnectionError" in warnings[0].getMessage()
    assert len(infos) == 2 and "works again" in infos[0].getMessage()
    assert not any(r.exc_info for r in records) and not any(
        r.levelno >= logging.ERROR for r in records
    )
