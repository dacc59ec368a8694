"""Artifacts as files under one local directory (ARTIFACT_STORE_URL=file:///path, or
MODEL_STORE_DIR): one host, or a filesystem every host mounts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from shared.artifacts.base import CHUNK, ArtifactStore, HashingReader, Stored, check_key


class LocalArtifactStore(ArtifactStore):
    """Files under one root directory, written atomically (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, key: str, stream: BinaryIO, max_bytes: int | None = None) -> Stored:
        target = self.local_path(key)
        reader = HashingReader(stream, max_bytes)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)  # atomic: readers see the whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Stored(key, reader.digest.hexdigest(), reader.size)

    def local_path(self, key: str, sha256: str | None = None) -> Path:
        return self.root / check_key(key)

    def delete(self, key: str) -> None:
        self.local_path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.local_path(key).is_file()

    @property
    def scratch_dir(self) -> Path:
        return self.root
