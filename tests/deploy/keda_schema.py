"""Regenerate tests/deploy/schemas/keda-scaledobject.json from KEDA's CRD models on PyPI.

cloudcoil-models-keda's pydantic models are generated from KEDA's CRDs; their JSON schema is
the ScaledObject's schema. Not a test dependency (the package installs a pytest plugin of its
own): install it aside and run this with it on the path:

    pip install --target /tmp/keda cloudcoil-models-keda cloudcoil httpx
    PYTHONPATH=/tmp/keda python -m tests.deploy.keda_schema
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

TARGET = Path(__file__).parent / "schemas" / "keda-scaledobject.json"


def main() -> None:
    from cloudcoil.models.keda.v1alpha1 import ScaledObject

    version = importlib.metadata.version("cloudcoil-models-keda")
    comment = (
        f"KEDA ScaledObject (keda.sh/v1alpha1) as published on PyPI by cloudcoil-models-keda "
        f"{version}, whose models are generated from KEDA's CRDs: "
        "ScaledObject.model_json_schema(by_alias=True). Regenerate: python -m "
        "tests.deploy.keda_schema (see its docstring)"
    )
    schema = {"$comment": comment, **ScaledObject.model_json_schema(by_alias=True)}
    TARGET.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
