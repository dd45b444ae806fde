"""Fixtures for the ACI endpoint tests: a client that speaks ACI and reads XML back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode
from xml.etree.ElementTree import Element

import pytest
from defusedxml import ElementTree

import connector.fetch.diagnostics  # noqa: F401  (registers FetchAction=NoOp and Sleep)
from connector import queue
from connector.models import Action, QueueState, WorkerProcess


class Aci:
    """GET requests in the query form; every answer must be HTTP 200."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, url: str, **extra: Any) -> Any:
        response = self.client.get(url, **extra)
        assert response.status_code == 200
        return response

    def call(self, action: str, params: Mapping[str, str] | None = None, **more: str) -> Element:
        """The action's XML answer."""
        query = urlencode({"action": action, **(params or {}), **more})
        return self.parse_xml(self.get(f"/?{query}"))

    def json(self, action: str, response_format: str, **params: str) -> Any:
        query = urlencode({"action": action, "ResponseFormat": response_format, **params})
        response = self.get(f"/?{query}")
        assert response["Content-Type"] == "application/json; charset=utf-8"
        return json.loads(response.content)

    def queue_info(self, queue_action: str, params: Mapping[str, str] | None = None, **more: str):
        return self.call(
            "QueueInfo",
            {"QueueName": "fetch", "QueueAction": queue_action, **(params or {})},
            **more,
        )

    def submit(self, fetch_action: str = "NoOp", **params: str) -> str:
        data = self.success(self.call("Fetch", FetchAction=fetch_action, **params))
        token = data.findtext("token")
        assert token
        return token

    # Reading answers

    @staticmethod
    def parse_xml(response: Any) -> Element:
        assert response.status_code == 200
        assert response["Content-Type"] == "text/xml; charset=utf-8"
        return ElementTree.fromstring(response.content)

    @staticmethod
    def error_code(root: Element) -> str:
        assert root.findtext("response") == "ERROR", Aci._show(root)
        return root.findtext("responsedata/error/errorcode") or ""

    @staticmethod
    def error_description(root: Element) -> str:
        return root.findtext("responsedata/error/errordescription") or ""

    @staticmethod
    def success(root: Element) -> Element:
        assert root.findtext("response") == "SUCCESS", Aci._show(root)
        data = root.find("responsedata")
        assert data is not None
        return data

    @staticmethod
    def _show(root: Element) -> str:
        return str(ElementTree.tostring(root, encoding="unicode"))

    # Moving actions on as a worker would

    @staticmethod
    def claim() -> Action:
        """Move the next queued action to Processing, as a worker would."""
        (action,) = queue.claim_actions(queue="fetch", worker="w1", limit=1)
        return action

    @staticmethod
    def finish(action: Action, **outcome: Any) -> None:
        fields: dict[str, Any] = {"counts": {}, "result": {}, "progress": 100, **outcome}
        assert queue.end_action(pk=action.pk, worker="w1", ending=queue.Ending(**fields))

    @staticmethod
    def snapshot() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Everything a request could change, to show that a refused one changed nothing."""
        return (
            list(Action.objects.order_by("pk").values()),
            list(QueueState.objects.order_by("name").values()),
            list(WorkerProcess.objects.order_by("id").values()),
        )


@pytest.fixture
def aci(client, db) -> Aci:
    return Aci(client)
