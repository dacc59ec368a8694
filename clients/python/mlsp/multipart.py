"""A multipart/form-data body streamed from disk: `requests` builds a `files=` body in memory,
which a batch file of gigabytes must not be, so the body here is a readable object of known
length (sent with a Content-Length, in blocks, and rewound for a retry)."""

from __future__ import annotations

import io
import uuid
from typing import BinaryIO

Part = bytes | tuple[BinaryIO, int, int]  # bytes, or (stream, start offset, length)


class Joined:
    """Several byte sources read one after another as one seekable stream of known length."""

    def __init__(self, parts: list[Part]) -> None:
        self._parts = [(p, 0, len(p)) if isinstance(p, bytes) else p for p in parts]
        self._starts: list[int] = []
        total = 0
        for _, _, length in self._parts:
            self._starts.append(total)
            total += length
        self._length = total
        self._pos = 0

    def __len__(self) -> int:
        return self._length - self._pos  # what is left: how `requests` sizes a body

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = min(max(0, base + offset), self._length)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative), crossing parts as needed."""
        left = self._length - self._pos if size is None or size < 0 else size
        out = bytearray()
        while left > 0 and self._pos < self._length:
            block = self._read_here(left)
            if not block:
                raise OSError("a part of the body ended before its stated length")
            out += block
            left -= len(block)
        return bytes(out)

    def _read_here(self, size: int) -> bytes:
        """Bytes from the part the position is in (never past its end)."""
        # The last part starting at or before the position (past any empty ones there).
        index = max(i for i, start in enumerate(self._starts) if start <= self._pos)
        source, offset, length = self._parts[index]
        within = self._pos - self._starts[index]
        count = min(size, length - within)
        if isinstance(source, bytes):
            block = source[within : within + count]
        else:
            source.seek(offset + within)
            block = source.read(count)
        self._pos += len(block)
        return block


def stream_size(stream: BinaryIO) -> int:
    """Bytes from the stream's position to its end (its position is kept)."""
    here = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    stream.seek(here)
    return end - here


def form_body(
    fields: dict[str, str], name: str, filename: str, stream: BinaryIO
) -> tuple[Joined, str]:
    """(body, Content-Type) of a form with text `fields` and one file part `name` read from
    `stream`'s current position to its end."""
    boundary = uuid.uuid4().hex
    head = bytearray()
    for key, value in fields.items():
        head += _part_head(boundary, f'name="{key}"') + value.encode() + b"\r\n"
    quoted = filename.replace('"', "%22").replace("\r", "").replace("\n", "")
    head += _part_head(boundary, f'name="{name}"; filename="{quoted}"')
    head += b"Content-Type: application/octet-stream\r\n\r\n"
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = Joined([bytes(head), (stream, stream.tell(), stream_size(stream)), tail])
    return body, f"multipart/form-data; boundary={boundary}"


def _part_head(boundary: str, disposition: str) -> bytes:
    return f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n".encode() + (
        b"" if "filename" in disposition else b"\r\n"
    )
