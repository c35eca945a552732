"""Video file writers: calibration metadata, determinism, MP4 sizing and checks, previews."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from savgan.model.video_io import tiff as tiff_module
from savgan.model.atomic import atomic_path
from savgan.model.video_io.formats import FORMATS, write_video
from savgan.model.video_io.intensity import from_integer, to_uint8, to_uint16
from savgan.model.video_io.mp4 import encoded_size, probe_video, write_mp4
from savgan.model.video_io.preview import GAP_VALUE, legible_scale, montage, montage_png, write_gif
from savgan.model.video_io.tiff import read_tiff_metadata, write_imagej_tiff, write_ome_tiff

PIXEL_UM = 1.7416
INTERVAL_S = 600.0


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _video(t: int = 6, h: int = 33, w: int = 47, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(t, h, w)).astype(np.float32)


def test_intensity_mapping_is_linear_clipped_and_refuses_nan() -> None:
    v = np.array([-1.0, 0.0, 1.0, -3.0, 2.0], dtype=np.float32)
    assert to_uint16(v).tolist() == [0, 32768, 65535, 0, 65535]
    assert to_uint8(v).tolist() == [0, 128, 255, 0, 255]
    back = from_integer(to_uint16(_video()))
    assert back.dtype == np.float32
    assert np.abs(back - _video()).max() <= 1.0 / 65535 + 1e-6
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(np.array([np.nan], dtype=np.float32))


def test_ome_tiff_round_trip_with_calibration(tmp_path: Path) -> None:
    ome_types = pytest.importorskip("ome_types")
    video = _video()
    path = tmp_path / "v.ome.tif"
    write_ome_tiff(path, video, PIXEL_UM, INTERVAL_S)
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        assert series.axes == "TYX"
        assert series.shape == video.shape
        assert series.dtype == np.uint16
        np.testing.assert_array_equal(series.asarray(), to_uint16(video))
        page = tif.pages[0]
        num, den = page.tags["XResolution"].value
        assert num / den == pytest.approx(1e4 / PIXEL_UM, rel=1e-6)
        assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        xml = tif.ome_metadata
    ome = ome_types.from_tiff(path)
    pixels = ome.images[0].pixels
    assert pixels.physical_size_x == pytest.approx(PIXEL_UM)
    assert pixels.physical_size_y == pytest.approx(PIXEL_UM)
    assert pixels.physical_size_x_unit.value == "µm"
    assert pixels.time_increment == pytest.approx(INTERVAL_S)
    assert pixels.time_increment_unit.value == "s"
    assert (pixels.size_t, pixels.size_y, pixels.size_x) == video.shape
    schema_validator = any(_importable(m) for m in ("lxml", "xmlschema"))
    ome_types.from_xml(xml, validate=schema_validator)  # XSD check needs lxml or xmlschema
    meta = read_tiff_metadata(path)
    assert (meta.kind, meta.axes, meta.shape) == ("ome", "TYX", video.shape)
    assert meta.pixel_size_um == pytest.approx(PIXEL_UM)
    assert meta.frame_interval_s == pytest.approx(INTERVAL_S)


def test_ome_tiff_is_byte_identical_for_identical_input(tmp_path: Path) -> None:
    """tifffile would put uuid1() (time + MAC) in the OME root; ours derives from the content."""
    a, b, c = tmp_path / "a.ome.tif", tmp_path / "b.ome.tif", tmp_path / "c.ome.tif"
    write_ome_tiff(a, _video(), PIXEL_UM, INTERVAL_S)
    write_ome_tiff(b, _video(), PIXEL_UM, INTERVAL_S)
    write_ome_tiff(c, _video(seed=1), PIXEL_UM, INTERVAL_S)
    assert a.read_bytes() == b.read_bytes()
    uuid_a = tifffile.TiffFile(a).ome_metadata.split('UUID="')[1][:45]
    with tifffile.TiffFile(c) as tif:
        assert tif.ome_metadata.split('UUID="')[1][:45] != uuid_a


def test_ome_tiff_uint8_and_float32(tmp_path: Path) -> None:
    video = _video()
    write_ome_tiff(tmp_path / "u8.ome.tif", video, PIXEL_UM, INTERVAL_S, dtype="uint8")
    write_ome_tiff(tmp_path / "f.ome.tif", video, PIXEL_UM, INTERVAL_S, dtype="float32")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "u8.ome.tif"), to_uint8(video))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "f.ome.tif"), video)
    with pytest.raises(ValueError, match="uint8, uint16 or float32"):
        write_ome_tiff(tmp_path / "x.ome.tif", video, PIXEL_UM, INTERVAL_S, dtype="int32")
    with pytest.raises(ValueError, match="pixel_size_um"):
        write_ome_tiff(tmp_path / "x.ome.tif", video, -1.0, INTERVAL_S)


def test_imagej_hyperstack_metadata(tmp_path: Path) -> None:
    video = _video()
    path = tmp_path / "v.tif"
    write_imagej_tiff(path, video, PIXEL_UM, INTERVAL_S)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "TYX"
        assert tif.series[0].shape == video.shape
        ij = tif.imagej_metadata
        assert ij["frames"] == video.shape[0]
        assert ij["finterval"] == pytest.approx(INTERVAL_S)
        assert ij["unit"] == "um"
        num, den = tif.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(PIXEL_UM, rel=1e-6)
    meta = read_tiff_metadata(path)
    assert meta.kind == "imagej"
    assert meta.pixel_size_um == pytest.approx(PIXEL_UM, rel=1e-6)
    assert meta.frame_interval_s == pytest.approx(INTERVAL_S)
    again = tmp_path / "again.tif"
    write_imagej_tiff(again, video, PIXEL_UM, INTERVAL_S)
    assert path.read_bytes() == again.read_bytes()


def test_flavour_keyword_follows_tifffile_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tiff_module._flavour_kwargs("ome") in ({"ome": True}, {"kind": "ome"})

    def new_style_imwrite(file: str, data: object = None, *, kind: str | None = None) -> None:
        raise AssertionError("signature only")

    monkeypatch.setattr(tiff_module.tifffile, "imwrite", new_style_imwrite)
    assert tiff_module._flavour_kwargs("ome") == {"kind": "ome"}
    assert tiff_module._flavour_kwargs("imagej") == {"kind": "imagej"}


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.ome.tif"
    target.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"previous result"
    assert sorted(os.listdir(tmp_path)) == ["out.ome.tif"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_ome_tiff(tmp_path / "missing" / "v.ome.tif", _video(), PIXEL_UM, INTERVAL_S)


def test_mp4_odd_size_is_padded_not_resized(tmp_path: Path) -> None:
    video = np.full((12, 33, 47), 0.5, dtype=np.float32)
    video[:, :, 0] = -1.0  # a dark left column must stay one column wide
    path = tmp_path / "v.mp4"
    probe = write_mp4(path, video, fps=10)
    assert (probe.frames, probe.height, probe.width) == (12, 34, 48)
    assert encoded_size(33, 47) == (34, 48)
    head = path.read_bytes()[:64]
    assert head[4:8] == b"ftyp"
    assert head.index(b"moov") < path.read_bytes().index(b"mdat")  # +faststart
    assert probe_video(path) == probe
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="gray", bits_per_pixel=8)
    next(reader)
    frame = np.frombuffer(next(reader), np.uint8).reshape(34, 48)
    reader.close()
    assert abs(int(np.median(frame[:33, 5:47])) - 191) <= 3  # 0.5 -> 191
    assert frame[:33, 0].mean() < frame[:33, 5].mean() - 100
    assert frame[33, 10:40].mean() < 40  # black padding row


def test_mp4_scale_and_determinism(tmp_path: Path) -> None:
    video = _video(t=8, h=17, w=16)
    probe = write_mp4(tmp_path / "a.mp4", video, scale=3)
    assert (probe.frames, probe.height, probe.width) == (8, 52, 48)
    write_mp4(tmp_path / "b.mp4", video, scale=3)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    with pytest.raises(ValueError, match="integer"):
        write_mp4(tmp_path / "c.mp4", video, scale=1.5)  # type: ignore[arg-type]
    assert not (tmp_path / "c.mp4").exists()


def test_montage_and_gif(tmp_path: Path) -> None:
    videos = np.stack([_video(t=10, h=16, w=20, seed=s) for s in range(3)])
    sheet = montage(videos, columns=4, scale=1, gap=2)
    assert sheet.shape == (3 * 16 + 2 * 2, 4 * 20 + 3 * 2)
    size = montage_png(tmp_path / "m.png", videos, columns=4, scale=2, gap=2)
    assert size == (3 * 32 + 4, 4 * 40 + 6)
    with Image.open(tmp_path / "m.png") as im:
        assert im.size == (size[1], size[0]) and im.mode == "L"
    montage_png(tmp_path / "m2.png", videos, columns=4, scale=2, gap=2)
    assert (tmp_path / "m.png").read_bytes() == (tmp_path / "m2.png").read_bytes()
    write_gif(tmp_path / "a.gif", videos[0], fps=5, scale=2)
    write_gif(tmp_path / "b.gif", videos[0], fps=5, scale=2)
    assert (tmp_path / "a.gif").read_bytes() == (tmp_path / "b.gif").read_bytes()
    with Image.open(tmp_path / "a.gif") as im:
        assert im.size == (40, 32) and im.n_frames == 10 and im.info["duration"] == 200


def test_montages_are_legible_by_default_and_wrap_frames_into_rows(tmp_path: Path) -> None:
    """32-pixel frames at 1:1 (a 270 x 32 strip for 8 frames) were too small to read."""
    videos = np.stack([_video(t=16, h=32, w=32, seed=s) for s in range(3)])
    assert legible_scale(32, 32) == 4 and legible_scale(16, 40) == 8 and legible_scale(256, 256) == 1
    assert montage(videos).shape == (3 * 128 + 2 * 2, 8 * 128 + 7 * 2)  # rows are videos
    wrapped = montage(videos[:1], columns=8, wrap=3)  # 8 frames: rows of 3, 3, 2
    assert wrapped.shape == (3 * 128 + 2 * 2, 3 * 128 + 2 * 2)
    assert (wrapped[-128:, -128:] == GAP_VALUE).all()  # the last row's empty place
    assert np.array_equal(wrapped[130:258, :128], montage(videos[:1], columns=8)[:, 3 * 130 : 3 * 130 + 128])
    two = montage(videos[:2], columns=4, wrap=2)  # each video starts a new row
    assert two.shape == (4 * 128 + 3 * 2, 2 * 128 + 2) and np.array_equal(two[260:388, :128], montage(videos[1:2])[:, :128])
    with pytest.raises(ValueError, match="wrap"):
        montage(videos, wrap=0)


def test_png_format_is_a_grid_of_enlarged_frames(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v", _video(t=20, h=32, w=32), "png", 1.0, 1.0)
    with Image.open(path) as im:
        assert im.size == (4 * 128 + 3 * 2, 2 * 128 + 2)  # 8 frames: 2 rows of 4 tiles of 128 px


def test_write_video_registry(tmp_path: Path) -> None:
    video = _video(t=4, h=16, w=16)
    suffixes = {}
    for name in FORMATS:
        out = write_video(tmp_path / "clip.seed7", video, name, PIXEL_UM, INTERVAL_S)
        assert out.exists() and out.stat().st_size > 0
        suffixes[name] = out.name
    assert suffixes["ome-tiff"] == "clip.seed7.ome.tif"
    assert suffixes["mp4"] == "clip.seed7.mp4"
    with pytest.raises(ValueError, match="unknown video format 'avi'.*ome-tiff.*mp4"):
        write_video(tmp_path / "clip", video, "avi", PIXEL_UM, INTERVAL_S)


def test_raw_camera_counts_are_stored_unchanged_and_previewed_scaled(tmp_path):
    from savgan.model.video_io.formats import write_video

    counts = (np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8) * 50 + 1000).astype(np.uint16)
    tif = write_video(tmp_path / "raw", counts, "ome-tiff", 1.3, 10.0)
    assert np.array_equal(tifffile.imread(tif), counts)
    png = write_video(tmp_path / "raw", counts, "png", 1.3, 10.0)
    assert np.asarray(Image.open(png))[:6, :8].min() == 0  # the darkest count maps to black
    from savgan.model.video_io.intensity import preview_range

    scaled = preview_range(counts)
    assert scaled.dtype == np.float32 and scaled.min() == -1.0 and scaled.max() == 1.0


def test_a_calibrated_model_writes_tiffs_in_its_training_datas_counts():
    """toc-sim's TIFFs once spanned 1.5k-61k counts where the simulator spans ~11.5k-22k."""
    from savgan.model.video_io.calibration import to_counts, video_for_format

    physical = {"pixel_size_um": 1.3, "intensity_low": 12000.0, "intensity_high": 22000.0}
    video = np.linspace(-1, 1, 2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    counts = video_for_format(video, "ome-tiff", physical)
    assert counts.dtype == np.uint16 and counts.min() == 12000 and counts.max() == 22000
    assert video_for_format(video, "mp4", physical) is video
    assert video_for_format(video, "ome-tiff", {"pixel_size_um": 1.0}) is video
    assert to_counts(np.zeros((1, 2, 2), np.float32), 100.0, 300.0).tolist() == [[[200, 200], [200, 200]]]
    with pytest.raises(ValueError, match="intensity range"):
        video_for_format(video, "ome-tiff", {"intensity_low": 5.0, "intensity_high": 1.0})


def test_the_bundled_toc_sim_writes_the_simulators_range(tmp_path):
    from savgan.cli.main import main

    assert main(["generate", "--model", "toc-sim", "--count", "1", "--out", str(tmp_path), "--format", "ome-tiff"]) == 0
    (path,) = tmp_path.glob("*.ome.tif")
    stored = tifffile.imread(path)
    assert stored.dtype == np.uint16
    assert 10_000 < stored.min() and stored.max() < 24_000
