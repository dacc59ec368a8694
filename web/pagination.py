"""One page of a filtered, ordered listing, with the total count."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from shared.schemas.common import PageQuery
from web.extensions import db

T = TypeVar("T")


def page_of(
    model: type[T], where: list[ColumnElement[bool]], order_by: list[Any], q: PageQuery
) -> tuple[list[T], int]:
    """The rows of page `q.page` (newest first by the caller's ordering) and the total."""
    total = db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0
    rows = db.session.scalars(
        select(model)
        .where(*where)
        .order_by(*order_by)
        .offset((q.page - 1) * q.per_page)
        .limit(q.per_page)
    )
    return list(rows), total
