"""Artifacts in an S3-compatible bucket (ARTIFACT_STORE_URL=s3://bucket/prefix; AWS S3, MinIO,
Ceph at S3_ENDPOINT_URL), read through a local cache per host (shared/artifacts/cache.py).

Credentials come from boto3's standard chain (environment, shared files, instance or pod role):
none are in the settings. Uploads stream: boto3's transfer manager sends a multipart upload in
parts of PART_BYTES read in order from the client's stream, hashed on the way, with at most
IN_MEMORY_PARTS parts in memory. Downloads are one GET each, written in order to a temporary
file of the cache and hashed on the way.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from shared.artifacts.base import (
    CHUNK,
    ArtifactCorrupt,
    ArtifactStore,
    HashingReader,
    HashingWriter,
    Stored,
    TooLarge,
    check_key,
)
from shared.artifacts.cache import DiskCache
from shared.errors import ServiceUnavailable

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig

PART_BYTES = 8 << 20  # S3's minimum part is 5 MiB; boto3's default part size
IN_MEMORY_PARTS = 4  # parts read ahead of the upload threads: ~32 MiB per upload at most
UPLOAD_THREADS = 4


class S3ArtifactStore(ArtifactStore):
    def __init__(self, bucket: str, prefix: str, endpoint_url: str, cache: DiskCache) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url or None
        self.cache = cache
        self._lock = threading.Lock()
        self._pid = 0
        self._client: Any = None

    @property
    def client(self) -> Any:
        """This process's boto3 client (built after a fork: a client's connection pool must
        not be shared by two processes; one client is safe for many threads)."""
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client, self._pid = _make_client(self.endpoint_url), os.getpid()
            return self._client

    def object_name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def save(self, key: str, stream: BinaryIO, max_bytes: int | None = None) -> Stored:
        reader = HashingReader(stream, max_bytes)
        # A failed or over-size upload is aborted by the transfer manager: no part stays billed.
        try:
            self.client.upload_fileobj(
                reader, self.bucket, self.object_name(key), Config=_transfer_config()
            )
        except TooLarge:
            raise
        except Exception as exc:
            raise _translated(exc, key) from exc
        return Stored(key, reader.digest.hexdigest(), reader.size)

    def local_path(self, key: str, sha256: str | None = None) -> Path:
        if sha256:  # recorded: the cache answers without asking the server
            return self.cache.fill(sha256, lambda out: self._download(key, out, sha256=sha256))
        etag = self._etag(key)
        name = "etag-" + "".join(c for c in etag if c.isalnum() or c == "-")
        return self.cache.fill(name, lambda out: self._download(key, out, etag=etag))

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_name(key))
        except Exception as exc:
            raise _translated(exc, key) from exc

    def exists(self, key: str) -> bool:
        try:
            self._etag(key)
        except FileNotFoundError:
            return False
        return True

    @property
    def scratch_dir(self) -> Path:
        return self.cache.root

    def _etag(self, key: str) -> str:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.object_name(key))
        except Exception as exc:
            raise _translated(exc, key) from exc
        return head["ETag"].strip('"')

    def _download(
        self, key: str, out: BinaryIO, sha256: str | None = None, etag: str | None = None
    ) -> None:
        """One GET, written in order; If-Match pins the version an ETag-named entry names."""
        extra = {"IfMatch": f'"{etag}"'} if etag else {}
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.object_name(key), **extra)
        except Exception as exc:
            raise _translated(exc, key) from exc
        writer = HashingWriter(out)
        for chunk in body["Body"].iter_chunks(CHUNK):
            writer.write(chunk)
        if sha256 and writer.digest.hexdigest() != sha256:
            raise ArtifactCorrupt(f"artifact {key}: sha256 {writer.digest.hexdigest()} != {sha256}")


def _translated(exc: Exception, key: str) -> Exception:
    """A missing object (404, or a 412 when it changed under an ETag) as FileNotFoundError, as
    the local store's loaders see a missing file; the service unreachable or failing (after
    boto3's own retries) as ServiceUnavailable, a 503 to a client; any other error as it is."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    response = getattr(exc, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    if code in ("404", "NoSuchKey", "NotFound", "412", "PreconditionFailed"):
        return FileNotFoundError(f"artifact {key} is not in the store ({code})")
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if isinstance(exc, BotoConnectionError | HTTPClientError) or status >= 500:
        return ServiceUnavailable("The artifact store is unavailable; try again shortly")
    return exc


def _make_client(endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=UPLOAD_THREADS * 4,
        # Path-style addressing for a custom endpoint (MinIO, Ceph): no per-bucket DNS names.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


def _transfer_config() -> TransferConfig:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=PART_BYTES,
        multipart_chunksize=PART_BYTES,
        max_concurrency=UPLOAD_THREADS,
    )
    # Not a constructor argument of boto3's subclass, read by the transfer manager: the parts
    # of a non-seekable stream held in memory at once (default 10).
    config.max_in_memory_upload_chunks = IN_MEMORY_PARTS
    return config
