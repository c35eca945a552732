"""Reading users' recordings (formats, validation, limits) and cutting training patches."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from scipy import ndimage

from savgan.model.data.patches import (
    PatchConfig,
    RecordingPatches,
    cut_patch,
    grid_specs,
    plan_patches,
    preprocess,
    scale_patch,
)
from savgan.model.data.paths import data_root
from savgan.model.data.recordings import (
    Recording,
    RecordingError,
    RecordingLimits,
    read_recording,
)
from savgan.model.video_io.mp4 import write_mp4
from savgan.model.video_io.tiff import write_imagej_tiff, write_ome_tiff

T98G = data_root() / "microscopy/usiigaci_t98g_phase/t98g_phase_10x_bin2.tif"


def _stack(dtype: str, t: int = 5, h: int = 12, w: int = 10) -> np.ndarray:
    values = np.arange(t * h * w).reshape(t, h, w) % 200
    return (values - 50).astype(dtype) if dtype.startswith("int") else values.astype(dtype)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "float64"])
def test_plain_multipage_dtypes(tmp_path: Path, dtype: str) -> None:
    data = _stack(dtype)
    path = tmp_path / "rec.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    rec = read_recording(path)
    assert rec.frames.dtype == np.float32
    np.testing.assert_array_equal(rec.frames, data.astype(np.float32))
    assert (rec.source_format, rec.source_dtype) == ("tiff", dtype)


def test_ome_imagej_plain_metadata(tmp_path: Path) -> None:
    video = np.linspace(-1, 1, 4 * 8 * 6, dtype=np.float32).reshape(4, 8, 6)
    write_ome_tiff(tmp_path / "a.ome.tif", video, 0.65, 10.0)
    write_imagej_tiff(tmp_path / "b.tif", video, 0.65, 10.0)
    tifffile.imwrite(tmp_path / "c.tif", _stack("uint16", 4, 8, 6), photometric="minisblack",
                     resolution=(1e4 / 0.65, 1e4 / 0.65), resolutionunit="CENTIMETER")
    ome, ij, plain = (read_recording(tmp_path / n) for n in ("a.ome.tif", "b.tif", "c.tif"))
    assert (ome.source_format, ij.source_format, plain.source_format) == (
        "ome-tiff", "imagej-tiff", "tiff")
    for rec in (ome, ij, plain):
        assert rec.shape == (4, 8, 6)
        assert rec.pixel_size_um == pytest.approx(0.65, rel=1e-6)
    assert ome.frame_interval_s == pytest.approx(10.0)
    assert ij.frame_interval_s == pytest.approx(10.0)
    assert plain.frame_interval_s is None
    assert ome.frames.max() == 65535 and ome.frames.min() == 0


def test_size_one_axes_are_squeezed(tmp_path: Path) -> None:
    data = _stack("uint16", 5, 8, 8)
    tifffile.imwrite(tmp_path / "o.ome.tif", data[:, None, None], ome=True,
                     metadata={"axes": "TZCYX"})
    tifffile.imwrite(tmp_path / "i.tif", data[:, None, None], imagej=True,
                     metadata={"axes": "TZCYX"})
    for name in ("o.ome.tif", "i.tif"):
        np.testing.assert_array_equal(read_recording(tmp_path / name).frames, data)


def test_imagej_plain_stack_of_slices_is_read_as_time(tmp_path: Path) -> None:
    data = _stack("uint8", 6, 8, 8)
    tifffile.imwrite(tmp_path / "z.tif", data, imagej=True, metadata={"axes": "ZYX"})
    assert read_recording(tmp_path / "z.tif").shape == (6, 8, 8)


def test_multichannel_and_multi_z_need_a_choice(tmp_path: Path) -> None:
    data = np.stack([_stack("uint16", 5, 8, 8), 1000 + _stack("uint16", 5, 8, 8)], axis=1)
    path = tmp_path / "two_channels.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "TCYX"})
    with pytest.raises(RecordingError, match=r"two_channels.ome.tif: .*channel axis of size 2"
                       r".*channel=<0..1>"):
        read_recording(path)
    np.testing.assert_array_equal(read_recording(path, channel=1).frames, data[:, 1])
    with pytest.raises(RecordingError, match="choose a value in 0..1"):
        read_recording(path, channel=2)
    zpath = tmp_path / "tz.tif"
    tifffile.imwrite(zpath, np.zeros((5, 3, 8, 8), np.uint8), imagej=True,
                     metadata={"axes": "TZYX"})
    with pytest.raises(RecordingError, match=r"depth \(Z\) axis of size 3.*z=<0..2>"):
        read_recording(zpath)
    assert read_recording(zpath, z=2).shape == (5, 8, 8)


def test_rgb_tiff_becomes_gray(tmp_path: Path) -> None:
    rgb = np.zeros((4, 8, 8, 3), np.uint8)
    rgb[..., 1] = 200
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    rec = read_recording(tmp_path / "rgb.tif")
    assert rec.shape == (4, 8, 8)
    assert rec.frames[0, 0, 0] == pytest.approx(0.587 * 200, rel=1e-5)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: Image.new("L", (8, 8)).save(p, format="PNG"), "this is a PNG image"),
        (lambda p: p.write_bytes(b"just some text, not an image"), "unrecognised file type"),
        (lambda p: tifffile.imwrite(p, np.zeros((8, 8), np.uint8)), "single 2D image"),
        (lambda p: tifffile.imwrite(p, np.zeros((2, 3, 8, 8), np.uint8),
                                    photometric="minisblack"), "4 dimensions"),
    ],
    ids=["empty", "png-named-tif", "text", "2d", "4d"],
)
def test_bad_files_are_refused_by_content(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "upload.tif"
    make(path)
    with pytest.raises(RecordingError, match=rf"upload.tif: .*{message}"):
        read_recording(path)


def test_truncated_tiff_is_reported(tmp_path: Path) -> None:
    for name, kwargs in (("plain", {}), ("imagej", {"imagej": True}), ("ome", {"ome": True})):
        path = tmp_path / f"{name}.tif"
        tifffile.imwrite(path, _stack("uint16", 20, 32, 32), photometric="minisblack", **kwargs)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(RecordingError, match=rf"{name}.tif: the TIFF is corrupt or truncated"):
            read_recording(path)


def test_nan_in_float_data_is_refused(tmp_path: Path) -> None:
    data = np.zeros((4, 8, 8), np.float32)
    data[2, 3, 3] = np.inf
    tifffile.imwrite(tmp_path / "f.tif", data, photometric="minisblack")
    with pytest.raises(RecordingError, match="1 NaN or infinite .*frame 2"):
        read_recording(tmp_path / "f.tif")


def test_limits_are_checked_before_decoding(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "small.tif"
    tifffile.imwrite(path, _stack("uint16", 20, 64, 64), photometric="minisblack")

    def no_decode(*args, **kwargs):
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", no_decode)
    with pytest.raises(RecordingError, match=r"decode to 320.0 KiB, more than the limit"):
        read_recording(path, limits=RecordingLimits(max_decoded_bytes=100_000))
    with pytest.raises(RecordingError, match="declares 20 frames, more than the limit of 10"):
        read_recording(path, limits=RecordingLimits(max_frames=10))
    with pytest.raises(RecordingError, match="64x64 pixels .* limit of 32x8192"):
        read_recording(path, limits=RecordingLimits(max_height=32))


def test_mp4_round_trip_and_sniffing_ignores_the_name(tmp_path: Path) -> None:
    video = np.zeros((10, 20, 24), np.float32)
    video[:, :, 12:] = 1.0
    write_mp4(tmp_path / "clip.mp4", video)
    disguised = tmp_path / "clip.tif"
    disguised.write_bytes((tmp_path / "clip.mp4").read_bytes())
    rec = read_recording(disguised)
    assert rec.source_format == "mp4" and rec.shape == (10, 20, 24)
    assert abs(rec.frames[:, 5:15, 2:8].mean() - 128) < 4
    assert abs(rec.frames[:, 5:15, 16:22].mean() - 255) < 4
    noisy = np.random.default_rng(0).uniform(-1, 1, (40, 32, 32)).astype(np.float32)
    write_mp4(tmp_path / "noisy.mp4", noisy)
    data = (tmp_path / "noisy.mp4").read_bytes()
    for cut, message in ((0.6, "declares about 40 frames but only"), (0.02, "corrupt or trunc")):
        (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * cut)])
        with pytest.raises(RecordingError, match=f"cut.mp4: .*{message}"):
            read_recording(tmp_path / "cut.mp4")


def test_rgb_avi_is_read_as_gray(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = imageio_ffmpeg.write_frames(str(path), (16, 8), pix_fmt_in="rgb24", codec="png",
                                         pix_fmt_out="rgb24", macro_block_size=1, quality=None)
    writer.send(None)
    for _ in range(6):
        writer.send(np.tile(np.array([0, 200, 0], np.uint8), (8, 16, 1)))
    writer.close()
    assert path.read_bytes()[8:12] == b"AVI "
    rec = read_recording(path)
    assert rec.source_format == "avi" and rec.shape == (6, 8, 16)
    assert abs(rec.frames.mean() - 0.587 * 200) < 6


# --- patches -------------------------------------------------------------------------------


def _blob_video(speed: float, t: int = 40, h: int = 96, w: int = 128) -> tuple[np.ndarray, list]:
    """A bright blob moving right across a static textured, noisy background."""
    rng = np.random.default_rng(0)
    background = ndimage.gaussian_filter(rng.random((h, w)), 2) * 0.6
    yy, xx = np.mgrid[:h, :w]
    frames, track = [], []
    for i in range(t):
        cy, cx = 48.0, 20.0 + speed * i
        track.append((cy, cx))
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 4.0**2))
        frames.append(background + blob + 0.05 * rng.standard_normal((h, w)))
    return np.stack(frames).astype(np.float32), track


def _recording(frames: np.ndarray, name: str = "synthetic.tif") -> Recording:
    return Recording(Path(name), frames, "tiff", "float32")


def test_flow_patches_contain_the_moving_blob() -> None:
    frames, track = _blob_video(speed=1.0)
    plan = plan_patches(_recording(frames), PatchConfig())
    assert plan.method_used == "flow"
    assert plan.specs
    blob_radius = 4
    for spec in plan.specs:
        for cy, cx in track[spec.t0 : spec.t0 + 32]:
            assert spec.y0 + blob_radius <= cy < spec.y0 + 64 - blob_radius
            assert spec.x0 + blob_radius <= cx < spec.x0 + 64 - blob_radius


def test_static_video_falls_back_to_grid() -> None:
    frames, _ = _blob_video(speed=0.0)
    plan = plan_patches(_recording(frames), PatchConfig())
    assert plan.method_used == "grid (no motion found)"
    assert plan.specs == grid_specs(frames.shape, PatchConfig())
    origins = {(s.t0, s.y0, s.x0) for s in plan.specs}
    assert {(0, 0, 0), (8, 32, 64)} <= origins  # last window and last column reach the edges


def test_patch_scaling() -> None:
    patch = np.array([[[3.0, 5.0], [7.0, 11.0]]], np.float32)
    scaled = scale_patch(patch)
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    assert np.array_equal(scale_patch(np.full((2, 3, 3), 7.0, np.float32)), np.zeros((2, 3, 3)))


def test_too_short_or_too_small_recordings() -> None:
    short = _recording(np.zeros((20, 96, 96), np.float32), "short.tif")
    with pytest.raises(RecordingError, match="short.tif: has 20 frames, fewer than the patch "
                       "length of 32"):
        plan_patches(short, PatchConfig())
    small = _recording(np.zeros((40, 96, 96), np.float32), "small.tif")
    config = PatchConfig(bin_factor=2)
    with pytest.raises(RecordingError, match=r"small.tif: frames are 48x48 pixels \(HxW\) after "
                       "2x2 binning, smaller than the 64x64 patch"):
        plan_patches(preprocess(small, config), config)


def test_dataset_over_files(tmp_path: Path) -> None:
    moving, _ = _blob_video(speed=1.0)
    static, _ = _blob_video(speed=0.0)
    tifffile.imwrite(tmp_path / "moving.tif", moving, photometric="minisblack")
    tifffile.imwrite(tmp_path / "static.tif", static, photometric="minisblack")
    data = RecordingPatches([tmp_path / "moving.tif", tmp_path / "static.tif"])
    assert len(data) == len(data.sources[0].plan.specs) + 12
    item = data[0]
    assert isinstance(item, torch.Tensor)
    assert item.shape == (1, 32, 64, 64) and item.dtype == torch.float32
    assert item.min() == -1.0 and item.max() == 1.0
    text = data.describe()
    assert "moving.tif" in text and "(flow)" in text
    assert "static.tif" in text and "grid (no motion found)" in text
    grid = RecordingPatches([tmp_path / "static.tif"], PatchConfig(method="grid"))
    assert len(grid) == 12 and "(grid)" in grid.describe()


@pytest.mark.skipif(not T98G.exists(), reason=f"real data not found at {T98G}")
def test_flow_patches_on_real_t98g_phase_contrast() -> None:
    rec = read_recording(T98G)
    assert rec.shape == (37, 511, 512) and rec.frame_interval_s == 600.0
    crop = replace(rec, frames=rec.frames[:, 128:384, 128:384])
    config = PatchConfig(flow_max_side=128)
    plan = plan_patches(crop, config)
    assert plan.method_used == "flow"
    assert 2 <= len(plan.specs) <= 2 * config.max_patches_per_window
    patch = cut_patch(crop.frames, plan.specs[0], config.patch_shape)
    assert patch.shape == (32, 64, 64) and patch.min() == -1.0 and patch.max() == 1.0
    windows = {s.t0 for s in plan.specs}
    assert windows <= {0, 5}
