"""action=GetStatus and action=GetVersion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from connector.aci import product
from connector.models import WorkerProcess

pytestmark = pytest.mark.django_db


def test_get_status_shows_product_uptime_port_and_queues(aci, monkeypatch):
    monkeypatch.setattr(product, "STARTED_AT", timezone.now() - timedelta(seconds=90))
    aci.submit()
    aci.submit()
    aci.claim()
    now = timezone.now()
    WorkerProcess.objects.create(
        id="w1", hostname="h", pid=1, started_at=now, heartbeat_at=now, threads={"fetch": 3}
    )
    response = aci.client.get("/?action=GetStatus", headers={"host": "localhost:9100"})
    data = aci.success(aci.parse_xml(response))
    assert data.findtext("productname") == product.PRODUCT_NAME
    assert data.findtext("version") == product.VERSION
    assert 90 <= int(data.findtext("uptime")) <= 92
    assert data.findtext("aciport") == "9100"
    (queue,) = data.findall("queues/queue")
    assert queue.findtext("name") == "fetch"
    assert queue.findtext("paused") == "false"
    assert int(queue.findtext("maximumthreads")) >= 1
    assert queue.findtext("workerthreads") == "3"
    assert queue.findtext("queued") == "1"
    assert queue.findtext("processing") == "1"


def test_get_status_in_simplejson_lists_queues_even_when_there_is_one(aci):
    data = aci.json("GetStatus", "simplejson")["autnresponse"]["responsedata"]
    assert isinstance(data["queues"]["queue"], list)
    assert data["queues"]["queue"][0]["name"] == "fetch"


def test_get_version_never_fails_and_names_a_commit(aci):
    data = aci.success(aci.call("getversion"))
    assert data.findtext("build")
    assert data.findtext("commit")
