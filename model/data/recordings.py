"""Reading users' time-lapse recordings for fine-tuning, with errors a user can act on.

Uploads arrive with arbitrary names, so the file type is decided by content (magic bytes), not
by suffix. Size limits are checked against the shape the header declares before any pixel is
decoded, so a small file declaring a huge image cannot exhaust memory. Every refusal is a
`RecordingError` naming the file, what is wrong and how to fix it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import tifffile

from savgan.model.video_io.tiff import tiff_metadata

from .video_probe import ProbeError, probe_video_container

SourceFormat = Literal["ome-tiff", "imagej-tiff", "tiff", "mp4", "avi"]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_OTHER_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"PK\x03\x04": "a ZIP archive",
    b"\x89HDF": "an HDF5 file",
    b"\x1f\x8b": "a gzip archive",
    b"%PDF": "a PDF document",
}
_TIME_AXES = "TIQ"  # tifffile: T time, I generic image sequence, Q unknown (plain multi-page)
_AXIS_NAMES = {
    "C": "channel", "Z": "depth (Z)", "S": "sample (RGB)", "P": "position", "R": "tile",
    "E": "wavelength", "H": "lifetime", "A": "angle", "L": "exposure", "V": "view",
}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as ffmpeg's gray
_FIX_FORMAT = "save the sequence as a multi-page TIFF (T x H x W) or an MP4/AVI video"


class RecordingError(ValueError):
    """A user recording cannot be used; the message says which file, why, and what to do."""

    def __init__(self, path: str | os.PathLike[str], problem: str, fix: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        message = f"{self.path.name}: {problem}"
        super().__init__(f"{message}; {fix}" if fix else message)


@dataclass(frozen=True)
class RecordingLimits:
    """Upper bounds on what a single uploaded recording may declare.

    Defaults: 2 GiB decoded (the larger of the source array and its float32 copy), 10,000 frames,
    8192 x 8192 pixels per frame: a generous time-lapse that still fits in a worker's memory.
    """

    max_decoded_bytes: int = 2 * 1024**3
    max_frames: int = 10_000
    max_height: int = 8192
    max_width: int = 8192


@dataclass(frozen=True)
class Recording:
    """One decoded recording: raw intensities as float32 (T, H, W), plus what the file said."""

    path: Path
    frames: np.ndarray = field(repr=False)
    source_format: SourceFormat
    source_dtype: str
    pixel_size_um: float | None = None
    frame_interval_s: float | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        t, h, w = self.frames.shape
        return t, h, w


def container_of(head: bytes) -> Literal["tiff", "mp4", "avi"] | None:
    """The recording container the first bytes announce, or None."""
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def known_other_type(head: bytes) -> str | None:
    """What a non-recording file is ("a PNG image", ...), when its magic bytes tell."""
    return next((what for magic, what in _OTHER_MAGIC.items() if head.startswith(magic)), None)


def probe_recording(path: Path, kind: Literal["tiff", "mp4", "avi"]) -> tuple[int, int, int]:
    """(frames, height, width) without keeping pixels: TIFF from the header, video from its container headers.

    Checks the same limits, axes and integrity as :func:`read_recording`, so an upload can be
    refused before a job is queued.
    """
    return _probe_tiff(path) if kind == "tiff" else _probe_video(path, kind)


def _only_series(tif: tifffile.TiffFile, path: Path) -> tifffile.TiffPageSeries:
    """The file's single image series: a file with none is corrupt, one with several is ambiguous."""
    if not tif.series:
        raise _corrupt(path, "no image data found")
    if len(tif.series) > 1:
        shapes = ", ".join(f"{x.axes} {x.shape}" for x in tif.series[:4])
        raise RecordingError(path, f"holds {len(tif.series)} image series ({shapes}"
                             f"{', ...' if len(tif.series) > 4 else ''})",
                             "save one time-lapse per file, all frames the same size")
    return tif.series[0]


def _check_finite(path: Path, series: tifffile.TiffPageSeries) -> None:
    """Refuse NaN or infinite pixels at upload: the worker would otherwise fail seconds later on a NaN loss.

    Reads the pixels page by page; the size limits checked before bound the work.
    """
    bad = total = 0
    for page in series.pages:
        pixels = page.asarray()
        bad += int(pixels.size - np.count_nonzero(np.isfinite(pixels)))
        total += pixels.size
    if bad:
        raise RecordingError(path, f"{bad} of {total} pixels are NaN or infinite",
                             "replace them (for example with the background value) before uploading")


