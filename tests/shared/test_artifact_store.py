"""The artifact store by URL: the local directory (default) and an S3 bucket on a real S3 API
server (moto, on the loopback) read through the host's disk cache."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

from shared.artifacts import ArtifactCorrupt, LocalArtifactStore, TooLarge, store_for
from shared.artifacts.cache import DiskCache
from shared.artifacts.s3 import PART_BYTES, S3ArtifactStore
from shared.config import Settings
from tests.fixtures.s3 import CREDENTIALS, CountingMotoServer, make_bucket, s3_server

pytestmark = pytest.mark.no_db
ROOT = Path(__file__).resolve().parents[2]
BUCKET = "mlsp-artifacts"


@pytest.fixture(scope="module")
def server() -> Iterator[CountingMotoServer]:
    with s3_server() as srv:
        make_bucket(srv, BUCKET)
        yield srv


@pytest.fixture
def credentials(monkeypatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def s3_store(server: CountingMotoServer, cache_dir: Path, max_bytes: int = 1 << 30):
    return S3ArtifactStore(BUCKET, "t", server.endpoint, DiskCache(cache_dir, max_bytes))


def key(ext: str = "joblib") -> str:
    return f"{uuid.uuid4()}.{ext}"


class ReadSizes(io.BytesIO):
    """A client's stream that remembers the largest read asked of it."""

    largest = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.largest = max(self.largest, len(data))
        return data


def test_without_a_url_the_store_is_model_store_dir(tmp_path):
    default = store_for(Settings(MODEL_STORE_DIR=str(tmp_path / "m")))
    assert isinstance(default, LocalArtifactStore) and default.root == tmp_path / "m"
    by_url = store_for(Settings(ARTIFACT_STORE_URL=f"file://{tmp_path}/u"))
    assert isinstance(by_url, LocalArtifactStore) and by_url.root == tmp_path / "u"
    with pytest.raises(pydantic.ValidationError):
        Settings(ARTIFACT_STORE_URL="ftp://host/x")
    stored = by_url.save(k := key(), io.BytesIO(b"abc"))
    assert by_url.local_path(k, stored.sha256).read_bytes() == b"abc"


def test_an_upload_streams_in_parts_hashed_on_the_way(server, credentials, tmp_path):
    data = os.urandom(3 * PART_BYTES + 1234)
    store, stream = s3_store(server, tmp_path), ReadSizes(data)
    before = server.log.count("POST", query="uploads")
    stored = store.save(k := key(), stream, max_bytes=len(data))
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size_bytes == len(data)
    assert server.log.count("POST", query="uploads") == before + 1  # one multipart upload
    assert server.log.count("PUT", f"/t/{k}", query="partNumber") == 4
    assert stream.largest <= PART_BYTES  # read a part at a time, never whole
    body = store.client.get_object(Bucket=BUCKET, Key=f"t/{k}")["Body"].read()
    assert body == data


def test_an_over_size_upload_stores_nothing(server, credentials, tmp_path):
    store = s3_store(server, tmp_path)
    with pytest.raises(TooLarge):
        store.save(k := key(), io.BytesIO(os.urandom(2 * PART_BYTES)), max_bytes=PART_BYTES + 1)
    assert not store.exists(k)
    assert not store.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_the_cache_serves_a_second_read_without_asking_the_server(server, credentials, tmp_path):
    data = os.urandom(100_000)
    stored = s3_store(server, tmp_path / "up").save(k := key(), io.BytesIO(data))
    gets, heads = server.log.count("GET", k), server.log.count("HEAD", k)
    first = s3_store(server, tmp_path / "cache").local_path(k, stored.sha256)
    assert first.read_bytes() == data and server.log.count("GET", k) == gets + 1
    # Another process of the host: a store of its own over the same directory.
    again = s3_store(server, tmp_path / "cache").local_path(k, stored.sha256)
    assert again == first
    assert (server.log.count("GET", k), server.log.count("HEAD", k)) == (gets + 1, heads)


