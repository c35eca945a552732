"""Moving MNIST and the MNIST loader: shapes, determinism, motion, splits, data errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from savgan.model.data import mnist
from savgan.model.data.mmnist import (
    MAX_SPEED_PX,
    MIN_SPEED_PX,
    TRAVEL_PX,
    MovingMNIST,
    render_frames,
)
from savgan.model.data.paths import DATA_DIR_ENV, DataNotFoundError, require


@pytest.fixture(scope="module", autouse=True)
def _needs_mnist() -> None:
    try:
        require(mnist.TRAIN_CSV)
        require(mnist.HELDOUT_IMAGES)
    except DataNotFoundError as error:
        pytest.skip(f"real MNIST data not available: {error}")


def _ink_centre(image: np.ndarray) -> tuple[float, float]:
    """Centre of mass (row, column) of an image's ink, in pixel-centre coordinates."""
    weights = image.astype(np.float64)
    rows, cols = np.indices(weights.shape)
    total = weights.sum()
    return float((rows * weights).sum() / total), float((cols * weights).sum() / total)


def _reference_bounce(start: int, velocity: int, length: int) -> np.ndarray:
    """Step-by-step reflection, written independently of the closed form under test."""
    x, v, out = start, velocity, []
    for _ in range(length):
        out.append(x)
        x += v
        if x > TRAVEL_PX:
            x, v = 2 * TRAVEL_PX - x, -v
        elif x < 0:
            x, v = -x, -v
    return np.array(out)


@pytest.mark.parametrize("split", ["train", "heldout"])
@pytest.mark.parametrize("frame_size", [64, 32])
def test_item_shape_dtype_and_range(split: str, frame_size: int) -> None:
    dataset = MovingMNIST(split, length=12, frame_size=frame_size, num_sequences=5, seed=3)
    video = dataset[4]
    assert len(dataset) == 5
    assert video.shape == (1, 12, frame_size, frame_size)
    assert video.dtype == torch.float32
    assert video.min().item() == pytest.approx(-1.0)
    assert video.max().item() == pytest.approx(1.0)


def test_same_seed_same_video_and_different_seed_or_index_differs() -> None:
    first = MovingMNIST(length=10, num_sequences=4, seed=11)
    again = MovingMNIST(length=10, num_sequences=4, seed=11)
    other = MovingMNIST(length=10, num_sequences=4, seed=12)
    assert torch.equal(first[2], again[2])
    assert not torch.equal(first[2], other[2])
    assert not torch.equal(first[2], first[3])


def test_digit_moves_horizontally_at_constant_speed_and_bounces() -> None:
    dataset = MovingMNIST("train", length=40, num_sequences=60, seed=5)
    digits = mnist.load_digits("train")
    speeds, directions, bounced = set(), set(), 0
    for index in range(len(dataset)):
        spec = dataset.spec(index)
        speed = abs(spec.velocity)
        speeds.add(speed)
        directions.add(np.sign(spec.velocity))
        assert MIN_SPEED_PX <= speed <= MAX_SPEED_PX
        assert np.array_equal(spec.left, _reference_bounce(int(spec.left[0]), spec.velocity, 40))
        bounced += int(np.any(np.diff(np.sign(np.diff(spec.left))) != 0))

        ink = dataset[index][0].numpy() + 1.0  # background is exactly 0
        digit_row, digit_col = _ink_centre(digits.images[spec.digit_index])
        centres = np.array([_ink_centre(frame) for frame in ink])
        np.testing.assert_allclose(centres[:, 1], spec.left + digit_col, atol=1e-3)
        np.testing.assert_allclose(centres[:, 0], spec.top + digit_row, atol=1e-3)
        # nothing is clipped: the amount of ink is the same in every frame
        mass = ink.sum(axis=(1, 2))
        np.testing.assert_allclose(mass, mass[0], rtol=1e-5)
        assert spec.left.min() >= 0 and spec.left.max() <= TRAVEL_PX
    assert speeds == set(range(MIN_SPEED_PX, MAX_SPEED_PX + 1))
    assert directions == {-1, 1}
    assert bounced > 10


def test_half_resolution_keeps_the_trajectory() -> None:
    full = MovingMNIST(length=16, frame_size=64, num_sequences=3, seed=8)
    half = MovingMNIST(length=16, frame_size=32, num_sequences=3, seed=8)
    for index in range(3):
        big = full[index][0].numpy() + 1.0
        small = half[index][0].numpy() + 1.0
        for frame_big, frame_small in zip(big, small):
            row, col = _ink_centre(frame_big)
            small_row, small_col = _ink_centre(frame_small)
            # a 2x block average maps canvas column c to (c - 0.5) / 2, up to 0.25 px
            # depending on how the ink splits between even and odd columns
            assert small_col == pytest.approx((col - 0.5) / 2, abs=0.25)
            assert small_row == pytest.approx((row - 0.5) / 2, abs=0.25)
        spec = half.spec(index)
        assert spec.box_centre_x() == pytest.approx((full.spec(index).left + 14) / 2 - 0.5)


def test_heldout_uses_other_digits_than_train() -> None:
    train = mnist.load_digits("train")
    heldout = mnist.load_digits("heldout")
    assert train.images.shape == (5000, 28, 28) and heldout.images.shape == (10000, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    train_keys = {image.tobytes() for image in train.images}
    assert not any(image.tobytes() in train_keys for image in heldout.images)

    dataset = MovingMNIST("heldout", length=4, num_sequences=3, seed=1)
    for index in range(3):
        spec = dataset.spec(index)
        video = dataset[index][0].numpy()
        crop = video[0, spec.top:spec.top + 28, spec.left[0]:spec.left[0] + 28]
        expected = heldout.images[spec.digit_index].astype(np.float32)
        np.testing.assert_allclose((crop + 1) / 2 * expected.max(), expected, atol=1e-3)
        assert spec.label == heldout.labels[spec.digit_index]


def test_render_frames_are_frames_of_the_videos() -> None:
    frames = render_frames("heldout", 20, frame_size=32, seed=4, length=10)
    dataset = MovingMNIST("heldout", length=10, frame_size=32, num_sequences=20, seed=4)
    assert frames.frames.shape == (20, 32, 32) and frames.labels.shape == (20,)
    for index in range(20):
        video = dataset[index][0]
        assert any(torch.equal(frames.frames[index], frame) for frame in video)
        assert frames.labels[index].item() == dataset.spec(index).label
    assert len(set(frames.labels.tolist())) > 3


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="frame_size"):
        MovingMNIST(frame_size=65)
    with pytest.raises(ValueError, match="split"):
        MovingMNIST(split="test")  # type: ignore[arg-type]
    with pytest.raises(IndexError):
        MovingMNIST(num_sequences=2)[2]


def test_missing_data_error_names_file_and_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataNotFoundError) as caught:
        mnist.load_digits("heldout")
    message = str(caught.value)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert str(tmp_path) in message
    assert DATA_DIR_ENV in message
    assert isinstance(caught.value, FileNotFoundError)


def test_corrupt_idx_file_is_reported(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    header = np.array([2049, 10000, 28, 28], dtype=">u4").tobytes()  # labels magic on images
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(100)))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b""))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(mnist.CorruptDataError, match="magic number is 2049, expected 2051"):
        mnist.load_digits("heldout")
