"""Aliases, traffic splits and shadows of a model name, as `Client` methods (docs/aliases.md).

Predictions take references by name wherever they take a model:
`client.predict("churn@production", rows)`, `"churn@v3"`, or a bare `"churn"` (its traffic
split, else its `production` alias, else its newest ready version).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote


def _name(name: str) -> str:
    return f"/models/by-name/{quote(name, safe='')}"


class AliasesMixin:
    """The `/models/by-name/{name}` endpoints; mixed into `mlsp.Client`."""

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:  # provided by Client
        raise NotImplementedError

    def model_name(self, name: str) -> dict[str, Any]:
        """`{name, versions, aliases: {alias: version}, traffic}` of one of your model names."""
        return self._json("GET", _name(name))

    def set_alias(self, name: str, alias: str, version: int) -> dict[str, Any]:
        """Point `name@alias` at `version`; the answer's `previous_version` is what a rollback
        sets it back to."""
        path = f"{_name(name)}/aliases/{quote(alias, safe='')}"
        return self._json("PUT", path, json={"version": version})

    def delete_alias(self, name: str, alias: str) -> None:
        self._json("DELETE", f"{_name(name)}/aliases/{quote(alias, safe='')}")

    def set_traffic(
        self, name: str, weights: Mapping[int, int], shadow: tuple[int, int] | None = None
    ) -> dict[str, Any]:
        """Split the bare name's predictions by `{version: weight}` (integers summing to 100);
        `shadow=(version, percent)` also sends that share of them to another version."""
        body: dict[str, Any] = {"routes": [{"version": v, "weight": w} for v, w in weights.items()]}
        if shadow is not None:
            body["shadow"] = {"version": shadow[0], "percent": shadow[1]}
        return self._json("PUT", f"{_name(name)}/traffic", json=body)

    def delete_traffic(self, name: str) -> None:
        self._json("DELETE", f"{_name(name)}/traffic")

    def alias_history(self, name: str) -> list[dict[str, Any]]:
        """Who moved which alias or changed the traffic, when (newest first)."""
        return self._json("GET", f"{_name(name)}/history")["items"]

    def name_analytics(self, name: str, days: int = 7) -> dict[str, Any]:
        """Every version's analytics side by side, and shadow agreement."""
        return self._json("GET", f"{_name(name)}/analytics", params={"days": days})
