"""The batches page: progress of a running batch (a live row), the result download, cancel, and
another user's batches out of reach. Rows are written as the batch workers leave them."""

from __future__ import annotations

import io
import re
import uuid

from flask import Flask
from flask.testing import FlaskClient

from shared.batches import Batch, files
from tests.ui.pages import csrf_token, ready_model, sign_up, user_id
from web import extensions
from web.extensions import db

RESULT = b"prediction\n1\n0\n"


def _batch(app: Flask, owner, model_id, status: str, done: int, output: bytes | None = None):
    batch_id = uuid.uuid4()
    with app.app_context():
        key = None
        if output is not None:
            key = files.result_key(str(batch_id), "csv")
            extensions.store().save(key, io.BytesIO(output))
        db.session.add(
            Batch(
                id=batch_id,
                owner_id=owner,
                model_id=model_id,
                model_version=1,
                status=status,
                input_key=files.input_key(str(batch_id), "csv"),
                input_format="csv",
                input_size_bytes=100,
                input_sha256="0" * 64,
                input_filename="rows.csv",
                output_format="csv",
                output_key=key,
                rows_total=1000,
                rows_done=done,
            )
        )
        db.session.commit()
    return batch_id


def test_batches_progress_download_and_cancel(app: Flask, browser_client: FlaskClient) -> None:
    owner = user_id(app, sign_up(browser_client))
    model_id = ready_model(app, owner)
    running = _batch(app, owner, model_id, "running", 250)
    done = _batch(app, owner, model_id, "succeeded", 1000, output=RESULT)
    page = browser_client.get("/batches").get_data(as_text=True)
    assert re.search(rf'id="batch-{running}"\s+hx-get="/batches/{running}/row"', page)
    assert '<progress max="1000" value="250"' in page
    assert f'href="/batches/{done}/result"' in page
    download = browser_client.get(f"/batches/{done}/result")
    assert download.status_code == 200 and download.data == RESULT
    assert "attachment" in download.headers["Content-Disposition"]
    assert browser_client.get(f"/batches/{running}/result").status_code == 409

    stranger = app.test_client()
    sign_up(stranger)
    token = csrf_token(stranger, "/batches")
    for path in (f"/batches/{done}/result", f"/batches/{running}/row"):
        assert stranger.get(path).status_code == 404, path
    assert (
        stranger.post(f"/batches/{running}/cancel", data={"csrf_token": token}).status_code == 404
    )

    token = csrf_token(browser_client, "/batches")
    resp = browser_client.post(f"/batches/{running}/cancel", data={"csrf_token": token})
    assert resp.status_code == 303
    row = browser_client.get(f"/batches/{running}/row").get_data(as_text=True)
    assert "cancelled" in row and "hx-get" not in row  # finished: the row stops polling
