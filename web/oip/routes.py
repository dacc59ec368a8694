"""Open Inference Protocol v2 (KServe v2 / Triton HTTP) endpoints under /v2.

Inference goes through the same path as `POST /api/v1/models/{id}/predict`: validate, write the
job, enqueue after commit, wait for its done-signal. The web tier still never runs a model.
"""

from __future__ import annotations

import math
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Response, request

from shared.errors import BadRequest
from shared.jobs import FINAL_JOB_STATUSES
from shared.schemas.jobs import JobOut, PredictRequest
from shared.schemas.oip import InferenceRequest
from web import epoch, waits
from web.aliases import shadow
from web.aliases.resolve import Resolved
from web.auth.guard import login_required
from web.health import dependencies_ok
from web.jobs import service
from web.oip import columns, tensors
from web.oip.errors import oip_error, register_oip_errors
from web.oip.models import metadata, resolve, serving
from web.registry.cache import ServingModel

bp = Blueprint("oip", __name__)
register_oip_errors(bp)

DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 60.0  # the longest a done-signal wait may block (shared.signals.MAX_WAIT_S)
_NO_VERSION = {"version": None}


def _server_version() -> str:
    try:
        return version("mlsp-server")
    except PackageNotFoundError:
        return "0"


@bp.get("")
def server_metadata():
    """Server name, version and protocol extensions (public, like the health probes)."""
    return {"name": "mlsp", "version": _server_version(), "extensions": ["binary_tensor_data"]}


@bp.get("/health/live")
def server_live():
    """The process serves requests."""
    return {"live": True}


@bp.get("/health/ready")
def server_ready():
    """The database and the broker answer."""
    if dependencies_ok():
        return {"ready": True}
    return oip_error(503, "Database or broker unavailable", {"Retry-After": "5"})


@bp.get("/models/<name>", defaults=_NO_VERSION)
@bp.get("/models/<name>/versions/<version>")
@login_required()
def model_metadata(name: str, version: str | None):
    """KServe v2 model metadata of the caller's model."""
    return metadata(resolve(name, version))


@bp.get("/models/<name>/ready", defaults=_NO_VERSION)
@bp.get("/models/<name>/versions/<version>/ready")
@login_required()
def model_ready(name: str, version: str | None):
    """200 when the model (version) takes predictions, 400 when it exists but does not."""
    model = resolve(name, version)
    if model.status != "ready":
        return oip_error(400, f"Model '{name}' version {model.version} is {model.status}")
    return {"name": model.name, "ready": True}


@bp.post("/models/<name>/infer", defaults=_NO_VERSION)
@bp.post("/models/<name>/versions/<version>/infer")
@epoch.assumed
@login_required()
def infer(name: str, version: str | None):
    """Run the model on its input tensor (or one tensor per column) and answer its outputs.
    Without a version, `name` resolves as on the REST routes (docs/aliases.md)."""
    resolved = serving(name, version)
    model = resolved.model
    service.check_servable(model)
    body, binary = tensors.parse_request(
        request.get_data(), request.headers.get(tensors.HEADER_LENGTH)
    )
    outputs = tensors.output_names(body, bool((model.output_schema or {}).get("has_proba")))
    timeout = _timeout(body)
    with waits.slot() as waiting:  # OIP has no 202: past the cap, 429 + Retry-After
        if not waiting:
            raise waits.too_many()
        job = _run(resolved, body, binary, tensors.PROBA in outputs, timeout)
    if job.status == "succeeded":
        return _response(model, job, body, outputs)
    return _unfinished(job, timeout)


def _run(
    resolved: Resolved, body: InferenceRequest, binary: bytes, proba: bool, timeout: float
) -> JobOut:
    """Through the same queue as /predict (a full queue answers 429 + Retry-After there too),
    the rows checked as /predict checks them; a shadow copy is sent once it has its answer."""
    model = resolved.model
    schema = model.input_schema or {}
    if columns.per_column(body, schema.get("columns")):
        rows = columns.column_rows(body.inputs, binary, schema["columns"])
    else:
        rows = tensors.input_rows(tensors.the_input(body), binary, schema["n_features"])
    checked = PredictRequest(inputs=rows, return_probabilities=proba)
    rows = service.prepare_rows(model, checked)
    key = request.headers.get("Idempotency-Key")
    remaining = service.remaining(timeout)
    job = service.predict(model, rows, proba, key, remaining, route=resolved.route)
    if resolved.shadow is not None:
        shadow.fire(resolved.shadow, model, rows, checked, job.id)
    return job


def _timeout(body: InferenceRequest) -> float:
    """`?timeout=` in seconds, else tritonclient's `timeout` parameter (microseconds): a finite
    number >= 0 (400 otherwise: a NaN deadline once reached the queue), 0 or none meaning the
    default, at most MAX_TIMEOUT_S."""
    seconds = None
    if (raw := request.args.get("timeout")) is not None:
        seconds = _finite(raw, "timeout")
    micros = (body.parameters or {}).get("timeout")
    if seconds is None and isinstance(micros, int | float) and not isinstance(micros, bool):
        seconds = _finite(micros, "parameters.timeout") / 1e6
    return min(seconds or DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)


def _finite(value: str | float, name: str) -> float:
    try:
        number = float(value)
    except (ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise BadRequest(f"{name} must be a finite number >= 0", code="invalid_timeout")
    return number


def _response(
    model: ServingModel, job: JobOut, body: InferenceRequest, outputs: list[str]
) -> dict[str, Any]:
    answer: dict[str, Any] = {"model_name": model.name, "model_version": str(model.version)}
    if body.id is not None:
        answer["id"] = body.id
    answer["parameters"] = {"job_id": str(job.id)}
    result = job.result.model_dump(exclude_none=True) if job.result else {}
    answer["outputs"] = tensors.output_tensors(result, outputs)
    return answer


def _unfinished(job: JobOut, timeout: float) -> Response:
    location = f"/api/v1/jobs/{job.id}"
    if job.status not in FINAL_JOB_STATUSES:
        # The job is durable and goes on; the client can fetch its result there.
        return oip_error(
            504,
            f"Inference did not finish within {timeout:g}s; job {job.id} goes on at {location}",
            {"Location": location},
        )
    reason = f"{job.error.code}: {job.error.message}" if job.error else job.status
    return oip_error(500 if job.status == "failed" else 400, f"Inference {job.status} ({reason})")
