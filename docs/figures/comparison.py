"""Montages for docs/RESULTS.md: real Moving MNIST clips beside each compared model's samples.

Every montage has 8 rows (videos) of 10 frames (the paper's Moving MNIST sample length), 2x
enlarged, all in the models' [-1, 1] scale. The real clips are held-out digits (the set the metrics compare against); every
model gets the same seed, so rows are the first 8 videos `savgan generate --seed 0` gives.

    python docs/figures/comparison.py --model savgan=model/bundled/mmnist \\
        --model 3dgan=runs/mmnist-cpu-3dgan [--model tgan2=runs/mmnist-cpu-tgan2]

Writes docs/results_mmnist_real.png and docs/results_mmnist_<label>.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from savgan.model import registry
from savgan.model.generate import generate_videos
from savgan.model.metrics.evaluate import real_sets
from savgan.model.video_io.preview import montage_png

DOCS = Path(__file__).resolve().parents[1]
VIDEOS = 8
FRAMES = 10
SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=MODEL",
                        help="a label and a model folder or name; repeat for each model")
    parser.add_argument("--out-dir", type=Path, default=DOCS)
    args = parser.parse_args()
    models = [spec.split("=", 1) for spec in args.model]
    if any(len(pair) != 2 for pair in models):
        parser.error("--model takes LABEL=MODEL, e.g. savgan=model/bundled/mmnist")
    records = {label: registry.resolve(spec) for label, spec in models}
    size = next(iter(records.values())).config.size
    real = real_sets("mmnist", VIDEOS, FRAMES, size, SEED, training_like=False).reference
    montage_png(args.out_dir / "results_mmnist_real.png", real, columns=FRAMES, scale=2)
    for label, record in records.items():
        videos = generate_videos(registry.load_generator(record), SEED, FRAMES, count=VIDEOS)
        path = args.out_dir / f"results_mmnist_{label}.png"
        montage_png(path, videos, columns=FRAMES, scale=2)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
