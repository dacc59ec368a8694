"""XGBoost's and LightGBM's own model files: recognised by their first bytes and name, read with no
pickle at all, from bytes only (neither library is ever handed a path).

Imports neither library at module level: the web tier only sniffs formats. Loading happens in the
validation sandbox and in workers. The trees' structure, which both libraries follow in C++
without bounds checks, is checked by shared/booster_trees.py: LightGBM's text before LightGBM
parses it (its parser aborts on some malformed trees), XGBoost's trees once XGBoost has read them
(it stores them as given), both before anything predicts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.booster_trees import check_lightgbm_text, check_xgboost
from shared.safe_load import ModelLoadError

# format -> (library, file extension in the artifact store)
NATIVE_FORMATS: dict[str, tuple[str, str]] = {
    "xgboost_json": ("xgboost", "json"),
    "xgboost_ubj": ("xgboost", "ubj"),
    "lightgbm_txt": ("lightgbm", "txt"),
}
# Recognised only to be refused with advice (a 415 that says what to do).
REFUSED_FORMATS: dict[str, str] = {
    "catboost": "CatBoost models are not served: export yours to ONNX "
    "(model.save_model('model.onnx', format='onnx')) and upload the .onnx file",
}
MAX_NATIVE_BYTES = 1 << 30
_LIGHTGBM_START = b"tree\nversion="
_CATBOOST_MAGIC = b"CBM1"
# LightGBM writes its training parameters (file names among them: data, output_model,
# output_result, ...) between these lines; prediction needs none of them, so they are cut.
_PARAMS_START, _PARAMS_END = "\nparameters:\n", "\nend of parameters\n"


def detect_native(head: bytes, filename: str | None) -> str | None:
    """The native format of a file from its first bytes and name, or None. XGBoost's files are
    JSON or UBJSON objects (both start with "{"), told apart by their extension."""
    name = (filename or "").lower()
    if head.startswith(_LIGHTGBM_START):
        return "lightgbm_txt"
    if head.startswith(_CATBOOST_MAGIC) or name.endswith(".cbm"):
        return "catboost"
    if head.lstrip().startswith(b"{") and name.endswith(".json"):
        return "xgboost_json"
    if head.startswith(b"{") and name.endswith(".ubj"):
        return "xgboost_ubj"
    return None


def library(fmt: str) -> str | None:
    """ "xgboost" or "lightgbm" for a native format, None for any other."""
    entry = NATIVE_FORMATS.get(fmt)
    return entry[0] if entry else None


def read_bytes(source: Path | bytes) -> bytes:
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if len(data) > MAX_NATIVE_BYTES:
        raise ModelLoadError(f"model file is larger than {MAX_NATIVE_BYTES >> 20} MB")
    return data


def load_xgboost(source: Path | bytes, fmt: str) -> Any:
    """An xgboost.Booster from a .json or .ubj file's bytes, its trees checked."""
    import xgboost

    data = read_bytes(source)
    if fmt == "xgboost_json":
        _check_xgboost_json(data)
    elif not data.startswith(b"{"):
        raise ModelLoadError("not an XGBoost .ubj model file")
    try:
        booster = xgboost.Booster(model_file=bytearray(data))  # a buffer: never a path
    except Exception as exc:
        raise ModelLoadError(f"XGBoost cannot read this model file: {_first_line(exc)}") from exc
    check_xgboost(booster)
    return booster


def _check_xgboost_json(data: bytes) -> None:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise ModelLoadError("not an XGBoost .json model file: invalid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("learner"), dict):
        raise ModelLoadError("not an XGBoost .json model file: no learner")


def load_lightgbm(source: Path | bytes) -> tuple[Any, str]:
    """A lightgbm.Booster from a text model file's bytes, and the text it was given (its
    training parameters cut out, its trees checked first)."""
    import lightgbm

    text = lightgbm_text(read_bytes(source))
    check_lightgbm_text(text, lightgbm_features(text))
    try:
        return lightgbm.Booster(model_str=text), text
    except Exception as exc:
        raise ModelLoadError(f"LightGBM cannot read this model file: {_first_line(exc)}") from exc


def lightgbm_text(data: bytes) -> str:
    """The model text LightGBM is given: UTF-8, no NUL, its parameters section removed."""
    if not data.startswith(_LIGHTGBM_START):
        raise ModelLoadError("not a LightGBM text model file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelLoadError("LightGBM model file is not UTF-8 text") from None
    if "\x00" in text:
        raise ModelLoadError("LightGBM model file contains NUL characters")
    while (start := text.find(_PARAMS_START)) >= 0:
        end = text.find(_PARAMS_END, start)
        if end < 0:
            raise ModelLoadError("LightGBM model file has an unterminated parameters section")
        text = text[:start] + "\n" + text[end + len(_PARAMS_END) :]
    return text


def lightgbm_features(text: str) -> int:
    """The number of input features a LightGBM model's header declares."""
    try:
        return int(header_value(text, "max_feature_idx") or "") + 1
    except ValueError:
        raise ModelLoadError("LightGBM model file declares no max_feature_idx") from None


def check_booster_state(target: object, state: object) -> None:
    """Before a pickle sets the state of a lightgbm.Booster: the model text its __setstate__
    hands LightGBM's parser must pass the same checks as a text file."""
    kind = type(target)
    if (kind.__module__, kind.__name__) != ("lightgbm.basic", "Booster"):
        return
    text = state.get("_handle", state.get("handle")) if isinstance(state, dict) else None
    if isinstance(text, str):
        check_lightgbm_text(text, lightgbm_features(text))


def header_value(text: str, key: str) -> str | None:
    """A `key=value` line of a LightGBM model's header (before its first tree)."""
    head = text.split("\nTree=", 1)[0]
    for line in head.splitlines():
        if line.startswith(f"{key}="):
            return line[len(key) + 1 :]
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]
