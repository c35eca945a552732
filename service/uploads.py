"""Receiving training recordings: a streaming multipart reader, type sniffing, header checks.

The request body is parsed as it arrives (python-multipart's push parser), never held whole:
each file part goes to a temporary file on disk, counted against ``max_upload_bytes`` while it
arrives, its type decided from its first bytes (not its name), its shape checked (frame count,
frame size, truncation: TIFF from the header without decoding pixels, video by counting decoded
frames without keeping them), and then streamed into storage with
``put_stream``. Only one part is on local disk at a time. Anything wrong raises
:class:`UploadRejected` with the HTTP status and a message naming the file.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from starlette.concurrency import run_in_threadpool

from savgan.common.storage import Storage, UploadTooLarge

RecordingKind = Literal["tiff", "mp4", "avi"]
FILES_FIELD = "files"
PARAMS_FIELD = "params"
MAX_PARAMS_BYTES = 64 * 1024
SNIFF_BYTES = 12
ACCEPTED = "multi-page TIFF / OME-TIFF / ImageJ TIFF (T x H x W), MP4 or AVI"


class UploadRejected(Exception):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass
class ReceivedFile:
    index: int
    filename: str
    key: str
    bytes: int
    format: RecordingKind
    frames: int
    height: int
    width: int


def safe_name(filename: str | None, index: int) -> str:
    """The base name with anything but letters, digits, ``.-_`` replaced; never empty or hidden."""
    base = re.split(r"[\\/]", filename or "")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip(".-")[:100]
    return cleaned or f"recording-{index}"


def sniff(head: bytes, filename: str) -> RecordingKind:
    """The container from the first bytes; 415 for anything else."""
    from savgan.model.data.recordings import container_of, known_other_type

    kind = container_of(head)
    if kind is not None:
        return kind
    what = known_other_type(head)
    problem = f"this is {what}" if what else "the content is not a recognised recording"
    raise UploadRejected(415, f"{filename}: {problem} (the type is read from the content, not the name); upload a {ACCEPTED}")


def probe(path: Path, kind: RecordingKind) -> tuple[int, int, int]:
    """(frames, height, width); TIFF from the header alone, video from its container headers; 422 naming the file."""
    from savgan.model.data.recordings import RecordingError, probe_recording

    try:
        return probe_recording(path, kind)
    except RecordingError as err:
        raise UploadRejected(422, str(err)) from err


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    disposition: bytes = b""
    data: bytearray = field(default_factory=bytearray)
    index: int = -1
    safe: str = ""
    path: Path | None = None
    handle: BinaryIO | None = None
    count: int = 0
    head: bytes = b""
    kind: RecordingKind | None = None


class MultipartUpload:
    """Streams ``files`` parts into storage under ``uploads/{job_id}/{n}-{name}``; keeps ``params`` text."""

    def __init__(self, storage: Storage, job_id: str, max_bytes: int, max_files: int) -> None:
        self.storage = storage
        self.prefix = f"uploads/{job_id}/"
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.files: list[ReceivedFile] = []
        self.params: str | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="savgan-upload-")
        self._part = _Part()
        self._header_name = b""
        self._header_value = b""
        self._events: list[tuple[_Part, bytes | None]] = []
        self._file_count = 0
        self._opened: list[_Part] = []

    # python-multipart callbacks: cheap bookkeeping only; file work happens in `_drain`.
    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._part.disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._part.disposition)
        part = self._part
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            part.filename = options[b"filename"].decode("utf-8", "replace")
        if part.name not in (FILES_FIELD, PARAMS_FIELD):
            raise UploadRejected(422, f"unexpected form field {part.name!r}: send the recordings as `files` and the JSON parameters as `params`")
        if part.name == FILES_FIELD:
            self._file_count += 1
            if self._file_count > self.max_files:
                raise UploadRejected(413, f"too many files: at most {self.max_files} recordings per training on this server")
            part.index = self._file_count - 1
            part.safe = safe_name(part.filename, part.index)
        elif self.params is not None:
            raise UploadRejected(422, "`params` was sent twice; send it once")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.name == PARAMS_FIELD:
            part.data += data[start:end]
            if len(part.data) > MAX_PARAMS_BYTES:
                raise UploadRejected(413, f"`params` is larger than {MAX_PARAMS_BYTES} bytes")
        else:
            self._events.append((part, bytes(data[start:end])))

    def _on_part_end(self) -> None:
        part = self._part
        if part.name == PARAMS_FIELD:
            self.params = part.data.decode("utf-8", "replace")
        else:
            self._events.append((part, None))

    async def receive(self, boundary: bytes, stream: AsyncIterator[bytes]) -> None:
        from python_multipart.exceptions import FormParserError
        from python_multipart.multipart import MultipartParser

        callbacks = {
            "on_part_begin": self._on_part_begin,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
        }
        try:
            parser = MultipartParser(boundary, callbacks)
            async for chunk in stream:
                parser.write(chunk)
                await self._drain()
            parser.finalize()
            await self._drain()
        except FormParserError as err:
            raise UploadRejected(400, f"the multipart body is malformed ({err})") from err

    async def _drain(self) -> None:
        events, self._events = self._events, []
        for part, data in events:
            if data is not None:
                self._write(part, data)
            else:
                self.files.append(await run_in_threadpool(self._finish, part))

    def _write(self, part: _Part, data: bytes) -> None:
        if part.handle is None:
            part.path = Path(self._tmp.name) / part.safe
            part.handle = part.path.open("wb")
            self._opened.append(part)
        part.count += len(data)
        if part.count > self.max_bytes:
            raise UploadRejected(413, f"{part.safe}: larger than this server's limit of {self.max_bytes} bytes per file")
        if len(part.head) < SNIFF_BYTES:
            part.head += data[: SNIFF_BYTES - len(part.head)]
            if len(part.head) >= SNIFF_BYTES:
                part.kind = sniff(part.head, part.safe)
        part.handle.write(data)

    def _finish(self, part: _Part) -> ReceivedFile:
        if part.handle is not None:
            part.handle.close()
        if part.count == 0 or part.path is None:
            raise UploadRejected(422, f"{part.safe}: the file is empty (0 bytes); upload it again")
        kind = part.kind or sniff(part.head, part.safe)
        frames, height, width = probe(part.path, kind)
        key = f"{self.prefix}{part.index}-{part.safe}"
        try:
            with part.path.open("rb") as fh:
                stored = self.storage.put_stream(key, fh, self.max_bytes, _CONTENT_TYPES[kind])
        except UploadTooLarge as err:
            raise UploadRejected(413, f"{part.safe}: {err}") from err
        finally:
            os.unlink(part.path)
        return ReceivedFile(part.index, part.safe, key, stored, kind, frames, height, width)

    def close(self) -> None:
        for part in self._opened:
            if part.handle is not None and not part.handle.closed:
                part.handle.close()
        self._tmp.cleanup()


_CONTENT_TYPES = {"tiff": "image/tiff", "mp4": "video/mp4", "avi": "video/x-msvideo"}
