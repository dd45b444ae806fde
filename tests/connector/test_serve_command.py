from __future__ import annotations

import webbrowser

import pytest

from connector.management.commands.serve import desktop_browser_available


def test_no_browser_is_opened_without_a_desktop(monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(webbrowser, "get", lambda: pytest.fail("must not look for a browser"))
    assert not desktop_browser_available()


def test_a_desktop_without_a_browser_opens_nothing(monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")

    def no_browser():
        raise webbrowser.Error("none")

    monkeypatch.setattr(webbrowser, "get", no_browser)
    assert not desktop_browser_available()


def test_a_desktop_with_a_browser_opens_the_dashboard(monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    monkeypatch.setattr(webbrowser, "get", lambda: object())
    assert desktop_browser_available()
