"""The model pages' actions through the test client (a worker is not the point here): disable and
enable, delete after confirmation, the analytics window's bounds, refused uploads, and the "try
it" form built from the input columns."""

from __future__ import annotations

import io

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from shared.models import MLModel
from tests.ui.pages import csrf_token, ready_model, sign_up, user_id
from web.extensions import db
from web.ui.forms import row_of, try_form

COLUMNS = [
    {"name": "size", "dtype": "number", "nullable": True},
    {"name": "count", "dtype": "integer", "nullable": False},
    {"name": "colour", "dtype": "string", "nullable": True, "categories": ["red", "blue"]},
    {"name": "level", "dtype": "integer", "nullable": False, "categories": [1, 2]},
    {"name": "flag", "dtype": "boolean", "nullable": False},
    {"name": "note", "dtype": "string", "nullable": False},
]


def _status(app: Flask, model_id) -> tuple[str, bool]:
    with app.app_context():
        model = db.session.get(MLModel, model_id)
        return model.status, model.deleted_at is not None


def test_disable_enable_and_delete(app: Flask, browser_client: FlaskClient) -> None:
    owner = user_id(app, sign_up(browser_client))
    model_id = ready_model(app, owner)
    token = csrf_token(browser_client, "/models/iris")
    path = "/models/iris/versions/1/status"
    assert (
        browser_client.post(path, data={"status": "disabled", "csrf_token": token}).status_code
        == 303
    )
    assert _status(app, model_id) == ("disabled", False)
    page = browser_client.get("/models/iris/try")
    assert page.status_code == 200
    refused = browser_client.post(
        "/models/iris/try", data={"c0": "1.5", "c1": "x", "csrf_token": token}
    )
    assert refused.status_code == 422 and "disabled" in refused.get_data(as_text=True)
    assert (
        browser_client.post(path, data={"status": "ready", "csrf_token": token}).status_code == 303
    )
    assert _status(app, model_id) == ("ready", False)
    confirm = browser_client.get("/models/iris/versions/1/delete")
    assert "Delete iris version 1?" in confirm.get_data(as_text=True)
    assert _status(app, model_id) == ("ready", False)  # asking is not deleting
    gone = browser_client.post("/models/iris/versions/1/delete", data={"csrf_token": token})
    assert gone.status_code == 303 and gone.headers["Location"] == "/models"
    assert _status(app, model_id)[1]
    assert browser_client.get("/models/iris").status_code == 404


def test_analytics_window_is_kept_within_1_to_90_days(app, browser_client) -> None:
    ready_model(app, user_id(app, sign_up(browser_client)))
    for asked, shown in (("500", "90"), ("0", "1"), ("14", "14"), ("x", "7")):
        body = browser_client.get(f"/models/iris/analytics?days={asked}").get_data(as_text=True)
        assert f'id="days" name="days" type="number" min="1" max="90" value="{shown}"' in body


def test_refused_upload_says_why(app: Flask, browser_client: FlaskClient) -> None:
    sign_up(browser_client)
    token = csrf_token(browser_client, "/models")
    resp = browser_client.post(
        "/models",
        data={
            "name": "notes",
            "file": (io.BytesIO(b"just some text"), "notes.txt"),
            "csrf_token": token,
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 422
    assert "Unsupported model file" in resp.get_data(as_text=True)
    bad_name = browser_client.post(
        "/models",
        data={"name": "no spaces", "file": (io.BytesIO(b"x"), "m.joblib"), "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert bad_name.status_code == 422


def test_try_form_has_a_typed_field_per_column(app: Flask) -> None:
    with app.test_request_context():
        form_class = try_form(COLUMNS, has_proba=True)
        empty = form_class(meta={"csrf": False}, formdata=MultiDict({}))
        assert [empty[f"c{i}"].type for i in range(6)] == [
            "FloatField",
            "IntegerField",
            "SelectField",
            "SelectField",
            "SelectField",
            "StringField",
        ]
        # nullable: a choice for a missing value
        assert [c.value for c in empty.c2.choices] == ["", "red", "blue"]
        assert [c.value for c in empty.c3.choices] == ["1", "2"]
        filled = MultiDict({"c0": "", "c1": "3", "c2": "", "c3": "2", "c4": "false", "c5": "hello"})
        form = form_class(meta={"csrf": False}, formdata=filled)
        assert form.validate(), form.errors
        assert row_of(form, COLUMNS) == {
            "size": None,
            "count": 3,
            "colour": None,
            "level": 2,
            "flag": False,
            "note": "hello",
        }
        missing = form_class(meta={"csrf": False}, formdata=MultiDict({**filled, "c1": ""}))
        assert not missing.validate() and "c1" in missing.errors  # not nullable
