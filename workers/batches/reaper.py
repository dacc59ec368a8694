"""What the reaper re-sends for batches (PostgreSQL is the record; a lost message, a Redis
restart or a dead worker only delays a batch): plans never run, chunks whose message was lost or
whose worker died, results never written. Each re-send moves the row's clock, so one item is
re-sent at most once per period."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

_PLANS = text(
    "UPDATE batches SET enqueued_at = now() WHERE status = 'queued'"
    " AND coalesce(enqueued_at, created_at) < now() - make_interval(secs => :queued)"
    " RETURNING id"
)
# A running chunk past the deadline goes back to `queued`: only a queued chunk can be claimed.
_CHUNKS = text(
    "UPDATE batch_chunks c SET status = 'queued', updated_at = now() FROM batches b"
    " WHERE b.id = c.batch_id AND b.status = 'running' AND ("
    " (c.status = 'queued' AND c.updated_at < now() - make_interval(secs => :queued))"
    " OR (c.status = 'running' AND c.updated_at < now() - make_interval(secs => :running)))"
    " RETURNING c.batch_id, c.index"
)
_RESULTS = text(
    "UPDATE batches SET enqueued_at = now() WHERE status = 'running'"
    " AND chunks_done = chunks_total"
    " AND coalesce(enqueued_at, created_at) < now() - make_interval(secs => :queued)"
    " RETURNING id"
)


@dataclass
class Stuck:
    plans: list[uuid.UUID] = field(default_factory=list)
    chunks: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    results: list[uuid.UUID] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.plans) + len(self.chunks) + len(self.results)


def find_stuck(session: Session, queued_after_s: float, running_after_s: float) -> Stuck:
    """Items to send again: queued past `queued_after_s` (their message may be lost), running
    past `running_after_s` (no task outlives its hard time limit: its worker died)."""
    queued = {"queued": queued_after_s}
    return Stuck(
        [r.id for r in session.execute(_PLANS, queued)],
        [
            (r.batch_id, r.index)
            for r in session.execute(_CHUNKS, queued | {"running": running_after_s})
        ],
        [r.id for r in session.execute(_RESULTS, queued)],
    )
