"""Models as the Open Inference Protocol sees them: addressed by the caller's model name and an
optional version, described by KServe v2 model metadata."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from shared.errors import NotFound
from shared.jobs.inputs import is_typed
from shared.models import MLModel
from shared.schemas.models import NAME_PATTERN
from web.aliases.resolve import Resolved
from web.aliases.resolve import resolve as resolve_reference
from web.auth.guard import current
from web.extensions import db
from web.oip.columns import PANDAS
from web.oip.tensors import PREDICT, PROBA, label_datatype

# KServe's scikit-learn server names its single input this way; any name is accepted on infer.
INPUT_NAME = "input-0"
# What can name a stored model or version: anything else (a NUL, which PostgreSQL refuses in
# text, or `²`, a digit to str.isdigit() but not to int()) is simply not found.
_NAME = re.compile(NAME_PATTERN)
_VERSION = re.compile(r"[0-9]{1,9}")


def _owned(name: str):
    return select(MLModel).where(
        MLModel.owner_id == current().id, MLModel.name == name, MLModel.deleted_at.is_(None)
    )


def serving(name: str, version: str | None) -> Resolved:
    """The version an inference request runs on: `name` at `version`, or without one `name`
    (also `name@alias`) resolved as the REST routes resolve it, traffic split included."""
    if version is None:
        return resolve_reference(name, ids=False)
    if not (_NAME.fullmatch(name) and _VERSION.fullmatch(version)):
        raise NotFound(f"Model {name!r:.120} version {version!r:.40} not found")
    # `name@vN`: the same per-process cache as every other reference, no query per infer.
    return resolve_reference(f"{name}@v{int(version)}", with_shadow=False, ids=False)


def resolve(name: str, version: str | None) -> MLModel:
    """The caller's model `name` at `version`; without one, `name` (also `name@alias`) as a
    bare name resolves (the traffic split's pick, else `production`, else the newest ready
    version; the newest version when none is ready, so that metadata and readiness answer)."""
    if version is None:
        chosen = resolve_reference(name, with_shadow=False, ids=False).model
        return db.session.get(MLModel, chosen.id)
    if not _NAME.fullmatch(name):
        query = None
    elif _VERSION.fullmatch(version):
        query = _owned(name).where(MLModel.version == int(version))
    else:
        query = None
    model = db.session.scalar(query.limit(1)) if query is not None else None
    if model is None:
        suffix = f" version {version!r:.40}" if version is not None else ""
        raise NotFound(f"Model {name!r:.120}{suffix} not found")
    return model


def ready_versions(name: str) -> list[str]:
    """Versions of `name` that can be requested explicitly and take predictions."""
    query = _owned(name).where(MLModel.status == "ready").order_by(MLModel.version)
    return [str(m.version) for m in db.session.scalars(query)]


def _predict_datatype(output_schema: dict[str, Any]) -> str:
    if output_schema.get("task") == "classification" and output_schema.get("classes"):
        return label_datatype(output_schema["classes"])
    return "FP64"


# A column's datatype as an input tensor; MLServer's pandas codec marks strings "str".
_COLUMN_DATATYPES = {"string": "BYTES", "boolean": "BOOL", "integer": "INT64", "number": "FP64"}


def _by_column(input_schema: dict[str, Any]) -> bool:
    """Whether metadata lists one input per column: for named or typed columns, as MLServer
    lists a pandas model's inputs (a matrix cannot carry strings; names say what goes where)."""
    columns = input_schema.get("columns")
    return bool(columns) and bool(input_schema.get("feature_names") or is_typed(columns))


def _inputs(input_schema: dict[str, Any]) -> list[dict[str, Any]]:
    if not _by_column(input_schema):
        n_features = input_schema.get("n_features", -1)
        return [{"name": INPUT_NAME, "datatype": "FP64", "shape": [-1, n_features]}]
    inputs = []
    for column in input_schema["columns"]:
        datatype = _COLUMN_DATATYPES[column["dtype"]]
        tensor: dict[str, Any] = {"name": column["name"], "datatype": datatype, "shape": [-1]}
        if datatype == "BYTES":
            tensor["parameters"] = {"content_type": "str"}
        inputs.append(tensor)
    return inputs


def metadata(model: MLModel) -> dict[str, Any]:
    """KServe v2 model metadata: name, versions, platform, input and output tensors."""
    input_schema = model.input_schema or {}
    output_schema = model.output_schema or {}
    outputs = [{"name": PREDICT, "datatype": _predict_datatype(output_schema), "shape": [-1]}]
    if output_schema.get("has_proba"):
        n_classes = len(output_schema.get("classes") or []) or -1
        outputs.append({"name": PROBA, "datatype": "FP64", "shape": [-1, n_classes]})
    pandas = {"content_type": PANDAS} if _by_column(input_schema) else {}
    return {
        "name": model.name,
        "versions": ready_versions(model.name),
        "platform": model.framework or "sklearn",
        "inputs": _inputs(input_schema),
        "outputs": outputs,
        # Where to find this version through the rest of the API; "pd" as MLServer says that
        # its inputs are the columns of a frame.
        "parameters": {"model_id": str(model.id), "version": str(model.version), **pandas},
    }
