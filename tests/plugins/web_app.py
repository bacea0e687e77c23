"""Fixtures for the public web pages in process: `transport`, a recording transport the app sends
confirmation mail through, and `client`, a TestClient of the app (no redirects followed)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mailer.web.app import create_app
from tests.fakes import RecordingTransport


@pytest.fixture
def transport():
    return RecordingTransport()


@pytest.fixture
def client(settings, engine, transport):
    app = create_app(settings)
    app.state.transport = transport
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client
