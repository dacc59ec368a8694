"""The pages' reads: each page is a fixed number of statements whatever the history holds
(paginated, aggregated in PostgreSQL, names joined in, never a query per row)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Row, func, select, tuple_

from shared.batches import Batch
from shared.jobs import Job
from shared.models import MLModel
from shared.schemas.common import PageQuery
from web.extensions import db
from web.pagination import page_of
from web.ui.sessions import current_user_id

PER_PAGE = 25
# The history counts at most this many jobs: a count is linear in what it counts, and "more than
# 10,000" says enough (the pages past it are still reachable).
COUNT_CAP = 10_000

# The history list never reads the wide columns (inputs, results).
JOB_LIST_COLUMNS = (
    Job.id,
    Job.model_id,
    Job.model_version,
    Job.status,
    Job.n_rows,
    Job.error_code,
    Job.total_ms,
    Job.created_at,
    Job.finished_at,
)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    page: int
    total: int
    per_page: int = PER_PAGE
    more: bool = False  # the total was capped: there are more rows than it says

    @property
    def pages(self) -> int:
        shown = max(1, -(-self.total // self.per_page))
        # Past a capped count, a page that came back full may have a next one.
        return (
            max(shown, self.page + 1) if self.more and len(self.items) == self.per_page else shown
        )


def _live_models() -> list[Any]:
    return [MLModel.owner_id == current_user_id(), MLModel.deleted_at.is_(None)]


def model_names(page: int) -> Page:
    """One page of the caller's model names (newest upload first), each with its latest version
    row, its version count and when any of its versions last took a job: three statements."""
    groups = (
        select(
            MLModel.name,
            func.count().label("versions"),
            func.max(MLModel.version).label("latest"),
            func.max(MLModel.created_at).label("uploaded"),
        )
        .where(*_live_models())
        .group_by(MLModel.name)
    )
    total = db.session.scalar(select(func.count()).select_from(groups.subquery())) or 0
    rows = db.session.execute(
        groups.order_by(func.max(MLModel.created_at).desc(), MLModel.name)
        .offset((page - 1) * PER_PAGE)
        .limit(PER_PAGE)
    ).all()
    latest = _latest_rows(rows)
    used = _last_used([r.name for r in rows])
    items = [
        {
            "name": r.name,
            "versions": r.versions,
            "model": latest[r.name],
            "last_used": used.get(r.name),
        }
        for r in rows
    ]
    return Page(items, page, total)


def _latest_rows(groups: list[Row]) -> dict[str, MLModel]:
    if not groups:
        return {}
    keys = [(g.name, g.latest) for g in groups]
    found = db.session.scalars(
        select(MLModel).where(*_live_models(), tuple_(MLModel.name, MLModel.version).in_(keys))
    )
    return {m.name: m for m in found}


def _last_used(names: list[str]) -> dict[str, datetime]:
    """Newest job per name: one backward step of the (model_id, created_at) index per version."""
    if not names:
        return {}
    newest = (
        select(func.max(Job.created_at))
        .where(Job.model_id == MLModel.id)
        .correlate(MLModel)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(MLModel.name, func.max(newest))
        .where(*_live_models(), MLModel.name.in_(names))
        .group_by(MLModel.name)
    )
    return {name: at for name, at in rows if at is not None}


def versions(name: str) -> list[MLModel]:
    """Every live version of one of the caller's model names, newest first (404 when none)."""
    return list(
        db.session.scalars(
            select(MLModel)
            .where(*_live_models(), MLModel.name == name)
            .order_by(MLModel.version.desc())
        )
    )


def name_choices(limit: int = 500) -> list[str]:
    """The caller's model names, for the history's model filter (suggestions, not a limit)."""
    return list(
        db.session.scalars(
            select(MLModel.name)
            .where(*_live_models())
            .distinct()
            .order_by(MLModel.name)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class JobFilters:
    model: str | None = None
    status: str | None = None
    day: date | None = None
    page: int = 1


def jobs_page(filters: JobFilters) -> Page:
    """One page of the caller's history, newest first, with each job's model name joined in."""
    where: list[Any] = [Job.owner_id == current_user_id()]
    if filters.model:
        names = select(MLModel.id).where(
            MLModel.owner_id == current_user_id(), MLModel.name == filters.model
        )
        where.append(Job.model_id.in_(names))
    if filters.status:
        where.append(Job.status == filters.status)
    if filters.day:
        start = datetime.combine(filters.day, time(), UTC)
        where += [Job.created_at >= start, Job.created_at < start + timedelta(days=1)]
    matching = select(Job.id).where(*where).limit(COUNT_CAP + 1).subquery()
    total = db.session.scalar(select(func.count()).select_from(matching)) or 0
    rows = db.session.execute(
        select(*JOB_LIST_COLUMNS, MLModel.name.label("model_name"))
        .join(MLModel, MLModel.id == Job.model_id)
        .where(*where)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .offset((filters.page - 1) * PER_PAGE)
        .limit(PER_PAGE)
    ).all()
    return Page(rows, filters.page, min(total, COUNT_CAP), more=total > COUNT_CAP)


def job_row(job_id: uuid.UUID) -> Row | None:
    """One of the caller's jobs as the history shows it (for its live row)."""
    return db.session.execute(
        select(*JOB_LIST_COLUMNS, MLModel.name.label("model_name"))
        .join(MLModel, MLModel.id == Job.model_id)
        .where(Job.id == job_id, Job.owner_id == current_user_id())
    ).first()


def model_name_of(model_id: uuid.UUID) -> str | None:
    """The name of one of the caller's models (deleted ones too: their jobs stay readable)."""
    return db.session.scalar(
        select(MLModel.name).where(MLModel.id == model_id, MLModel.owner_id == current_user_id())
    )


def batches_page(page: int) -> Page:
    """One page of the caller's batches, newest first, with their model names (two queries)."""
    q = PageQuery(page=page, per_page=PER_PAGE)
    rows, total = page_of(
        Batch, [Batch.owner_id == current_user_id()], [Batch.created_at.desc()], q
    )
    names = _names_of({b.model_id for b in rows})
    return Page([(b, names.get(b.model_id)) for b in rows], page, total)


def _names_of(ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = db.session.execute(select(MLModel.id, MLModel.name).where(MLModel.id.in_(ids)))
    return {model_id: name for model_id, name in rows}
