"""Every route that takes a body, sent a body of the wrong kind (none, `null`, not an object, the
wrong media type, multipart parts of the wrong kind) by an authenticated user: a 4xx in the error
shape, never a 500, and nothing written or enqueued."""

from __future__ import annotations

import functools
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text, update

from shared.config import get_settings
from shared.db import session_scope
from shared.models import User
from shared.queueing import PENDING_PREFIX
from shared.redis_client import get_redis
from tests.fixtures.api import Account, register_and_login
from tests.fixtures.models import fit_classifier, insert_ready_model

JSON = "application/json"
MULTIPART = "multipart/form-data"


def _file(content: bytes = b"\x80\x04not a model", name: str = "m.joblib") -> tuple:
    return (io.BytesIO(content), name)


# Request keyword arguments of the Flask test client, by case name.
BAD_BODIES = {
    "no body": lambda: {},
    "json null": lambda: {"data": "null", "content_type": JSON},
    "json list": lambda: {"data": "[]", "content_type": JSON},
    "json string": lambda: {"data": '"text"', "content_type": JSON},
    "json zero": lambda: {"data": "0", "content_type": JSON},
    "empty json": lambda: {"data": "", "content_type": JSON},
    "text/plain": lambda: {"data": "hello", "content_type": "text/plain"},
    "form-urlencoded": lambda: {
        "data": {"email": "a@example.com", "name": "x"},
        "content_type": "application/x-www-form-urlencoded",
    },
    "multipart text fields": lambda: {
        "data": {"email": "a@example.com", "password": "x" * 12, "name": "x"},
        "content_type": MULTIPART,
    },
    "multipart empty": lambda: {"data": b"", "content_type": f"{MULTIPART}; boundary=x"},
    "multipart with a file": lambda: {
        "data": {"file": _file(), "inputs": _file(b"[[1, 2, 3, 4]]", "inputs.json")},
        "content_type": MULTIPART,
    },
}

# The upload takes multipart: parts of the wrong kind, missing or repeated.
BAD_UPLOADS = {
    "file as a text field": lambda: {"file": "", "name": "x"},
    "file as a text field, description null": lambda: {
        "file": "",
        "name": "x",
        "description": None,
    },
    "no file": lambda: {"name": "x"},
    "file but no name": lambda: {"file": _file()},
    "name as a file": lambda: {"file": _file(), "name": _file(b"x", "name.txt")},
    "description as a file": lambda: {
        "file": _file(),
        "name": "x",
        "description": _file(b"d", "d.txt"),
    },
    "sample as a file": lambda: {"file": _file(), "name": "x", "sample": _file(b"[]", "s.json")},
    "two files": lambda: {"file": [_file(), _file()], "name": "x"},
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    credential: str | None = "access"  # which of the account's tokens it is called with
    oip: bool = False  # OIP v2 answers errors as {"error": "<message>"}


ROUTES = {
    "register": Route("POST", "/api/v1/auth/register", None),
    "login": Route("POST", "/api/v1/auth/login", None),
    "create api key": Route("POST", "/api/v1/api-keys"),
    "patch api key": Route("PATCH", "/api/v1/api-keys/{key_id}"),
    "patch user (admin)": Route("PATCH", "/api/v1/admin/users/{user_id}", "admin"),
    "upload model": Route("POST", "/api/v1/models"),
    "patch model": Route("PATCH", "/api/v1/models/{model_id}"),
    "submit job": Route("POST", "/api/v1/models/{model_id}/jobs"),
    "predict": Route("POST", "/api/v1/models/{model_id}/predict"),
    "submit batch": Route("POST", "/api/v1/models/{model_id}/batches"),
    "oip infer": Route("POST", "/v2/models/{model_name}/infer", oip=True),
    "oip infer (version)": Route("POST", "/v2/models/{model_name}/versions/1/infer", oip=True),
}

# Routes that take no body: any body is ignored or refused, never a crash.
BODILESS = {
    "refresh": Route("POST", "/api/v1/auth/refresh", "refresh"),
    "logout": Route("POST", "/api/v1/auth/logout"),
}


@functools.cache
def _classifier():
    return fit_classifier()


@dataclass
class World:
    account: Account
    ids: dict[str, str]

    def headers(self, route: Route) -> dict[str, str]:
        if route.credential is None:
            return {}
        if route.credential == "refresh":
            return {"Authorization": f"Bearer {self.account.refresh_token}"}
        return self.account.headers

    def url(self, route: Route) -> str:
        return route.path.format(**self.ids)


@pytest.fixture
def world(client: FlaskClient, tmp_path: Path) -> World:
    """An administrator with an API key and a ready model, so that every route reaches its body."""
    account = register_and_login(client)
    with session_scope() as s:
        s.execute(update(User).where(User.id == uuid.UUID(account.id)).values(is_admin=True))
    key = client.post("/api/v1/api-keys", json={"name": "k"}, headers=account.headers).json
    model_id = insert_ready_model(account, _classifier(), tmp_path, name="iris")
    ids = {"key_id": key["id"], "user_id": account.id, "model_id": model_id, "model_name": "iris"}
    return World(account, ids)


def _state() -> tuple:
    """What a refused request must not change: the rows of each table (and the last update of a
    model or user), the work queued in Redis."""
    with session_scope() as s:
        rows = s.execute(
            text(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM api_keys),"
                " (SELECT count(*) FROM models), (SELECT count(*) FROM jobs),"
                " (SELECT max(updated_at) FROM models), (SELECT max(updated_at) FROM users)"
            )
        ).one()
    redis = get_redis()
    pending = sum(redis.llen(k) for k in redis.scan_iter(f"{PENDING_PREFIX}*"))
    return tuple(rows), redis.llen(get_settings().default_queue), pending


