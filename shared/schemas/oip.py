"""Schemas of the Open Inference Protocol v2 (KServe v2 / Triton HTTP) inference request.

Only the parts this service honours: one input tensor of numbers, optional requested outputs,
and the `timeout` parameter. Unknown fields and parameters are accepted and ignored, as the
protocol lets servers do.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Datatype = Literal["FP32", "FP64", "INT32", "INT64"]


class RequestInput(BaseModel):
    """One input tensor; `data` is absent when the tensor travels as binary after the JSON."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(max_length=200)
    shape: list[int] = Field(min_length=1, max_length=8)
    datatype: Datatype
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(max_length=200)
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """`POST /v2/models/{name}[/versions/{v}]/infer` body."""

    model_config = ConfigDict(extra="allow")

    id: str | None = Field(None, max_length=256)
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None
    parameters: dict[str, Any] | None = None
