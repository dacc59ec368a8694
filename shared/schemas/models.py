"""Schemas of the model registry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)
from spectree.model_adapter.pydantic_adapter import BaseFile
from werkzeug.datastructures import FileStorage

from shared.schemas.common import PageQuery

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
MAX_SAMPLE_ROWS = 1000

ModelStatus = Literal["validating", "ready", "failed", "disabled"]


def _one_file(value: Any) -> FileStorage:
    # spectree's BaseFile takes any value: a text field or a repeated part reached the view.
    if not isinstance(value, FileStorage):
        raise ValueError("must be one file part (with a filename), not a text field")
    return value


UploadedFile = Annotated[BaseFile, AfterValidator(_one_file)]


class InputColumn(BaseModel):
    """What a client sends in one column (docs/api.md, "The model object")."""

    name: str
    dtype: Literal["number", "integer", "string", "boolean"]
    nullable: bool = Field(description="The model answers a missing value (null) here")
    categories: list[Any] | None = Field(None, description="The values an encoder saw in training")


class InputSchema(BaseModel):
    n_features: int
    feature_names: list[str] | None = None
    columns: list[InputColumn] | None = None


class OutputSchema(BaseModel):
    task: Literal["classification", "regression", "clustering", "outlier"]
    classes: list[Any] | None = None
    has_proba: bool = False
    has_scores: bool = False


class ModelOut(BaseModel):
    """The model object (docs/api.md, "The model object")."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    version: int
    status: ModelStatus
    framework: str | None
    format: str
    description: str | None
    sha256: str
    size_bytes: int
    input_schema: InputSchema | None
    output_schema: OutputSchema | None
    runtime: Literal["onnx", "sklearn", "xgboost", "lightgbm"]
    runtime_reason: str | None
    info: dict[str, Any] | None = Field(
        None, description="Estimator class, pipeline steps, library versions and load warnings"
    )
    error: str | None
    aliases: list[str] = Field(
        default_factory=list, description="Aliases of its name that point to this version"
    )
    created_at: datetime
    updated_at: datetime


class ModelList(BaseModel):
    items: list[ModelOut]
    page: int
    per_page: int
    total: int


class ModelQuery(PageQuery):
    name: str | None = Field(None, pattern=NAME_PATTERN)
    status: ModelStatus | None = None


class ModelUpload(BaseModel):
    """multipart/form-data fields of an upload."""

    file: UploadedFile
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(None, max_length=2000, pattern=r"^[^\x00]*$")
    sample: str | None = Field(
        None, description=f"JSON list of up to {MAX_SAMPLE_ROWS} input rows used for validation"
    )


class ModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, max_length=2000)
    status: Literal["ready", "disabled"] | None = None
    runtime: Literal["auto", "sklearn"] | None = None

    @field_validator("description")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None
