"""The artifact store (model files, compiled ONNX graphs, batch files), chosen by
ARTIFACT_STORE_URL: `file:///path` (the default: MODEL_STORE_DIR) or `s3://bucket/prefix`.
Web and workers reach artifacts only through `ArtifactStore`; keys are the service's own
(`<model id>.joblib`), never a host's path, so a row written on one host reads on any other."""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import urlparse

from shared.artifacts.base import ArtifactCorrupt, ArtifactStore, Stored, TooLarge, check_key
from shared.artifacts.local import LocalArtifactStore
from shared.config import Settings, get_settings

__all__ = [
    "ArtifactCorrupt",
    "ArtifactStore",
    "LocalArtifactStore",
    "Stored",
    "TooLarge",
    "check_key",
    "get_store",
    "store_for",
]


def get_store() -> ArtifactStore:
    """The process's store (workers, scripts). The web tier asks for its app's
    (`web.extensions.store`)."""
    return store_for(get_settings())


def store_for(settings: Settings) -> ArtifactStore:
    """The store `settings` name, built once per configuration (a worker asks for it once per
    task; an S3 store keeps its client and its cache)."""
    return _build(
        settings.artifact_store_url,
        Path(settings.model_store_dir),
        settings.s3_endpoint_url,
        Path(settings.artifact_cache_dir),
        settings.artifact_cache_bytes,
    )


@functools.lru_cache(maxsize=8)
def _build(url: str, default_root: Path, endpoint: str, cache_dir: Path, cache_bytes: int):
    parsed = urlparse(url)
    if not url or parsed.scheme == "file":
        return LocalArtifactStore(Path(parsed.netloc + parsed.path) if url else default_root)
    if parsed.scheme == "s3" and parsed.netloc:
        from shared.artifacts.cache import DiskCache
        from shared.artifacts.s3 import S3ArtifactStore

        cache = DiskCache(cache_dir, cache_bytes)
        return S3ArtifactStore(parsed.netloc, parsed.path, endpoint, cache)
    raise ValueError(f"ARTIFACT_STORE_URL must be file:///path or s3://bucket/prefix, not {url!r}")
