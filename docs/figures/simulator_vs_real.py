"""Side-by-side of the tumour-on-chip simulator and a real phase-contrast sequence.

Writes docs/simulator_vs_real.png. The real sequence (T98G glioblastoma cells, 10x,
Usiigaci example data) is a reference for the phase-contrast look only: it shows other
cells at another magnification and frame rate. Both crops cover the same field of view
(~166 µm) and are contrast-stretched the same way (0.5-99.5 percentiles of the crop).

Run from anywhere: `python docs/figures/simulator_vs_real.py`; needs the shared data
folder (or SAVGAN_DATA_DIR) for the real sequence.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

from savgan.model.data.paths import require  # noqa: E402
from savgan.model.data.simulator import SimulatorParams, simulate  # noqa: E402

REAL_FILE = "microscopy/usiigaci_t98g_phase/t98g_phase_10x_bin2.tif"
REAL_PIXEL_UM = 1.7416  # README of the shared data: 0.8708 µm x 2x2 binning
REAL_INTERVAL_S = 600.0
REAL_CROP = (slice(140, 236), slice(190, 286))  # 96 px = 167 µm, round and spread cells
SIM_SIZE = 128  # 128 px x 1.3 µm = 166 µm
SIM_SEED = 7
SIM_FRAMES = (0, 10, 20, 31)
REAL_FRAMES = (0, 1, 2, 3)
OUTPUT = Path(__file__).resolve().parents[1] / "simulator_vs_real.png"


def stretch(frames: np.ndarray) -> np.ndarray:
    low, high = np.percentile(frames, [0.5, 99.5])
    return np.clip((frames.astype(np.float64) - low) / (high - low), 0.0, 1.0)


def main() -> None:
    params = SimulatorParams()
    sim = simulate(max(SIM_FRAMES) + 1, SIM_SIZE, SIM_SIZE, seed=SIM_SEED, params=params)
    real = tifffile.imread(require(REAL_FILE))[(slice(None), *REAL_CROP)]
    rows = [
        (
            stretch(sim.video[list(SIM_FRAMES)]),
            [f"t = {t * params.frame_interval_s:g} s" for t in SIM_FRAMES],
            f"simulator (A549 + T cells, 5x): {params.pixel_size_um} µm/px, "
            f"frame every {params.frame_interval_s:g} s",
        ),
        (
            stretch(real[list(REAL_FRAMES)]),
            [f"t = {t * REAL_INTERVAL_S / 60:g} min" for t in REAL_FRAMES],
            f"real phase contrast (T98G, 10x, bin 2): {REAL_PIXEL_UM} µm/px, "
            f"frame every {REAL_INTERVAL_S / 60:g} min",
        ),
    ]
    figure, axes = plt.subplots(2, len(SIM_FRAMES), figsize=(3 * len(SIM_FRAMES), 6.6))
    for row, (frames, times, title) in zip(axes, rows):
        for ax, frame, time in zip(row, frames, times):
            ax.imshow(frame, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(time, fontsize=9)
        row[0].set_title(title, loc="left", fontsize=10)
    figure.suptitle("Same field of view (~166 µm); each row stretched to its 0.5-99.5 percentiles", fontsize=10)
    figure.tight_layout()
    figure.savefig(OUTPUT, dpi=110)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
