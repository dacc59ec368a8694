"""The kustomize base of deploy/kubernetes/, rendered as `kustomize build` renders it.

The kustomize binary is not a Python package, so the tests read kustomization.yaml themselves.
That is exact only while the base stays plain (a `resources` list of files, no patches,
generators, name prefixes or common labels): `render` refuses any other key, so a base that
grows one fails here until this reader learns it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

BASE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
PLAIN_KEYS = {"apiVersion", "kind", "resources"}


def render(base: Path = BASE) -> list[dict[str, Any]]:
    """Every document of every resource file, in the kustomization's order."""
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    extra = set(kustomization) - PLAIN_KEYS
    if extra:
        raise ValueError(f"kustomization.yaml uses {sorted(extra)}: the test renderer only reads")
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((base / name).read_text()) if d)
    return docs


def find(docs: list[dict], kind: str, name: str) -> dict:
    """The one document of this kind and name."""
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod_specs(docs: list[dict]) -> Iterator[tuple[dict, dict]]:
    """(workload, its pod spec) for every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def containers(docs: list[dict]) -> Iterator[tuple[dict, dict]]:
    """(workload, container) for every container of every workload."""
    for doc, spec in pod_specs(docs):
        for container in spec["containers"]:
            yield doc, container
