"""Client tests speak real HTTP: the session app served by werkzeug in a thread, on a free port,
with the session's real worker behind it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from tests.fixtures.api import Account, create_api_key
from tests.fixtures.live import serve


@pytest.fixture(scope="session")
def live_url(app: Flask, worker) -> Iterator[str]:
    """The session app over HTTP, with a worker consuming its queue."""
    with serve(app) as url:
        yield url


@pytest.fixture
def api_key(client, user: Account) -> str:
    """A fresh API key of the `user` fixture's account."""
    return create_api_key(client, user)["key"]
