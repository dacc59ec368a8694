"""`Client`: the whole HTTP API as Python calls."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

import requests

from mlsp.aliases import AliasesMixin
from mlsp.errors import JobTimeout, NotFound, Unavailable, ValidationError
from mlsp.multipart import form_body
from mlsp.resources import MAX_LONG_POLL_S, Batch, Job, JobGroup, Model
from mlsp.rows import as_rows, chunked
from mlsp.transport import Transport

ModelRef = str | uuid.UUID | Model
JobRef = str | uuid.UUID | Job
BatchRef = str | uuid.UUID | Batch
BatchFile = str | PathLike[str] | BinaryIO
PER_PAGE = 100  # the API's largest page
# After the last byte of a batch file the server copies it into its store and reads its header
# before it answers: seconds allowed for that, beyond the client's usual timeout.
BATCH_ANSWER_S = 300.0
DOWNLOAD_BLOCK_BYTES = 1 << 20


def _id(ref: ModelRef | JobRef | BatchRef) -> str:
    return ref.id if isinstance(ref, Model | Job | Batch) else str(ref)


@contextmanager
def _opened(file: BatchFile) -> Iterator[tuple[BinaryIO, str]]:
    """(binary stream, file name): a path is opened (and closed after); a stream is read from
    its current position."""
    if isinstance(file, str | PathLike):
        with open(file, "rb") as stream:
            yield stream, os.path.basename(os.fspath(file))
    else:
        yield file, os.path.basename(str(getattr(file, "name", "") or "")) or "input"


def _batch_fields(
    output_format: str | None, keep_columns: str | list[str] | None, probabilities: bool
) -> dict[str, str]:
    fields = {"return_probabilities": "true" if probabilities else "false"}
    if output_format is not None:
        fields["output_format"] = output_format
    if keep_columns:
        kept = keep_columns if isinstance(keep_columns, str) else ",".join(keep_columns)
        fields["keep_columns"] = kept
    return fields


def _key(key: str | None, index: int, chunks: int) -> str | None:
    """Each chunk's own Idempotency-Key, derived from the call's: a retried call repeats them."""
    return key if key is None or chunks == 1 else f"{key}.{index}"


class Client(AliasesMixin):
    """A connection to one server, authenticated by an API key or an access token (JWT).

    Answers of 429/503 are retried (up to `max_retries`, waiting what `Retry-After` asks,
    at most `max_retry_wait` s each); other failures raise `mlsp.errors.MlspError` subclasses.
    More rows than `max_rows_per_request` (the server's MAX_ROWS_PER_REQUEST) go as several
    jobs, in order, answered together as a `JobGroup`.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        max_rows_per_request: int = 10_000,
    ) -> None:
        self.max_rows_per_request = max_rows_per_request
        self.http = Transport(
            url,
            api_key=api_key,
            token=token,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
        )

    @property
    def url(self) -> str:
        return self.http.url

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.http.request(method, path, **kwargs)
        return resp.json() if resp.content else None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Accounts and API keys (keys can only be managed with a password login, i.e. a token)

    def register(self, email: str, password: str) -> dict[str, Any]:
        """Create an account."""
        return self._json("POST", "/auth/register", json={"email": email, "password": password})

    def login(self, email: str, password: str) -> dict[str, Any]:
        """Log in with a password; this client then uses the access token. Returns the tokens."""
        tokens = self._json("POST", "/auth/login", json={"email": email, "password": password})
        self.http.api_key, self.http.token = None, tokens["access_token"]
        return tokens

    def logout(self) -> None:
        """Revoke the access token this client logged in with."""
        self._json("POST", "/auth/logout")
        self.http.token = None

    def me(self) -> dict[str, Any]:
        """The authenticated account."""
        return self._json("GET", "/auth/me")

    def api_keys(self) -> list[dict[str, Any]]:
        """The account's API keys (without secrets)."""
        return self._json("GET", "/api-keys")["items"]

    def create_api_key(self, name: str, expires_in_days: int | None = None) -> dict[str, Any]:
        """A new key; its secret (`key`) is only in this answer."""
        body: dict[str, Any] = {"name": name}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        return self._json("POST", "/api-keys", json=body)

    def revoke_api_key(self, key_id: str) -> None:
        """Delete a key; it stops working at once."""
        self._json("DELETE", f"/api-keys/{key_id}")

    # Models

    def upload(
        self,
        path: str | PathLike[str],
        name: str,
        description: str | None = None,
        sample: list[Any] | None = None,
        wait: float = 60.0,
    ) -> Model:
        """Upload a model file; wait up to `wait` s for its validation (status `ready` or
        `failed` with `error`; still `validating` if it takes longer)."""
        data: dict[str, str] = {"name": name}
        if description is not None:
            data["description"] = description
        if sample is not None:
            data["sample"] = json.dumps(as_rows(sample))
        with open(path, "rb") as fh:
            files = {"file": (Path(path).name, fh)}
            try:
                model = Model(self, self._json("POST", "/models", data=data, files=files))
            except ValidationError as exc:
                if exc.code != "invalid_model":
                    raise
                return self.model(exc.details["model_id"])  # failed: its record says why
        return self._until_validated(model, wait)

    def _until_validated(self, model: Model, wait: float) -> Model:
        deadline = time.monotonic() + wait
        while model.status == "validating" and time.monotonic() < deadline:
            time.sleep(0.5)  # the API has no long-poll for models
            model = self.model(model)
        return model

    def _pages(self, path: str, params: dict[str, Any], limit: int | None) -> Iterator[dict]:
        page = 1
        while True:
            body = self._json("GET", path, params={**params, "page": page, "per_page": PER_PAGE})
            for n, item in enumerate(body["items"], start=(page - 1) * PER_PAGE):
                if limit is not None and n >= limit:
                    return
                yield item
            if page * PER_PAGE >= body["total"] or not body["items"]:
                return
            page += 1

    def models(self, name: str | None = None, status: str | None = None) -> list[Model]:
        """The account's models, newest first (every page)."""
        params = {k: v for k, v in {"name": name, "status": status}.items() if v}
        return [Model(self, m) for m in self._pages("/models", params, None)]

    def model(self, model: ModelRef) -> Model:
        """One model by id (or a fresh copy of a Model)."""
        return Model(self, self._json("GET", f"/models/{_id(model)}"))

    def find_model(self, name: str, version: int | None = None) -> Model:
        """The model `name` at `version`; without one, the newest ready version."""
        found = self.models(name=name)
        if version is not None:
            found = [m for m in found if m.version == version]
        else:
            found = [m for m in found if m.status == "ready"] or found
        if not found:
            suffix = f" version {version}" if version is not None else ""
            raise NotFound(f"Model '{name}'{suffix} not found", status=404, code="not_found")
        return max(found, key=lambda m: m.version)

    def update_model(self, model: ModelRef, **fields: Any) -> Model:
        """PATCH `description`, `status` ("ready"/"disabled") or `runtime`."""
        return Model(self, self._json("PATCH", f"/models/{_id(model)}", json=fields))

    def disable_model(self, model: ModelRef) -> Model:
        """Stop taking predictions."""
        return self.update_model(model, status="disabled")

    def enable_model(self, model: ModelRef) -> Model:
        """Take predictions again."""
        return self.update_model(model, status="ready")

    def delete_model(self, model: ModelRef) -> None:
        """Soft delete: gone from lists and predictions; history kept."""
        self._json("DELETE", f"/models/{_id(model)}")

    def analytics(self, model: ModelRef, days: int = 7) -> dict[str, Any]:
        """Job counts, success rate and latency percentiles of the last `days` days."""
        return self._json("GET", f"/models/{_id(model)}/analytics", params={"days": days})

    # Predictions

    def submit(
        self,
        model: ModelRef,
        rows: Any,
        return_probabilities: bool = False,
        idempotency_key: str | None = None,
    ) -> Job | JobGroup:
        """Queue a job (202) and return it at once; `.wait()` for the result. A fresh
        Idempotency-Key per call makes retries safe (one job, however often it is sent)."""
        chunks = chunked(as_rows(rows), self.max_rows_per_request)
        jobs = [
            Job(
                self,
                self._send(
                    model,
                    "jobs",
                    chunk,
                    return_probabilities,
                    _key(idempotency_key, i, len(chunks)),
                ),
            )
            for i, chunk in enumerate(chunks)
        ]
        return jobs[0] if len(jobs) == 1 else JobGroup(jobs)

    def predict(
        self,
        model: ModelRef,
        rows: Any,
        timeout: float = 30.0,
        return_probabilities: bool = False,
    ) -> Job | JobGroup:
        """Predict and wait up to `timeout` s: the succeeded job (`.predictions`, ...).
        Raises JobFailed if the job failed, JobTimeout (with `.job`) if it is still going."""
        deadline = time.monotonic() + timeout
        chunks = chunked(as_rows(rows), self.max_rows_per_request)
        try:
            jobs = [self._predict(model, chunk, deadline, return_probabilities) for chunk in chunks]
        except JobTimeout as exc:
            raise JobTimeout(exc.job, timeout) from None
        return jobs[0] if len(jobs) == 1 else JobGroup(jobs)

    def _predict(self, model: ModelRef, rows: list[Any], deadline: float, proba: bool) -> Job:
        left = max(0.0, deadline - time.monotonic())
        raw = self._send(model, "predict", rows, proba, None, min(left, MAX_LONG_POLL_S))
        # 202: the server stopped waiting first (its bound is 60 s); keep waiting here.
        job = Job(self, raw).wait(timeout=max(0.0, deadline - time.monotonic()))
        return job.raise_for_status()

    def _send(
        self,
        model: ModelRef,
        action: str,
        rows: list[Any],
        proba: bool,
        key: str | None,
        server_wait: float = 0,
    ) -> dict[str, Any]:
        body = {"inputs": rows, "return_probabilities": proba}
        return self._json(
            "POST",
            f"/models/{_id(model)}/{action}",
            json=body,
            headers={"Idempotency-Key": key or uuid.uuid4().hex},
            params={"timeout": server_wait} if action == "predict" else None,
            timeout=self.http.timeout + server_wait,
        )

    def job(self, job: JobRef, wait: float = 0) -> Job:
        """One job; `wait` long-polls up to that many seconds (max 60) for it to finish."""
        params = {"wait": wait} if wait else None
        return Job(
            self,
            self._json("GET", f"/jobs/{_id(job)}", params=params, timeout=self.http.timeout + wait),
        )

    def jobs(
        self, model: ModelRef | None = None, status: str | None = None, limit: int = 100
    ) -> list[Job]:
        """The prediction history, newest first (at most `limit` jobs)."""
        params = {"model_id": _id(model) if model else None, "status": status}
        params = {k: v for k, v in params.items() if v}
        return [Job(self, j) for j in self._pages("/jobs", params, limit)]

    def cancel(self, job: JobRef) -> Job:
        """Cancel a queued or running job (Conflict once it has finished)."""
        return Job(self, self._json("DELETE", f"/jobs/{_id(job)}"))

    # Batches: a whole file predicted by the server, chunk by chunk

    def batch_predict(
        self,
        model: ModelRef,
        file: BatchFile,
        *,
        output_format: str | None = None,
        keep_columns: str | list[str] | None = None,
        return_probabilities: bool = False,
        filename: str | None = None,
    ) -> Batch:
        """Send a CSV (with a header row) or Parquet file to be predicted; returns the queued
        batch at once (`.wait()`, then `.download(path)`). The file is streamed from disk, never
        read whole into memory. `output_format`: "csv" or "parquet" (default: the input's);
        `keep_columns`: input columns copied to the output (a list, "a,b" or "*")."""
        fields = _batch_fields(output_format, keep_columns, return_probabilities)
        with _opened(file) as (stream, name):
            body, content_type = form_body(fields, "file", filename or name, stream)
            raw = self._json(
                "POST",
                f"/models/{_id(model)}/batches",
                data=body,
                headers={"Content-Type": content_type},
                timeout=self.http.timeout + BATCH_ANSWER_S,
            )
        return Batch(self, raw)

    def batch(self, batch: BatchRef) -> Batch:
        """One batch, with its progress (`rows_done` of `rows_total`)."""
        return Batch(self, self._json("GET", f"/batches/{_id(batch)}"))

    def batches(self, model: ModelRef | None = None, status: str | None = None) -> list[Batch]:
        """The account's batches, newest first (every page)."""
        params = {"model_id": _id(model) if model else None, "status": status}
        params = {k: v for k, v in params.items() if v}
        return [Batch(self, b) for b in self._pages("/batches", params, None)]

    def cancel_batch(self, batch: BatchRef) -> Batch:
        """Cancel a queued or running batch (Conflict once it has finished)."""
        return Batch(self, self._json("DELETE", f"/batches/{_id(batch)}"))

    def download_batch(self, batch: BatchRef, path: str | PathLike[str]) -> Path:
        """Write a finished batch's result file to `path`, in blocks, via `path`.part renamed
        when complete (Conflict until the batch has succeeded or is partial)."""
        target = Path(path)
        part = target.with_name(target.name + ".part")
        resp = self.http.request("GET", f"/batches/{_id(batch)}/result", stream=True)
        try:
            with resp, open(part, "wb") as out:
                for block in resp.iter_content(DOWNLOAD_BLOCK_BYTES):
                    out.write(block)
        except requests.RequestException as exc:
            part.unlink(missing_ok=True)
            raise Unavailable(f"the download was cut off: {exc}", code="unreachable") from exc
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, target)
        return target

    def health(self) -> dict[str, Any]:
        """Database, broker and worker status (no credentials needed)."""
        return self._json("GET", "/health")
