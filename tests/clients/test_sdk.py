"""The Python SDK against the real server over HTTP (and a tiny local server for retries)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mlsp import (
    AuthError,
    Client,
    Conflict,
    Job,
    JobGroup,
    Model,
    NotFound,
    RateLimited,
    ValidationError,
)
from mlsp.errors import parse_retry_after
from mlsp.rows import as_rows, chunked
from shared.config import Settings
from tests.clients.typed import NAMES, local_frame
from tests.clients.typed import ROWS as TYPED_ROWS
from tests.fixtures.live import serve
from tests.fixtures.models import dump, fit_classifier, iris
from web import create_app

ROWS = iris()[0][::30]
PASSWORD = "sdk-password-123"


@pytest.fixture
def sdk(live_url, api_key):
    with Client(live_url, api_key=api_key) as client:
        yield client


@pytest.mark.e2e
def test_upload_predict_submit_and_history(sdk, tmp_path):
    local = fit_classifier()
    model = sdk.upload(dump(local, tmp_path / "m.joblib"), "iris", description="d", sample=ROWS)
    assert isinstance(model, Model) and model.status == "ready" and model.n_features == 4
    assert sdk.models() == [model] and sdk.model(model.id) == model
    assert sdk.find_model("iris").version == 1
    job = sdk.predict(model, ROWS, return_probabilities=True)
    assert job.status == "succeeded"
    assert job.predictions == local.predict(ROWS).tolist()
    np.testing.assert_allclose(job.probabilities, local.predict_proba(ROWS))
    queued = model.submit(ROWS.tolist())
    assert isinstance(queued, Job)
    assert queued.wait(timeout=20).predictions == local.predict(ROWS).tolist()
    assert {j.id for j in sdk.jobs(model=model)} == {job.id, queued.id}
    with pytest.raises(Conflict) as err:
        sdk.cancel(queued)
    assert err.value.code == "job_finished" and err.value.status == 409


@pytest.mark.e2e
def test_errors_carry_the_api_code(sdk, live_url, tmp_path):
    model = sdk.upload(dump(fit_classifier(), tmp_path / "m.joblib"), "iris")
    with pytest.raises(ValidationError) as err:
        sdk.predict(model, [[1, 2, 3]])
    assert (err.value.status, err.value.code) == (422, "invalid_input")
    assert err.value.details["row"] == 0
    sdk.disable_model(model)
    with pytest.raises(Conflict) as err:
        sdk.predict(model, ROWS)
    assert err.value.code == "model_not_ready"
    assert sdk.enable_model(model).status == "ready"
    sdk.delete_model(model.id)
    with pytest.raises(NotFound) as err:
        sdk.model(model)
    assert err.value.code == "not_found"
    with pytest.raises(AuthError) as err:
        Client(live_url, api_key="mlp_" + "x" * 43).models()
    assert (err.value.status, err.value.code) == (401, "unauthorized")


@pytest.mark.e2e
def test_accounts_and_keys(live_url):
    email = f"sdk-{secrets.token_hex(3)}@example.com"
    client = Client(live_url)
    assert client.register(email, PASSWORD)["email"] == email
    client.login(email, PASSWORD)
    key = client.create_api_key("laptop", expires_in_days=5)
    assert [k["id"] for k in client.api_keys()] == [key["id"]]
    assert Client(live_url, api_key=key["key"]).me()["email"] == email
    client.revoke_api_key(key["id"])
    with pytest.raises(AuthError):
        Client(live_url, api_key=key["key"]).me()


@pytest.mark.e2e
def test_rate_limited_server_is_retried(worker, tmp_path):
    """A real app with a 2/second predict limit: every call succeeds after waiting."""
    limited = create_app(Settings(RATE_LIMIT_ENABLED=True, RATE_LIMIT_PREDICT="2/second"))
    with serve(limited) as url:
        email = f"rl-{secrets.token_hex(3)}@example.com"
        setup = Client(url)
        setup.register(email, PASSWORD)
        setup.login(email, PASSWORD)
        client = Client(url, api_key=setup.create_api_key("rl")["key"], max_retries=5)
        waits: list[float] = []
        client.http.sleep = lambda s: (waits.append(s), time.sleep(s))
        model = client.upload(dump(fit_classifier(), tmp_path / "m.joblib"), "iris")
        jobs = [client.predict(model, ROWS[:1]) for _ in range(5)]
    assert all(j.status == "succeeded" for j in jobs)
    assert waits and all(0 < w <= 2 for w in waits)  # waited what Retry-After asked
    assert len({j.id for j in jobs}) == 5


class _Busy(BaseHTTPRequestHandler):
    """Answers 429 with `Retry-After: 1` `busy` times, then 200."""

    busy = 2
    calls: list[float] = []

    def do_GET(self) -> None:
        type(self).calls.append(time.monotonic())
        retry = len(self.calls) <= self.busy
        body = json.dumps(
            {"error": {"code": "rate_limited", "message": "slow down"}} if retry else {"ok": 1}
        ).encode()
        self.send_response(429 if retry else 200)
        if retry:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def busy_server():
    _Busy.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.mark.no_db
def test_retry_after_is_honoured_then_bounded(busy_server):
    url = f"http://127.0.0.1:{busy_server.server_port}"
    assert Client(url, max_retries=3).health() == {"ok": 1}
    gaps = np.diff(_Busy.calls)
    assert len(_Busy.calls) == 3 and all(g >= 0.95 for g in gaps)
    _Busy.calls, _Busy.busy = [], 99
    with pytest.raises(RateLimited) as err:
        Client(url, max_retries=1).health()
    assert (err.value.code, err.value.retry_after, len(_Busy.calls)) == ("rate_limited", 1, 2)
    _Busy.calls = []
    with pytest.raises(RateLimited):  # asks for more than the client may wait: no retry
        Client(url, max_retry_wait=0.5).health()
    assert len(_Busy.calls) == 1


@pytest.mark.no_db
def test_retry_after_formats():
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("soon") is None


@pytest.mark.no_db
def test_rows_from_frames_series_and_flat_rows():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1.5, np.nan], "b": ["x", None], "c": pd.array([1, pd.NA])})
    assert as_rows(frame) == [{"a": 1.5, "b": "x", "c": 1}, {"a": None, "b": None, "c": None}]
    assert as_rows(pd.Series({"a": 1.0, "b": np.nan})) == [{"a": 1.0, "b": None}]
    assert as_rows(pd.Series([5.1, 3.5])) == [[5.1, 3.5]]
    assert as_rows([5.1, 3.5, 1.4, 0.2]) == [[5.1, 3.5, 1.4, 0.2]]
    assert as_rows(np.array([5.1, np.nan])) == [[5.1, None]]
    assert as_rows(np.array([[1.0, 2.0], [3.0, np.nan]])) == [[1.0, 2.0], [3.0, None]]
    assert as_rows([[np.float32(1.5), np.int64(2)]]) == [[1.5, 2]]
    with pytest.raises(ValidationError) as err:
        as_rows([[1.0], [np.inf]])
    assert err.value.details == {"row": 1, "column": 0}


@pytest.mark.no_db
def test_typed_rows_keep_strings_and_booleans():
    pd = pytest.importorskip("pandas")
    frame = local_frame(TYPED_ROWS[:2])  # pandas' str columns (NaN for missing), bool, int, float
    assert as_rows(frame) == [dict(zip(NAMES, row, strict=True)) for row in TYPED_ROWS[:2]]
    rows = as_rows(frame.to_numpy())  # an object array: numpy scalars and NaN
    assert rows == [list(row) for row in TYPED_ROWS[:2]]
    assert [type(v) for v in rows[0]] == [float, str, bool, int, str]
    assert as_rows([[np.str_("a"), np.bool_(True), np.int8(3)]]) == [["a", True, 3]]
    assert type(as_rows([[np.str_("a")]])[0][0]) is str
    with pytest.raises(ValidationError) as err:  # no JSON form: named here, not by json.dumps
        as_rows(pd.DataFrame({"when": pd.to_datetime(["2026-01-01", "2026-01-02"])}))
    assert err.value.details == {"row": 0, "column": "when"}


@pytest.mark.no_db
def test_chunks_keep_order_and_idempotency_keys_per_chunk():
    assert chunked(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    assert chunked([[1]], 10) == [[[1]]]


@pytest.mark.e2e
def test_more_rows_than_one_request_go_as_several_jobs_in_order(live_url, api_key, tmp_path):
    local = fit_classifier()
    rows = iris()[0][::7]  # 22 rows, in chunks of at most 8
    with Client(live_url, api_key=api_key, max_rows_per_request=8) as client:
        model = client.upload(dump(local, tmp_path / "m.joblib"), "iris")
        answer = client.predict(model, rows, return_probabilities=True)
        assert isinstance(answer, JobGroup) and len(answer.jobs) == 3
        assert [len(j.predictions) for j in answer.jobs] == [8, 8, 6]
        assert answer.status == "succeeded" and answer.predictions == local.predict(rows).tolist()
        np.testing.assert_allclose(answer.probabilities, local.predict_proba(rows))
        queued = client.submit(model, rows, idempotency_key="batch-1")
        again = client.submit(model, rows, idempotency_key="batch-1")
        assert [j.id for j in again.jobs] == [j.id for j in queued.jobs]
        assert queued.wait(timeout=30).predictions == local.predict(rows).tolist()


@pytest.mark.e2e
def test_missing_values_are_sent_as_null(sdk, tmp_path):
    pd = pytest.importorskip("pandas")
    model = sdk.upload(dump(fit_classifier(), tmp_path / "m.joblib"), "iris")
    frame = pd.DataFrame(iris()[0][:2], columns=[f"f{i}" for i in range(4)])
    frame.iloc[1, 2] = np.nan
    with pytest.raises(ValidationError) as err:  # a typed 422, not requests' InvalidJSONError
        sdk.predict(model, frame.to_numpy())
    assert err.value.code == "invalid_input" and err.value.details == {"row": 1, "column": 2}
    with pytest.raises(ValidationError) as err:
        sdk.predict(model, [[1.0, 2.0, 3.0, 4.0], 5])
    assert "each row must be a list or an object" in err.value.message


@pytest.mark.e2e
def test_a_frame_of_strings_booleans_and_missing_values_goes_as_it_is(sdk, typed, pipeline):
    frame = local_frame(TYPED_ROWS)
    model = sdk.model(typed["id"])
    job = sdk.predict(model, frame, return_probabilities=True)
    assert job.status == "succeeded"
    assert job.predictions == pipeline.predict(frame).tolist()
    np.testing.assert_allclose(job.probabilities, pipeline.predict_proba(frame), rtol=1e-9)
    assert model.submit(frame.to_numpy()).wait(timeout=30).predictions == job.predictions
    unknown = frame.assign(plan=["pro", "basic", "gold", "pro"])  # the encoder raises on it
    with pytest.raises(ValidationError) as err:
        sdk.predict(model, unknown)
    assert err.value.details == {"row": 2, "column": "plan"}
    assert "unknown category 'gold'" in err.value.message
    missing = frame.assign(member=[True, None, False, True])  # not nullable
    with pytest.raises(ValidationError) as err:
        sdk.predict(model, missing)
    assert err.value.details == {"row": 1, "column": "member"}


@pytest.mark.e2e
def test_a_model_that_fails_validation_is_returned_failed(sdk, tmp_path):
    """The server answers 422 invalid_model; the SDK returns the failed record it points to."""
    path = dump(fit_classifier(), tmp_path / "m.joblib")
    cut = tmp_path / "cut.joblib"
    cut.write_bytes(path.read_bytes()[:200])
    model = sdk.upload(cut, "cut")
    assert isinstance(model, Model) and model.status == "failed" and model.error
