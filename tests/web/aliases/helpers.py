"""Versions of one name inserted as already validated, and calls by name."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from shared.db import session_scope
from shared.models import MLModel
from shared.store import get_store
from tests.fixtures.models import dump


def insert_version(
    account, model: Any, tmp_path: Path, name: str, version: int, status: str = "ready"
) -> str:
    """Store a fitted model and insert its row as version `version` of `name` (validated)."""
    from workers.validation.introspect import describe

    meta = describe(model)
    model_id = uuid.uuid4()
    with open(dump(model, tmp_path / f"{model_id}.joblib"), "rb") as fh:
        stored = get_store().save(f"{model_id}.joblib", fh)
    with session_scope() as s:
        s.add(
            MLModel(
                id=model_id,
                owner_id=uuid.UUID(account.id),
                name=name,
                version=version,
                status=status,
                format="joblib",
                framework="sklearn",
                artifact_key=stored.key,
                sha256=stored.sha256,
                size_bytes=stored.size_bytes,
                input_schema=meta["input_schema"],
                output_schema=meta["output_schema"],
            )
        )
    return str(model_id)


def by_name(name: str) -> str:
    return f"/api/v1/models/by-name/{name}"


def set_alias(client, account, name: str, alias: str, version: int):
    return client.put(
        f"{by_name(name)}/aliases/{alias}", json={"version": version}, headers=account.headers
    )


def set_traffic(client, account, name: str, routes: dict[int, int], shadow=None):
    body: dict[str, Any] = {"routes": [{"version": v, "weight": w} for v, w in routes.items()]}
    if shadow is not None:
        body["shadow"] = {"version": shadow[0], "percent": shadow[1]}
    return client.put(f"{by_name(name)}/traffic", json=body, headers=account.headers)


def predict(client, account, ref: str, rows, **headers):
    return client.post(
        f"/api/v1/models/{ref}/predict",
        json={"inputs": rows},
        headers={**account.headers, **headers},
    )
