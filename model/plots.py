"""Pictures of a training run: loss curves and sample montages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from savgan.model.video_io.preview import montage_png

CURVES = (
    ("wasserstein_video", "W estimate, video critic"),
    ("wasserstein_image", "W estimate, image critic"),
    ("loss_generator", "generator loss"),
    ("gp_video", "gradient penalty, video"),
)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window or window < 2:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_losses(log_path: Path, out_path: Path) -> None:
    """One panel per quantity, raw in light colour and a moving average on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    if not records:
        return
    steps = np.array([r["step"] for r in records])
    curves = [(key, title) for key, title in CURVES if all(key in r for r in records)]  # a family's own losses
    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3), constrained_layout=True, squeeze=False)
    window = max(1, len(records) // 50)
    for ax, (key, title) in zip(axes[0], curves):
        values = np.array([r[key] for r in records])
        ax.plot(steps, values, color="0.8", linewidth=0.8)
        smooth = _smooth(values, window)
        ax.plot(steps[len(steps) - len(smooth) :], smooth, color="C0")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("generator step")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)


def save_sample_montage(path: Path, videos: np.ndarray, columns: int = 8) -> None:
    """Rows are videos, columns evenly spaced frames: motion reads left to right.

    Tiles get montage_png's legible enlargement (at least 128 px): at 2x a 32-pixel digit
    was too small to judge a run by.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    montage_png(path, videos, columns=columns)