def _probe_tiff(path: Path) -> tuple[int, int, int]:
    file_size = path.stat().st_size
    with _tifffile_errors() as errors:
        try:
            with tifffile.TiffFile(path) as tif:
                series = _only_series(tif, path)
                if errors.messages:
                    raise _corrupt(path, errors.messages[0][:200])
                index, kept = _select_axes(path, series.axes, series.shape, None, None)
                sizes = dict(zip(kept, (n for n, i in zip(series.shape, index) if isinstance(i, slice))))
                frames = next(n for a, n in sizes.items() if a in _TIME_AXES)
                _check_limits(path, frames, sizes["Y"], sizes["X"], series.nbytes, RecordingLimits())
                _check_extents(path, series, file_size)
                if series.dtype is None or series.dtype.kind not in "uif":
                    raise RecordingError(path, f"pixel type {series.dtype} is not supported",
                                             "save as 8- or 16-bit integers or 32-bit floats")
                if series.dtype.kind == "f":
                    _check_finite(path, series)
        except RecordingError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser failure on user bytes is a corrupt file
            raise _corrupt(path, f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    if errors.messages:
        raise _corrupt(path, errors.messages[0][:200])
    return frames, sizes["Y"], sizes["X"]


def _probe_video(path: Path, kind: Literal["mp4", "avi"]) -> tuple[int, int, int]:
    """Frames and size from the container's headers and index (no decoder: the API has none);
    a copy cut short is caught there too, as its index points past the end of the file."""
    try:
        frames, height, width = probe_video_container(path, kind)
    except ProbeError as err:
        raise RecordingError(path, err.problem, err.fix) from err
    if frames == 0:
        raise RecordingError(path, "the video contains no frames", "export the video again")
    _check_limits(path, frames, height, width, 0, RecordingLimits())
    return frames, height, width


def sniff_format(path: str | os.PathLike[str]) -> Literal["tiff", "mp4", "avi"]:
    """Decide the container from the first bytes; refuse empty and unsupported files."""
    p = Path(path)
    if not p.is_file():
        raise RecordingError(p, "file not found", "check the path")
    with open(p, "rb") as fh:
        head = fh.read(16)
    if not head:
        raise RecordingError(p, "the file is empty (0 bytes)", "upload or copy it again")
    kind = container_of(head)
    if kind is not None:
        return kind
    what = known_other_type(head)
    if what is not None:
        raise RecordingError(p, f"this is {what}, not a time-lapse recording", _FIX_FORMAT)
    if len(head) < 8:
        raise RecordingError(p, f"the file is only {len(head)} bytes long", _FIX_FORMAT)
    raise RecordingError(p, "unsupported or unrecognised file type", _FIX_FORMAT)


def read_recording(
    path: str | os.PathLike[str],
    *,
    channel: int | None = None,
    z: int | None = None,
    limits: RecordingLimits = RecordingLimits(),
) -> Recording:
    """Read a multi-page TIFF / OME-TIFF / ImageJ TIFF, MP4 or AVI as float32 (T, H, W).

    Axes of size 1 (C, Z, ...) are dropped; a real multi-channel or multi-Z file needs
    ``channel=`` or ``z=`` to pick one plane. A Z axis that is the only long axis is read as
    time (see `_select_axes`). RGB is converted to gray (BT.601 luma). Pixel size and frame
    interval come from OME-XML, ImageJ metadata or TIFF resolution tags when present.
    """
    p = Path(path)
    kind = sniff_format(p)
    if kind == "tiff":
        return _read_tiff(p, channel, z, limits)
    if channel not in (None, 0) or z not in (None, 0):
        raise RecordingError(p, f"{kind.upper()} videos have one gray channel and no Z",
                             "leave channel= and z= unset")
    return _read_video(p, kind, limits)


def check_patch_fit(
    recording: Recording, patch_shape: tuple[int, int, int], after: str = ""
) -> None:
    """Refuse recordings too short or too small to yield one patch of `patch_shape`.

    `after` names the preprocessing already applied (e.g. "2x2 binning") for the message.
    """
    pt, ph, pw = patch_shape
    t, h, w = recording.shape
    context = f" after {after}" if after else ""
    if t < pt:
        raise RecordingError(
            recording.path,
            f"has {t} frames{context}, fewer than the patch length of {pt} frames",
            f"use a recording with at least {pt} frames, or lower the patch length"
            + (" or the frame step" if after else ""),
        )
    if h < ph or w < pw:
        raise RecordingError(
            recording.path,
            f"frames are {h}x{w} pixels (HxW){context}, smaller than the {ph}x{pw} patch size",
            "use larger frames, or lower the patch size" + (" or the binning" if after else ""),
        )


def _human(n_bytes: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes} bytes"


def _check_limits(
    path: Path, n_frames: int, height: int, width: int, source_bytes: int, limits: RecordingLimits
) -> None:
    if n_frames > limits.max_frames:
        raise RecordingError(path, f"declares {n_frames} frames, more than the limit of "
                             f"{limits.max_frames}", "split the recording into shorter files")
    if height > limits.max_height or width > limits.max_width:
        raise RecordingError(
            path,
            f"frames are {height}x{width} pixels (HxW), larger than the limit of "
            f"{limits.max_height}x{limits.max_width}",
            "crop or bin the frames before uploading",
        )
    decoded = max(source_bytes, n_frames * height * width * 4)
    if decoded > limits.max_decoded_bytes:
        raise RecordingError(
            path,
            f"would decode to {_human(decoded)}, more than the limit of "
            f"{_human(limits.max_decoded_bytes)}",
            "split, crop or bin the recording",
        )


class _ErrorLog(logging.Handler):
    """Collects tifffile's logged errors: it logs, rather than raises, on broken page chains."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _tifffile_errors() -> Iterator[_ErrorLog]:
    handler = _ErrorLog()
    log = logging.getLogger("tifffile")
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


def _corrupt(path: Path, detail: str) -> RecordingError:
    return RecordingError(path, f"the TIFF is corrupt or truncated ({detail})",
                          "copy or export the file again")


def _check_extents(path: Path, series: tifffile.TiffPageSeries, file_size: int) -> None:
    """Refuse files whose declared pixel data run past the end of the file."""
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
        if end > file_size:
            raise _corrupt(path, f"pixel data end at byte {end} but the file has {file_size}")
        return
    for page in series.pages:
        if page is None:
            raise _corrupt(path, "a page of the series is missing")
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n > 0]
        if ends and max(ends) > file_size:
            raise _corrupt(path, f"page data end at byte {max(ends)} but the file has {file_size}")


def _select_axes(
    path: Path, axes: str, shape: tuple[int, ...], channel: int | None, z: int | None
) -> tuple[tuple[int | slice, ...], str]:
    """Index that reduces the series to (T, Y, X[, S]) and the axes left after indexing.

    A Z axis that is the only long axis is read as time: ImageJ saves a plain stack (one not
    declared a hyperstack) as "slices", and that is how most time-lapses exported from Fiji
    arrive. Z alongside a long time axis is a real multi-Z recording and needs ``z=``.
    """
    long_axes = [a for a, n in zip(axes, shape) if n > 1 and a not in "YXS"]
    z_is_time = z is None and long_axes == ["Z"]
    index: list[int | slice] = []
    kept = ""
    for axis, size in zip(axes, shape):
        pick = {"C": channel, "Z": z}.get(axis)
        name = _AXIS_NAMES.get(axis, f"'{axis}'")
        if axis in "YX" or (axis == "S" and size in (3, 4)):
            index.append(slice(None))
            kept += axis
        elif axis == "Z" and z_is_time:
            index.append(slice(None))
            kept += "T"
        elif pick is not None:
            if not 0 <= pick < size:
                raise RecordingError(path, f"{axis}={pick} requested but the {name} axis has "
                                     f"size {size}", f"choose a value in 0..{size - 1}")
            index.append(pick)
        elif size == 1:
            index.append(0)
        elif axis in "CZ":
            option = "channel" if axis == "C" else "z"
            raise RecordingError(
                path,
                f"has a {name} axis of size {size} (axes {axes}, shape {shape}); "
                "fine-tuning needs one gray plane per time point",
                f"pass {option}=<0..{size - 1}> to pick one, or export a single {name} plane",
            )
        elif axis in _TIME_AXES:
            index.append(slice(None))
            kept += axis
        else:
            raise RecordingError(path, f"has a {name} axis of size {size} (axes {axes}, shape "
                                 f"{shape}), which is not supported",
                                 "export one time-lapse (T x H x W) per file")
    for axis, value in (("C", channel), ("Z", z)):
        if value not in (None, 0) and axis not in axes:
            raise RecordingError(path, f"{axis}={value} requested but the file has no {axis} "
                                 f"axis (axes {axes})", f"leave the {axis} option unset")
    time_axes = [a for a in kept if a in _TIME_AXES]
    if not time_axes:
        raise RecordingError(path, f"is a single 2D image (axes {axes}, shape {shape}), not a "
                             "time-lapse", _FIX_FORMAT)
    if len(time_axes) > 1:
        raise RecordingError(path, f"has {len(shape)} dimensions (axes {axes}, shape {shape}), "
                             "more than one of them longer than 1", _FIX_FORMAT)
    if "Y" not in kept or "X" not in kept or kept.index("Y") > kept.index("X"):
        raise RecordingError(path, f"has an unexpected axis layout {axes}", _FIX_FORMAT)
    return tuple(index), kept


def _to_float_frames(path: Path, data: np.ndarray, kept: str) -> np.ndarray:
    if data.dtype.kind not in "uif":
        raise RecordingError(path, f"pixel type {data.dtype} is not supported",
                             "save as 8- or 16-bit integers or 32-bit floats")
    is_float = data.dtype.kind == "f"
    if "S" in kept:
        data = np.moveaxis(data, kept.index("S"), -1)[..., :3].astype(np.float32) @ _LUMA
        kept = kept.replace("S", "")
    order = [i for i, a in enumerate(kept) if a in _TIME_AXES] + [kept.index("Y"), kept.index("X")]
    frames = np.ascontiguousarray(np.transpose(data, order), dtype=np.float32)
    if is_float:
        bad = ~np.isfinite(frames)
        if bad.any():
            first = int(np.argmax(bad.any(axis=(1, 2))))
            raise RecordingError(path, f"contains {int(bad.sum())} NaN or infinite pixel "
                                 f"values (first in frame {first})",
                                 "replace them (e.g. with 0) before uploading")
    return frames


def _read_tiff(
    path: Path, channel: int | None, z: int | None, limits: RecordingLimits
) -> Recording:
    file_size = path.stat().st_size
    with _tifffile_errors() as errors:
        try:
            with tifffile.TiffFile(path) as tif:
                series = _only_series(tif, path)
                if errors.messages:
                    raise _corrupt(path, errors.messages[0][:200])
                meta = tiff_metadata(tif)
                index, kept = _select_axes(path, series.axes, series.shape, channel, z)
                sizes = dict(zip(kept, (n for n, i in zip(series.shape, index)
                                        if isinstance(i, slice))))
                n_frames = next(n for a, n in sizes.items() if a in _TIME_AXES)
                _check_limits(path, n_frames, sizes["Y"], sizes["X"], series.nbytes, limits)
                _check_extents(path, series, file_size)
                data = series.asarray()[index]
        except RecordingError:
            raise
        except (tifffile.TiffFileError, ValueError, IndexError, OSError, KeyError) as exc:
            raise _corrupt(path, str(exc)[:200]) from exc
    if errors.messages:
        raise _corrupt(path, errors.messages[0][:200])
    kind: SourceFormat = {"ome": "ome-tiff", "imagej": "imagej-tiff"}.get(meta.kind, "tiff")
    return Recording(
        path=path,
        frames=_to_float_frames(path, data, kept),
        source_format=kind,
        source_dtype=str(data.dtype),
        pixel_size_um=meta.pixel_size_um,
        frame_interval_s=meta.frame_interval_s,
    )


def _read_video(path: Path, kind: Literal["mp4", "avi"], limits: RecordingLimits) -> Recording:
    """Decode to 8-bit gray with ffmpeg (which converts colour with BT.601 luma).

    Videos carry a playback rate, not the acquisition interval, so no frame interval is
    reported. ffmpeg is imported here, not at the top: only the workers decode videos, and the
    API image, which probes uploads with `probe_recording`, does not carry it.
    """
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="gray", bits_per_pixel=8)
        meta = next(reader)
    except (RuntimeError, OSError, StopIteration) as exc:
        raise RecordingError(path, f"ffmpeg cannot decode this {kind.upper()} file: it is "
                             f"corrupt or truncated ({str(exc).strip().splitlines()[-1][:200]})",
                             "check the file plays, or export it again") from exc
    try:
        width, height = (int(n) for n in meta["size"])
        declared = math.ceil(float(meta.get("fps") or 0) * float(meta.get("duration") or 0))
        _check_limits(path, declared, height, width, 0, limits)
        frames: list[np.ndarray] = []
        for raw in reader:  # headers can understate the length: keep checking while decoding
            _check_limits(path, len(frames) + 1, height, width, 0, limits)
            frames.append(np.frombuffer(raw, dtype=np.uint8).reshape(height, width))
    except RuntimeError as exc:
        raise RecordingError(path, f"the {kind.upper()} file is corrupt or truncated "
                             f"({str(exc).strip().splitlines()[0][:200]})",
                             "export the video again") from exc
    finally:
        reader.close()
    if not frames:
        raise RecordingError(path, "the video contains no frames", "export the video again")
    if len(frames) < declared - max(2, declared // 20):
        raise RecordingError(path, f"the {kind.upper()} file is truncated: its header declares "
                             f"about {declared} frames but only {len(frames)} decode",
                             "export or copy the video again")
    stack = np.stack(frames)
    _check_limits(path, stack.shape[0], height, width, stack.nbytes, limits)
    if stack.shape[0] < 2:
        raise RecordingError(path, "the video has a single frame, not a time-lapse", _FIX_FORMAT)
    return Recording(path=path, frames=stack.astype(np.float32), source_format=kind,
                     source_dtype="uint8")