def test_without_a_recorded_hash_the_entry_is_named_by_etag(server, credentials, tmp_path):
    store = s3_store(server, tmp_path / "cache")
    store.save(k := key("rows.parquet"), io.BytesIO(b"rows"))
    path = store.local_path(k)
    assert path.read_bytes() == b"rows" and path.name.startswith("etag-")
    gets = server.log.count("GET", k)
    assert store.local_path(k) == path and server.log.count("GET", k) == gets  # a HEAD only


def test_bytes_that_do_not_match_the_recorded_hash_are_not_cached(server, credentials, tmp_path):
    store = s3_store(server, tmp_path / "cache")
    store.save(k := key(), io.BytesIO(b"the real bytes"))
    with pytest.raises(ArtifactCorrupt):
        store.local_path(k, hashlib.sha256(b"other bytes").hexdigest())
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [".locks"]


def test_delete_and_a_missing_artifact(server, credentials, tmp_path):
    store = s3_store(server, tmp_path)
    store.save(k := key(), io.BytesIO(b"x"))
    assert store.exists(k)
    store.delete(k)
    store.delete(k)  # idempotent, as the purge may run twice
    assert not store.exists(k)
    with pytest.raises(FileNotFoundError):
        store.local_path(k, hashlib.sha256(b"x").hexdigest())


def test_an_unreachable_store_is_a_503(credentials, tmp_path):
    from shared.errors import ServiceUnavailable
    from tests.fixtures.services import free_port

    store = S3ArtifactStore(
        BUCKET, "t", f"http://127.0.0.1:{free_port()}", DiskCache(tmp_path, 1 << 20)
    )
    with pytest.raises(ServiceUnavailable):
        store.save(key(), io.BytesIO(b"x"))
    with pytest.raises(ServiceUnavailable):
        store.local_path(key(), hashlib.sha256(b"x").hexdigest())


# A reader process: imports only the store, waits for the start flag, prints its path.
READER = """
import os, sys, time
from pathlib import Path
from shared.artifacts.cache import DiskCache
from shared.artifacts.s3 import S3ArtifactStore
endpoint, cache, bucket, key, sha256, go = sys.argv[1:]
store = S3ArtifactStore(bucket, "t", endpoint, DiskCache(Path(cache), 1 << 30))
store.client  # built before the start, so that the readers overlap
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
print(store.local_path(key, sha256))
"""


def test_concurrent_misses_of_one_entry_download_it_once(server, credentials, tmp_path):
    data = os.urandom(24 << 20)  # long enough a download for the readers to overlap
    stored = s3_store(server, tmp_path / "up").save(k := key(), io.BytesIO(data))
    gets, go = server.log.count("GET", k), tmp_path / "go"
    args = [server.endpoint, str(tmp_path / "cache"), BUCKET, k, stored.sha256, str(go)]
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for reader in readers:  # all imported and waiting
        assert reader.stdout.readline().strip() == "ready"
    go.touch()
    paths = {reader.communicate(timeout=60)[0].strip() for reader in readers}
    assert len(paths) == 1 and Path(paths.pop()).read_bytes() == data
    assert server.log.count("GET", k) == gets + 1
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".part-")]


def test_the_cache_evicts_least_recently_used_entries_past_its_bound(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=3500, keep_recent_s=0)
    for name in ("a", "b", "c"):
        cache.fill(name, lambda out: out.write(b"x" * 1000))
        os.utime(tmp_path / name, (0, {"a": 10, "b": 20, "c": 30}[name]))
    cache.lookup("a")  # used now: the newest
    cache.fill("d", lambda out: out.write(b"x" * 1000))
    entries = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert entries == ["a", "c", "d"]  # b: the least recently used
    assert cache.total_bytes() == 3000 and cache.stats.evictions == 1


def test_the_validation_sandbox_gets_no_store_credentials(monkeypatch):
    """The parent reads the file and sends its bytes: the child's environment has no AWS
    variables and its HOME is an empty directory (no ~/.aws to find)."""
    import subprocess

    from workers.validation.sandbox import Sandbox

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("ARTIFACT_STORE_URL", "s3://bucket/p")
    seen: dict = {}
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **kw: seen.update(kw))
    sandbox = Sandbox()
    sandbox._start()
    assert not [name for name in seen["env"] if name.startswith(("AWS_", "ARTIFACT", "S3_"))]
    assert os.listdir(seen["env"]["HOME"]) == []
