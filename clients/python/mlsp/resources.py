"""Models and jobs as returned by the API, with the actions that concern them."""

from __future__ import annotations

import time
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsp.errors import BatchFailed, BatchTimeout, JobFailed, JobTimeout

if TYPE_CHECKING:
    from mlsp.client import Client

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "expired"})
MAX_LONG_POLL_S = 60  # the server's bound on `GET /jobs/{id}?wait=`
ACTIVE_BATCH_STATUSES = frozenset({"queued", "running"})


class Resource:
    """An API object: its JSON fields in `raw`, also readable as attributes."""

    def __init__(self, client: Client, raw: dict[str, Any]) -> None:
        self._client = client
        self.raw = raw

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["raw"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def id(self) -> str:
        return self.raw["id"]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.id == self.id  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.id)


class Model(Resource):
    """One model version (the API's model object)."""

    def __repr__(self) -> str:
        return f"<Model {self.raw['name']} v{self.raw['version']} {self.raw['status']} {self.id}>"

    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def version(self) -> int:
        return self.raw["version"]

    @property
    def status(self) -> str:
        return self.raw["status"]

    @property
    def n_features(self) -> int | None:
        return (self.raw.get("input_schema") or {}).get("n_features")

    @property
    def feature_names(self) -> list[str] | None:
        return (self.raw.get("input_schema") or {}).get("feature_names")

    @property
    def has_proba(self) -> bool:
        return bool((self.raw.get("output_schema") or {}).get("has_proba"))

    def predict(self, rows: Any, **kwargs: Any) -> Job:
        """`Client.predict` on this model."""
        return self._client.predict(self, rows, **kwargs)

    def submit(self, rows: Any, **kwargs: Any) -> Job:
        """`Client.submit` on this model."""
        return self._client.submit(self, rows, **kwargs)


class Job(Resource):
    """One prediction job (the API's job object)."""

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.raw['status']}>"

    @property
    def status(self) -> str:
        return self.raw["status"]

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def predictions(self) -> list[Any] | None:
        return (self.raw.get("result") or {}).get("predictions")

    @property
    def probabilities(self) -> list[list[float]] | None:
        return (self.raw.get("result") or {}).get("probabilities")

    @property
    def classes(self) -> list[Any] | None:
        return (self.raw.get("result") or {}).get("classes")

    def refresh(self, wait: float = 0) -> Job:
        """Reload from the server, long-polling up to `wait` seconds for it to finish."""
        self.raw = self._client.job(self.id, wait=wait).raw
        return self

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the job finishes (any final status); JobTimeout after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            left = MAX_LONG_POLL_S if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise JobTimeout(self, timeout or 0)
            self.refresh(wait=min(left, MAX_LONG_POLL_S))
        return self

    def raise_for_status(self) -> Job:
        """JobFailed unless the job succeeded (or is still going)."""
        if self.done and self.status != "succeeded":
            raise JobFailed(self)
        return self

    def cancel(self) -> Job:
        """Cancel it (Conflict once it has finished)."""
        self.raw = self._client.cancel(self).raw
        return self


