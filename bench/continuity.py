"""How continuous long generated videos are at trained-length seams, for one model.

    python bench/continuity.py --model mmnist --frames 256 --count 8

Prints the seam / inside ratio of the mean absolute frame difference at boundaries every
trained clip length and every latent step, and writes bench/results/continuity.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from savgan.model import registry
from savgan.model.continuity import seam_continuity
from savgan.model.generate import generate_videos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mmnist")
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "continuity.json")
    args = parser.parse_args()
    record = registry.resolve(args.model)
    videos = generate_videos(registry.load_generator(record), args.seed, args.frames, args.count)
    config = record.config
    rows = []
    for name, stretch in (("trained clip", config.frames), ("latent step", config.frames_per_latent)):
        report = seam_continuity(videos, stretch)
        rows.append({"boundary": name, "every_frames": stretch, "seams": report.seams, "seam_mad": report.seam_mad,
                     "inside_mad": report.inside_mad, "ratio": report.ratio})
    print(f"model {record.name}:{record.version} step {record.manifest.get('step')}, {args.count} x {args.frames} frames")
    print(f"{'boundary':13} {'every':>5} {'seams':>5} {'seam MAD':>9} {'inside MAD':>10} {'ratio':>6}")
    for r in rows:
        print(f"{r['boundary']:13} {r['every_frames']:5d} {r['seams']:5d} {r['seam_mad']:9.4f} {r['inside_mad']:10.4f} {r['ratio']:6.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": record.summary(), "frames": args.frames, "count": args.count, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