def _error_shape_problem(resp, oip: bool) -> str | None:
    if not resp.is_json:
        return "not JSON"
    error = resp.json.get("error") if isinstance(resp.json, dict) else None
    if oip:
        return None if isinstance(error, str) and error else "not {'error': message}"
    if not isinstance(error, dict):
        return "no error object"
    if not (isinstance(error.get("code"), str) and error["code"]):
        return "no error code"
    return None if isinstance(error.get("message"), str) and error["message"] else "no message"


def _problem(client: FlaskClient, world: World, route: Route, request: dict) -> str | None:
    """What is wrong with the answer to a request that must be refused (None: nothing)."""
    before = _state()
    resp = client.open(
        world.url(route), method=route.method, headers=world.headers(route), **request
    )
    if not 400 <= resp.status_code < 500:
        return f"{resp.status_code}: {resp.data[:200]!r}"
    shape = _error_shape_problem(resp, route.oip)
    if shape:
        return f"{resp.status_code} {shape}: {resp.data[:200]!r}"
    return None if _state() == before else "refused, but something was written or enqueued"


def _refused_everywhere(
    client: FlaskClient, world: World, routes: dict[str, Route], request: Callable[[], dict]
) -> dict[str, str]:
    answers = {name: _problem(client, world, route, request()) for name, route in routes.items()}
    return {name: problem for name, problem in answers.items() if problem}


# One test per kind of bad body, sent to every route: each case's setup (an account, a key and a
# model) would otherwise cost more than all the requests together.
@pytest.mark.parametrize("body", sorted(BAD_BODIES))
def test_a_body_of_the_wrong_kind_is_a_4xx_on_every_route(client, world, body):
    assert _refused_everywhere(client, world, ROUTES, BAD_BODIES[body]) == {}


def test_an_upload_with_parts_of_the_wrong_kind_is_a_4xx(client, world):
    route = ROUTES["upload model"]
    problems = {
        form: _problem(client, world, route, {"data": parts(), "content_type": MULTIPART})
        for form, parts in BAD_UPLOADS.items()
    }
    assert {form: problem for form, problem in problems.items() if problem} == {}


def test_json_where_multipart_is_expected_is_a_4xx(client, world):
    request = {"data": '{"name": "x", "file": "AAAA"}', "content_type": JSON}
    assert _problem(client, world, ROUTES["upload model"], request) is None


@pytest.mark.parametrize("route", sorted(BODILESS))
def test_a_body_sent_where_none_is_taken_is_never_a_500(client, world, route):
    """Refresh and logout take no body: one sent is ignored or refused, never a crash."""
    spec = BODILESS[route]
    for body, request in BAD_BODIES.items():
        # A fresh session each time: a refresh or logout that succeeds ends the one it used.
        fresh = World(register_and_login(client), world.ids)
        resp = client.open(
            fresh.url(spec), method=spec.method, headers=fresh.headers(spec), **request()
        )
        assert resp.status_code < 500, (body, resp.data[:300])
        if resp.status_code >= 400:
            assert _error_shape_problem(resp, oip=False) is None, (body, resp.data[:300])
