"""OME-TIFF and ImageJ-hyperstack writers, and the metadata reader shared with recordings.

Both writers are byte-deterministic: identical inputs give identical files. tifffile (checked on
2026.3.3) otherwise puts ``uuid.uuid1()`` in the OME root element, which changes on every call and
embeds the host's MAC address; we pass a UUID derived from a hash of the pixels and metadata
instead. No DateTime tag is written. The ImageJ writer has no random or time-dependent fields.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import tifffile

from savgan.model.atomic import atomic_path
from .intensity import check_model_video, to_integer

StorageDtype = Literal["uint8", "uint16", "float32"]

_UUID_NAMESPACE = uuid.UUID("5d1c4a8e-2f0b-4d8a-9a57-3f6f0c1e7b21")
_UM_PER_UNIT = {
    "pm": 1e-6, "nm": 1e-3, "µm": 1.0, "μm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0,
    "\\u00B5m": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6, "Å": 1e-4,
}
_S_PER_UNIT = {
    "ns": 1e-9, "µs": 1e-6, "μs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0,
    "second": 1.0, "seconds": 1.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
}
_UM_PER_RESUNIT = {3: 1e4, 4: 1e3, 5: 1.0}  # CENTIMETER, MILLIMETER, MICROMETER (tifffile ext.)


@dataclass(frozen=True)
class TiffMetadata:
    """What a TIFF declares about its first series, read without decoding pixels."""

    kind: Literal["ome", "imagej", "tiff"]
    axes: str
    shape: tuple[int, ...]
    dtype: str
    pixel_size_um: float | None
    frame_interval_s: float | None


def _flavour_kwargs(flavour: Literal["ome", "imagej"]) -> dict[str, Any]:
    """Select OME or ImageJ output in any tifffile version.

    tifffile after 2026.3.3 replaces the boolean ``ome=``/``imagej=`` keywords with ``kind=``.
    """
    params = inspect.signature(tifffile.imwrite).parameters
    if "kind" in params and flavour not in params:
        return {"kind": flavour}
    return {flavour: True}


def _check_physical(pixel_size_um: float, frame_interval_s: float) -> None:
    for name, value in (("pixel_size_um", pixel_size_um), ("frame_interval_s", frame_interval_s)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _stored(video: np.ndarray, dtype: StorageDtype) -> np.ndarray:
    """Raw camera counts (uint8/uint16 input) are kept as they are; model videos are converted to ``dtype``."""
    raw = np.asarray(video)
    if raw.dtype in (np.uint8, np.uint16) and raw.ndim == 3 and raw.size:
        return np.ascontiguousarray(raw)
    arr = check_model_video(video)
    if dtype == "float32":
        return np.ascontiguousarray(arr)
    if dtype in ("uint8", "uint16"):
        return to_integer(arr, dtype)
    raise ValueError(f"unsupported TIFF storage dtype {dtype!r}; use uint8, uint16 or float32")


def _content_uuid(data: np.ndarray, pixel_size_um: float, frame_interval_s: float) -> str:
    digest = hashlib.sha256()
    digest.update(f"{data.shape}|{data.dtype.str}|{pixel_size_um!r}|{frame_interval_s!r}".encode())
    digest.update(memoryview(np.ascontiguousarray(data)).cast("B"))
    return str(uuid.uuid5(_UUID_NAMESPACE, digest.hexdigest()))


def write_ome_tiff(
    path: str | os.PathLike[str],
    video: np.ndarray,
    pixel_size_um: float,
    frame_interval_s: float,
    dtype: StorageDtype = "uint16",
) -> None:
    """Write a (T, H, W) model video as OME-TIFF with axes TYX and physical calibration.

    Intensities map linearly from [-1, 1] (see `intensity`); ``float32`` keeps raw model values.
    TIFF resolution tags carry the same pixel size as pixels per centimetre, so readers that
    ignore OME-XML still get the scale.
    """
    _check_physical(pixel_size_um, frame_interval_s)
    data = _stored(video, dtype)
    metadata = {
        "axes": "TYX",
        "UUID": _content_uuid(data, pixel_size_um, frame_interval_s),
        "PhysicalSizeX": float(pixel_size_um),
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": float(pixel_size_um),
        "PhysicalSizeYUnit": "µm",
        "TimeIncrement": float(frame_interval_s),
        "TimeIncrementUnit": "s",
    }
    per_cm = 1e4 / pixel_size_um
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            data,
            photometric="minisblack",
            metadata=metadata,
            resolution=(per_cm, per_cm),
            resolutionunit="CENTIMETER",
            **_flavour_kwargs("ome"),
        )


def write_imagej_tiff(
    path: str | os.PathLike[str],
    video: np.ndarray,
    pixel_size_um: float,
    frame_interval_s: float,
    dtype: StorageDtype = "uint16",
) -> None:
    """Write a (T, H, W) model video as an ImageJ hyperstack (frames=T) calibrated in µm and s.

    ImageJ stores the scale as pixels per unit in the resolution tags with ``unit=um`` in its
    description, and the frame interval as ``finterval`` in seconds.
    """
    _check_physical(pixel_size_um, frame_interval_s)
    data = _stored(video, dtype)
    per_um = 1.0 / pixel_size_um
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            data,
            photometric="minisblack",
            metadata={"axes": "TYX", "unit": "um", "finterval": float(frame_interval_s)},
            resolution=(per_um, per_um),
            **_flavour_kwargs("imagej"),
        )


def _ome_calibration(xml: str) -> tuple[float | None, float | None]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None, None
    pixel = _scaled(
        pixels.get("PhysicalSizeX"), pixels.get("PhysicalSizeXUnit", "µm"), _UM_PER_UNIT
    )
    interval = _scaled(
        pixels.get("TimeIncrement"), pixels.get("TimeIncrementUnit", "s"), _S_PER_UNIT
    )
    return pixel, interval


def _scaled(value: Any, unit: str | None, table: dict[str, float]) -> float | None:
    factor = table.get((unit or "").strip())
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if factor is None or not np.isfinite(number) or number <= 0:
        return None
    return number * factor


def _x_resolution(page: tifffile.TiffPage) -> float | None:
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value
    return num / den if num > 0 and den > 0 else None


def tiff_metadata(tif: tifffile.TiffFile) -> TiffMetadata:
    """Calibration and layout of the first series of an open TIFF (pixels are not decoded)."""
    series = tif.series[0]
    page = tif.pages[0]
    xres = _x_resolution(page)
    pixel: float | None = None
    interval: float | None = None
    if tif.is_ome and tif.ome_metadata:
        kind: Literal["ome", "imagej", "tiff"] = "ome"
        pixel, interval = _ome_calibration(tif.ome_metadata)
    elif tif.is_imagej and tif.imagej_metadata is not None:
        kind = "imagej"
        meta = tif.imagej_metadata
        unit_um = _UM_PER_UNIT.get(str(meta.get("unit", "")).strip())
        if xres and unit_um:
            pixel = unit_um / xres
        interval = _scaled(meta.get("finterval"), str(meta.get("tunit", "s")), _S_PER_UNIT)
    else:
        kind = "tiff"
    if pixel is None and xres:
        unit_um = _UM_PER_RESUNIT.get(int(page.tags.valueof("ResolutionUnit", 2)))
        pixel = unit_um / xres if unit_um else None
    return TiffMetadata(
        kind=kind,
        axes=series.axes,
        shape=tuple(int(n) for n in series.shape),
        dtype=str(series.dtype),
        pixel_size_um=pixel,
        frame_interval_s=interval,
    )


def read_tiff_metadata(path: str | os.PathLike[str]) -> TiffMetadata:
    with tifffile.TiffFile(path) as tif:
        return tiff_metadata(tif)
