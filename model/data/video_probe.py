"""Frame count and size of an MP4 or AVI upload from its container headers, in pure Python.

The API refuses bad uploads before a job is queued but never decodes pixels (the workers do), so
it needs no video decoder: ffmpeg alone would be 165 MB of the API image. What the container says
is enough for the upload checks: the video track's frame count and dimensions, and the structural
integrity a cut-short copy breaks (a box or chunk, or the samples the index points at, running
past the end of the file). Reads only headers and indexes, never the coded frames.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

_MAX_HEADER_BYTES = 64 * 1024**2  # an index (moov, hdrl) larger than this is not a real time-lapse


class ProbeError(ValueError):
    """The container is not a usable video; `problem` says what is wrong, `fix` what to do."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}; {fix}")


def probe_video_container(path: Path, kind: Literal["mp4", "avi"]) -> tuple[int, int, int]:
    """(frames, height, width) of the first video track/stream, from the headers alone."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        try:
            return _probe_mp4(fh, size) if kind == "mp4" else _probe_avi(fh, size)
        except struct.error as exc:  # a table whose declared length overruns its box
            raise _corrupt(kind.upper(), f"a header table is cut short: {exc}") from exc


def _truncated(kind: str, detail: str) -> ProbeError:
    return ProbeError(f"the {kind} file is truncated ({detail})", "export or copy the video again")


def _corrupt(kind: str, detail: str) -> ProbeError:
    return ProbeError(f"the {kind} file is corrupt ({detail})", "check the file plays, or export it again")


def _read(fh: BinaryIO, offset: int, length: int, kind: str) -> bytes:
    if length > _MAX_HEADER_BYTES:
        raise _corrupt(kind, f"a header of {length} bytes")
    fh.seek(offset)
    data = fh.read(length)
    if len(data) < length:
        raise _truncated(kind, f"a header at byte {offset} ends past the end of the file")
    return data


# ---- MP4 (ISO base media file format) ----------------------------------------------------------

def _box_header(buf: bytes, pos: int, room: int) -> tuple[bytes, int, int]:
    """(type, header length, box length) of the box at buf[pos:], which has `room` bytes to fit in."""
    if room < 8 or len(buf) < pos + 8:
        raise _truncated("MP4", f"{room} stray bytes where a box header should be")
    size, kind = struct.unpack_from(">I4s", buf, pos)
    header = 8
    if size == 1:
        if room < 16 or len(buf) < pos + 16:
            raise _truncated("MP4", f"the {kind.decode('latin-1')!r} box header is cut short")
        size, header = struct.unpack_from(">Q", buf, pos + 8)[0], 16
    elif size == 0:  # "to the end of the enclosing box or file"
        size = room
    if size < header:
        raise _corrupt("MP4", f"a {kind.decode('latin-1')!r} box of {size} bytes")
    if size > room:
        raise _truncated("MP4", f"the {kind.decode('latin-1')!r} box is {size} bytes but only {room} remain")
    return kind, header, size


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        kind, header, size = _box_header(data, pos, end - pos)
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, path: bytes) -> tuple[int, int] | None:
    """The payload span of the first box along `path` (e.g. b"mdia/minf/stbl"), or None."""
    for name in path.split(b"/"):
        found = next(((s, e) for k, s, e in _boxes(data, start, end) if k == name), None)
        if found is None:
            return None
        start, end = found
    return start, end


def _top_level_mp4(fh: BinaryIO, size: int) -> dict[bytes, tuple[int, int]]:
    """Top-level boxes by type -> (payload offset, payload length); every box must fit in the file."""
    found: dict[bytes, tuple[int, int]] = {}
    pos = 0
    while pos < size:
        head = _read(fh, pos, min(16, size - pos), "MP4")
        kind, header, box_size = _box_header(head, 0, size - pos)
        found.setdefault(kind, (pos + header, box_size - header))
        pos += box_size
    return found


def _probe_mp4(fh: BinaryIO, size: int) -> tuple[int, int, int]:
    top = _top_level_mp4(fh, size)
    if b"moov" not in top:
        raise _truncated("MP4", "no 'moov' index box: the end of the file is missing or it was never finished")
    if b"moof" in top:
        raise ProbeError("fragmented MP4 (streaming 'moof' boxes) is not supported",
                         "remux it as a plain MP4: ffmpeg -i IN.mp4 -c copy -movflags +faststart OUT.mp4")
    moov = _read(fh, *top[b"moov"], "MP4")
    for kind, start, end in _boxes(moov):
        if kind != b"trak":
            continue
        hdlr = _child(moov, start, end, b"mdia/hdlr")
        if hdlr is None or moov[hdlr[0] + 8:hdlr[0] + 12] != b"vide":
            continue
        return _mp4_video_track(moov, start, end, size)
    raise _corrupt("MP4", "no video track")


def _mp4_video_track(moov: bytes, start: int, end: int, file_size: int) -> tuple[int, int, int]:
    stbl = _child(moov, start, end, b"mdia/minf/stbl")
    stsd = stsz = None
    if stbl is not None:
        stsd, stsz = _child(moov, *stbl, b"stsd"), _child(moov, *stbl, b"stsz")
    # The first sample entry (avc1, hvc1, mp4v...) carries the coded size, the one a decoder
    # outputs: 8 bytes of box header, 24 of reserved fields, then width and height (16 bit each).
    if stbl is None or stsd is None or stsz is None or stsd[1] - stsd[0] < 8 + 36 or stsz[1] - stsz[0] < 12:
        raise _corrupt("MP4", "the video track has no sample table, sample description or sample sizes")
    width, height = struct.unpack_from(">HH", moov, stsd[0] + 8 + 32)
    uniform, frames = struct.unpack_from(">II", moov, stsz[0] + 4)
    if not uniform and stsz[0] + 12 + 4 * frames > stsz[1]:
        raise _corrupt("MP4", f"the sample size table lists fewer than its {frames} samples")
    sizes = [uniform] * frames if uniform else list(struct.unpack_from(f">{frames}I", moov, stsz[0] + 12))
    _check_mp4_chunks(moov, stbl, sizes, file_size)
    return frames, height, width


def _check_mp4_chunks(moov: bytes, stbl: tuple[int, int], sizes: list[int], file_size: int) -> None:
    """The last chunk the index points at must lie inside the file: a copy cut short fails here."""
    stco, co64, stsc = (_child(moov, *stbl, name) for name in (b"stco", b"co64", b"stsc"))
    table, width = (stco, "I") if stco is not None else (co64, "Q")
    if table is None or stsc is None:
        raise _corrupt("MP4", "the video track has no chunk offsets or no sample-to-chunk table")
    n_chunks = struct.unpack_from(">I", moov, table[0] + 4)[0]
    n_runs = struct.unpack_from(">I", moov, stsc[0] + 4)[0]
    if not n_chunks or not n_runs or table[0] + 8 + n_chunks * struct.calcsize(width) > table[1]:
        return
    last_offset = struct.unpack_from(f">{width}", moov, table[0] + 8 + (n_chunks - 1) * struct.calcsize(width))[0]
    per_chunk = struct.unpack_from(">I", moov, stsc[0] + 8 + (n_runs - 1) * 12 + 4)[0]
    end = last_offset + sum(sizes[-per_chunk:]) if per_chunk else last_offset
    if end > file_size:
        raise _truncated("MP4", f"its last frames end at byte {end} but the file has {file_size}")


# ---- AVI (RIFF) ------------------------------------------------------------------------------------

def _chunks(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(id, payload start, payload end) of the RIFF chunks in data[start:end] (LIST ids as b"LISThdrl")."""
    pos = start
    while pos + 8 <= end:
        cid, size = struct.unpack_from("<4sI", data, pos)
        if pos + 8 + size > end:
            raise _truncated("AVI", f"the {cid.decode('latin-1')!r} chunk ends past its list")
        if cid == b"LIST" and size >= 4:
            yield cid + data[pos + 8:pos + 12], pos + 12, pos + 8 + size
        else:
            yield cid, pos + 8, pos + 8 + size
        pos += 8 + size + (size & 1)


