"""orjson behind Flask's JSON interface: request bodies of up to millions of numbers parse
several times faster than with the stdlib, and NaN/Infinity literals are refused as malformed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from flask.json.provider import JSONProvider

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _fallback(value: Any) -> Any:
    if isinstance(value, Decimal | set | frozenset):
        return float(value) if isinstance(value, Decimal) else list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class OrjsonProvider(JSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, default=_fallback, option=_OPTIONS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)