class JobGroup:
    """The jobs of one call that had more rows than one request takes, in input order, read as
    one: `predictions` (and `probabilities`) are theirs concatenated."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs

    def __repr__(self) -> str:
        return f"<JobGroup of {len(self.jobs)} jobs {self.status}>"

    @property
    def done(self) -> bool:
        return all(job.done for job in self.jobs)

    @property
    def status(self) -> str:
        """The first unfinished job's status, else the first unsuccessful one's, else
        `succeeded`."""
        unfinished = [job.status for job in self.jobs if not job.done]
        unsuccessful = [job.status for job in self.jobs if job.status != "succeeded"]
        return (unfinished or unsuccessful or ["succeeded"])[0]

    @property
    def predictions(self) -> list[Any] | None:
        return _joined([job.predictions for job in self.jobs])

    @property
    def probabilities(self) -> list[list[float]] | None:
        return _joined([job.probabilities for job in self.jobs])

    @property
    def classes(self) -> list[Any] | None:
        return self.jobs[0].classes

    @property
    def raw(self) -> dict[str, Any]:
        """What the CLI shows: the jobs' ids, the status and the joined result."""
        predictions = self.predictions
        result = {
            "predictions": predictions,
            "probabilities": self.probabilities,
            "classes": self.classes,
        }
        return {
            "jobs": [job.id for job in self.jobs],
            "status": self.status,
            "result": result if predictions else None,
            "error": next(
                (job.raw.get("error") for job in self.jobs if job.raw.get("error")), None
            ),
        }

    def refresh(self, wait: float = 0) -> JobGroup:
        for job in self.jobs:
            job.refresh(wait=0 if job.done else wait)
        return self

    def wait(self, timeout: float | None = None) -> JobGroup:
        """Block until every job finishes; JobTimeout after `timeout` s in all."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in self.jobs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            job.wait(timeout=left)
        return self

    def raise_for_status(self) -> JobGroup:
        """JobFailed for the first job that did not succeed."""
        for job in self.jobs:
            job.raise_for_status()
        return self

    def cancel(self) -> JobGroup:
        """Cancel the jobs that have not finished."""
        for job in self.jobs:
            if not job.done:
                job.cancel()
        return self


class Batch(Resource):
    """One batch: a file the server predicts chunk by chunk (the API's batch object)."""

    def __repr__(self) -> str:
        done, total = self.raw["rows_done"], self.raw["rows_total"]
        return f"<Batch {self.id} {self.raw['status']} {done}/{total}>"

    @property
    def status(self) -> str:
        return self.raw["status"]

    @property
    def done(self) -> bool:
        """Finished, one way or another (succeeded, partial, failed or cancelled)."""
        return self.status not in ACTIVE_BATCH_STATUSES

    @property
    def rows_total(self) -> int | None:
        """Rows in the file; None until the server has read it through (planning)."""
        return self.raw["rows_total"]

    @property
    def rows_done(self) -> int:
        return self.raw["rows_done"]

    @property
    def rows_failed(self) -> int:
        return self.raw["rows_failed"]

    @property
    def model_id(self) -> str:
        return self.raw["model_id"]

    @property
    def output_format(self) -> str:
        return self.raw["output_format"]

    @property
    def error(self) -> str | None:
        return self.raw.get("error")

    def refresh(self) -> Batch:
        """Reload from the server."""
        self.raw = self._client.batch(self.id).raw
        return self

    def wait(
        self,
        timeout: float | None = None,
        poll: float = 1.0,
        on_progress: Callable[[Batch], None] | None = None,
    ) -> Batch:
        """Poll every `poll` s until the batch finishes (any final status), calling
        `on_progress(batch)` after each look; BatchTimeout after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if on_progress is not None:
                on_progress(self)
            if self.done:
                return self
            left = poll if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise BatchTimeout(self, timeout or 0)
            time.sleep(min(poll, left))
            self.refresh()

    def raise_for_status(self) -> Batch:
        """BatchFailed when it failed or was cancelled; `partial` has a result (and failed rows,
        each with its `error`), so it is not raised."""
        if self.status in ("failed", "cancelled"):
            raise BatchFailed(self)
        return self

    def download(self, path: str | PathLike[str]) -> Path:
        """Write the result file to `path` (streamed in blocks; Conflict until it has
        succeeded or is partial)."""
        return self._client.download_batch(self, path)

    def cancel(self) -> Batch:
        """Cancel it (Conflict once it has finished)."""
        self.raw = self._client.cancel_batch(self).raw
        return self


def _joined(parts: list[list[Any] | None]) -> list[Any] | None:
    if any(part is None for part in parts):
        return None
    return [item for part in parts for item in part]
