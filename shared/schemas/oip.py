"""Schemas of the Open Inference Protocol v2 (KServe v2 / Triton HTTP) inference request.

Only the parts this service honours: one input tensor of numbers, or one input per column for
models with named columns (web/oip/columns.py), optional requested outputs, and the `timeout`
parameter. Unknown fields and parameters are accepted and ignored, as the
protocol lets servers do.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Numbers make a matrix or a column; BYTES and BOOL only a column.
Datatype = Literal[
    "BOOL",
    "BYTES",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
]


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
