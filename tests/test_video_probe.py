"""The API's decoder-free MP4/AVI probe: real files from the project's MP4 writer and ffmpeg's AVI
muxer give their frame count and size; truncated or corrupt copies are refused by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from savgan.model.data.recordings import RecordingError, probe_recording
from savgan.model.video_io.mp4 import write_mp4


def _mp4(path: Path, frames: int = 12, height: int = 24, width: int = 40) -> Path:
    noise = np.random.default_rng(0).uniform(-1, 1, (frames, height, width)).astype(np.float32)
    write_mp4(path, noise)
    return path


def _avi(path: Path, frames: int = 7, height: int = 8, width: int = 16) -> Path:
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), pix_fmt_in="gray", codec="png",
                                         pix_fmt_out="gray", macro_block_size=1, quality=None)
    writer.send(None)
    for i in range(frames):
        writer.send(np.full((height, width), 10 * i, np.uint8))
    writer.close()
    return path


def test_real_mp4_and_avi_report_frames_and_size(tmp_path: Path) -> None:
    assert probe_recording(_mp4(tmp_path / "a.mp4"), "mp4") == (12, 24, 40)
    assert probe_recording(_avi(tmp_path / "a.avi"), "avi") == (7, 8, 16)


@pytest.mark.parametrize("kind", ["mp4", "avi"])
@pytest.mark.parametrize("keep", [0.97, 0.6, 0.1])
def test_truncated_copies_are_refused(tmp_path: Path, kind: str, keep: float) -> None:
    good = (_mp4 if kind == "mp4" else _avi)(tmp_path / f"good.{kind}").read_bytes()
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(good[: int(len(good) * keep)])
    with pytest.raises(RecordingError, match=rf"^cut\.{kind}: the {kind.upper()} file is (truncated|corrupt) \(.+\); "):
        probe_recording(cut, kind)  # type: ignore[arg-type]


def test_mp4_header_with_garbage_instead_of_its_index_is_refused(tmp_path: Path) -> None:
    good = _mp4(tmp_path / "good.mp4").read_bytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(good[:32] + bytes(range(256)) * 8)
    with pytest.raises(RecordingError, match=r"^bad\.mp4: the MP4 file is (truncated|corrupt)"):
        probe_recording(bad, "mp4")


def test_avi_without_video_stream_headers_is_refused(tmp_path: Path) -> None:
    good = bytearray(_avi(tmp_path / "good.avi").read_bytes())
    at = good.index(b"vids")
    good[at:at + 4] = b"auds"
    bad = tmp_path / "bad.avi"
    bad.write_bytes(bytes(good))
    with pytest.raises(RecordingError, match=r"^bad\.avi: the AVI file is corrupt \(no video stream\)"):
        probe_recording(bad, "avi")


def test_probe_limits_come_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "long.avi"
    data = bytearray(_avi(path).read_bytes())
    strh = data.index(b"strh") + 8
    data[strh + 32:strh + 36] = (20_000).to_bytes(4, "little")  # dwLength: frames in the stream
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=r"long\.avi: declares 20000 frames, more than the limit"):
        probe_recording(path, "avi")


def test_probing_imports_no_video_decoder(tmp_path: Path) -> None:
    """The API image carries no ffmpeg: probing an upload must not import imageio_ffmpeg."""
    path = _mp4(tmp_path / "a.mp4")
    code = ("import sys; from pathlib import Path; from savgan.model.data.recordings import probe_recording; "
            f"print(probe_recording(Path({str(path)!r}), 'mp4')); assert 'imageio_ffmpeg' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(12, 24, 40)"


def test_fragmented_mp4_is_refused_with_the_remux_command(tmp_path: Path) -> None:
    path = tmp_path / "frag.mp4"
    writer = imageio_ffmpeg.write_frames(str(path), (32, 16), pix_fmt_in="gray", macro_block_size=1,
                                         output_params=["-movflags", "frag_keyframe+empty_moov"])
    writer.send(None)
    for i in range(5):
        writer.send(np.full((16, 32), 40 * i, np.uint8))
    writer.close()
    with pytest.raises(RecordingError, match=r"^frag\.mp4: fragmented MP4 .* not supported; remux it .*-movflags \+faststart"):
        probe_recording(path, "mp4")


@pytest.mark.parametrize("kind", ["mp4", "avi"])
def test_damaged_headers_give_a_recording_error_never_a_crash(tmp_path: Path, kind: str) -> None:
    """Overwrite each header region with 0xFF in turn: every outcome is a size or a RecordingError."""
    good = (_mp4 if kind == "mp4" else _avi)(tmp_path / f"good.{kind}").read_bytes()
    header = good.index(b"moov") if kind == "mp4" else 12
    damaged = tmp_path / f"damaged.{kind}"
    refused = 0
    for at in range(header, min(len(good), header + 1200), 6):
        damaged.write_bytes(good[:at] + b"\xff" * 4 + good[at + 4:])
        try:
            frames, height, width = probe_recording(damaged, kind)  # type: ignore[arg-type]
            assert min(frames, height, width) >= 0
        except RecordingError as err:
            assert str(err).startswith(f"damaged.{kind}: ")
            refused += 1
    assert refused > 10