def _probe_avi(fh: BinaryIO, size: int) -> tuple[int, int, int]:
    riff_size = struct.unpack("<I", _read(fh, 4, 4, "AVI"))[0]
    if 8 + riff_size > size:
        raise _truncated("AVI", f"its RIFF header declares {8 + riff_size} bytes but the file has {size}")
    head = _read(fh, 12, min(riff_size - 4, 12 + 1024**2), "AVI") if riff_size > 4 else b""
    lists = {cid: (s, e) for cid, s, e in _top_level_avi(head)}
    if b"LISThdrl" not in lists or b"LISTmovi" not in lists:
        raise _corrupt("AVI", "no 'hdrl' header list or no 'movi' frame list")
    for cid, start, end in _chunks(head, *lists[b"LISThdrl"]):
        if cid != b"LISTstrl":
            continue
        parts = {c: (s, e) for c, s, e in _chunks(head, start, end)}
        strh, strf = parts.get(b"strh"), parts.get(b"strf")
        if strh is None or strf is None or strh[1] - strh[0] < 36 or strf[1] - strf[0] < 12:
            raise _corrupt("AVI", "a stream has no complete 'strh'/'strf' header")
        if head[strh[0]:strh[0] + 4] != b"vids":
            continue
        frames = struct.unpack_from("<I", head, strh[0] + 32)[0]
        width, height = struct.unpack_from("<ii", head, strf[0] + 4)
        return frames, abs(height), width
    raise _corrupt("AVI", "no video stream")


def _top_level_avi(head: bytes) -> Iterator[tuple[bytes, int, int]]:
    """The RIFF's top-level lists, stopping at 'movi' (its frames need not be read, only fit in the file)."""
    pos = 0
    while pos + 12 <= len(head):
        cid, size = struct.unpack_from("<4sI", head, pos)
        name = cid + head[pos + 8:pos + 12] if cid == b"LIST" else cid
        if name == b"LISTmovi":
            yield name, pos + 12, pos + 8 + size
            return
        if pos + 8 + size > len(head):
            raise _corrupt("AVI", f"the {name.decode('latin-1')!r} header chunk is larger than 1 MiB or cut short")
        yield name, pos + 12 if cid == b"LIST" else pos + 8, pos + 8 + size
        pos += 8 + size + (size & 1)
