"""Model artifact store: the names most modules import (the implementations live in
shared/artifacts/, chosen by ARTIFACT_STORE_URL)."""

from __future__ import annotations

from shared.artifacts import (
    ArtifactCorrupt,
    ArtifactStore,
    LocalArtifactStore,
    Stored,
    TooLarge,
    check_key,
    get_store,
    store_for,
)
from shared.artifacts.base import CHUNK

__all__ = [
    "CHUNK",
    "ArtifactCorrupt",
    "ArtifactStore",
    "LocalArtifactStore",
    "Stored",
    "TooLarge",
    "check_key",
    "get_store",
    "store_for",
]
