"""Sync predictions that travel with their rows: the queue entry of a `/predict` call.

A synchronous predict answers from the worker's reply, so the web tier need not write the job
row first: it queues the rows themselves (this entry) and waits. The worker predicts, inserts the
finished row (the prediction history) with its batch, and replies with the job object. Only when
the client's timeout runs out does the web tier insert the row, as `queued`, and queue its id:
from the 202 on the job is as durable as any other (docs/design.md, "Guarantees"). Until then
nothing was promised: a web process that dies mid-wait has answered nothing, like an in-process
server would.

Entries in a model's pending list are either a job id (the row is in PostgreSQL) or one of these
JSON objects; `is_inline` tells them apart by the first byte. A job id a caller waits for (a sync
predict too big to travel inline, or with an Idempotency-Key) is marked (`waited_entry`): the
worker then replies with the finished job object, as to an inline job's waiter, instead of a
bare wake-up that the waiter follows with a read of the row (of a 10,000-row result, ~2.7 ms).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from shared.jobs.table import JOB_ROUTES

# An inline entry found after its deadline plus this grace is dropped: by then the web tier has
# either answered 202 (and the job's id is queued too) or died without answering anyone.
DEADLINE_GRACE_S = 5.0


@dataclass(frozen=True)
class InlineJob:
    id: str
    model_id: str
    owner_id: str
    model_version: int
    inputs: Any  # shared/jobs/inputs.to_text: a small matrix (lists when read back), or base64
    return_probabilities: bool
    created_at: float  # epoch seconds, the web tier's clock
    deadline: float  # when the web tier stops waiting (epoch seconds)
    request_id: str | None
    return_scores: bool = False  # after the fields every entry has (entries queued before it)
    route: str = "explicit"  # how the version was chosen (shared/jobs/table.JOB_ROUTES)
    shadow_of: str | None = None  # a shadow copy's primary job id

    def encode(self) -> str:
        # orjson writes dataclass fields in order (entry_id relies on it) and matrices natively.
        return orjson.dumps(self, option=orjson.OPT_SERIALIZE_NUMPY).decode()

    def stale(self, now: float) -> bool:
        return now > self.deadline + DEADLINE_GRACE_S


def is_inline(entry: str) -> bool:
    return entry.startswith("{")


_ID_AT = slice(len('{"id":"'), len('{"id":"') + 36)  # `id` is the first field encode() writes
_WAITED = "+reply"  # the mark of a job id whose caller waits for the job (`waited_entry`)


def entry_id(entry: str) -> str:
    """The job id of any queue entry, without parsing an inline job's rows."""
    return entry[_ID_AT] if is_inline(entry) else entry.removesuffix(_WAITED)


def waited_entry(job_id: object) -> str:
    """The queue entry of a job id whose caller waits for the finished job object."""
    return f"{job_id}{_WAITED}"


def wants_reply(entry: str) -> bool:
    return entry.endswith(_WAITED)


def decode(entry: str) -> InlineJob:
    fields: dict[str, Any] = orjson.loads(entry)
    return InlineJob(**fields)


def parse(entry: str) -> InlineJob:
    """`decode`, checking every field a worker relies on (ValueError otherwise): an entry no
    drain can process must be set aside, not fail each drain that meets it (issue 18)."""
    try:
        job = decode(entry)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"not an inline job: {exc}") from exc
    for name in ("id", "model_id", "owner_id"):
        uuid.UUID(_typed(job, name, str))
    _typed(job, "model_version", int)
    _typed(job, "return_probabilities", bool)
    _typed(job, "return_scores", bool)
    if _typed(job, "route", str) not in JOB_ROUTES:
        raise ValueError(f"route {job.route!r:.20} is not one of {JOB_ROUTES}")
    if job.shadow_of is not None:
        uuid.UUID(_typed(job, "shadow_of", str))
    for name in ("created_at", "deadline"):
        if not math.isfinite(_typed(job, name, (int, float))):
            raise ValueError(f"{name} is not a finite number")
    if job.request_id is not None and len(_typed(job, "request_id", str)) > 64:
        raise ValueError("request_id is longer than 64 characters")
    return job


def _typed(job: InlineJob, name: str, kind: type | tuple[type, ...]) -> Any:
    value = getattr(job, name)
    # bool is an int: a flag is no version or timestamp, and a number no flag.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"{name} has the wrong type ({type(value).__name__})")
    return value


def new_id() -> str:
    return str(uuid.uuid4())
