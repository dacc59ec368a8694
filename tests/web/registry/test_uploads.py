"""Upload handling (web/registry/uploads.py): versions per name and owner, format sniffing,
filenames never used, multipart only, and MAX_UPLOAD_MB enforced while streaming."""

from __future__ import annotations

import io
import os
import threading

import pytest
from sqlalchemy import select

from shared.db import session_scope
from shared.models import MLModel
from tests.conftest import store_dir
from tests.fixtures.models import upload

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker")]


class _LazyMultipart(io.RawIOBase):
    """A multipart body produced chunk by chunk, so the test itself never holds it in memory."""

    def __init__(self, boundary: str, file_bytes: int) -> None:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nbig\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.joblib"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.parts = [
            head,
            b"\x80\x04" + b"\0" * (file_bytes - 2),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
        self.length = sum(len(p) if i != 1 else file_bytes for i, p in enumerate(self.parts))
        self.file_bytes = file_bytes
        self.seek(0)

    def _generate(self, file_bytes: int):
        yield self.parts[0]
        block = b"\0" * (1 << 20)
        yield b"\x80\x04"
        sent = 2
        while sent < file_bytes:
            n = min(len(block), file_bytes - sent)
            sent += n
            yield block[:n]
        yield self.parts[2]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # only so werkzeug's test client can measure it: seeking restarts the body

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = self.length + offset if whence == 2 else offset
        if whence == 0:
            self._chunks, self._buffer = self._generate(self.file_bytes), b""
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self.pos += n
        return n


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_versions_increment_per_name_and_owner(client, user, other_user, classifier_file):
    versions = [upload(client, user, classifier_file).json["version"] for _ in range(2)]
    assert versions == [1, 2]
    assert upload(client, other_user, classifier_file).json["version"] == 1


def test_concurrent_uploads_get_distinct_versions(app, user, classifier_file):
    results: list[int] = []

    def one() -> None:
        resp = upload(app.test_client(), user, classifier_file, name="race")
        results.append(resp.status_code if resp.status_code >= 300 else resp.json["version"])

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 9))


def test_text_file_is_415(client, user, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just some text\n")
    resp = upload(client, user, path)
    assert resp.status_code == 415
    assert resp.json["error"]["code"] == "unsupported_format"
    with session_scope() as s:
        assert s.scalar(select(MLModel.id)) is None


def test_filename_is_never_a_path(client, user, classifier_file):
    data = {
        "name": "iris",
        "file": (io.BytesIO(classifier_file.read_bytes()), "../../x.joblib"),
    }
    resp = client.post(
        "/api/v1/models", data=data, headers=user.headers, content_type="multipart/form-data"
    )
    assert resp.status_code == 201
    assert not (store_dir().parent / "x.joblib").exists()
    assert not any(name.startswith("x") for name in os.listdir(store_dir()))


def test_json_body_instead_of_multipart_is_400(client, user):
    resp = client.post("/api/v1/models", json={"name": "x"}, headers=user.headers)
    assert resp.status_code == 400


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed-past-limit"])
def test_oversize_upload_is_413_without_buffering(user, declared):
    from shared.config import Settings
    from web import create_app

    small = create_app(Settings(MAX_UPLOAD_MB=1)).test_client()
    # Declared: 200 MB announced, refused before reading. Streamed: a body that fits the
    # request envelope but whose file passes MAX_UPLOAD_MB while being copied to the store.
    size = 200 * 1024 * 1024 if declared else int(1.5 * 1024 * 1024)
    body = _LazyMultipart("b0undary", size)
    before = _peak_rss_mb()
    resp = small.post(
        "/api/v1/models",
        input_stream=body,
        headers={**user.headers, "Content-Length": str(body.length)},
        content_type="multipart/form-data; boundary=b0undary",
    )
    assert resp.status_code == 413
    assert resp.json["error"]["code"] == "payload_too_large"
    assert _peak_rss_mb() - before < 50
    with session_scope() as s:
        assert s.scalar(select(MLModel.id)) is None
    assert not [f for f in os.listdir(store_dir()) if f.startswith(".upload-")]
