"""What the video critics of training runs have learned: fakeness of crafted and generated clips.

    python bench/critic_probe.py runs/mmnist-paper runs/mmnist-coherent

Each source is a run folder or a packed checkpoint (`savgan pack`). Prints, per source, the
fakeness of each clip kind (0 = real, 1 = content switching every frame; see
model/critic_probe.py) and the gradient balance of the generator's loss, and writes
bench/results/critic_probe.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from savgan.model import checkpoint as ckpt
from savgan.model.config import ModelConfig
from savgan.model.critic_probe import identity_swapped_clips, probe
from savgan.model.metrics.evaluate import REAL_SOURCES, real_source_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path, help="run folders or packed checkpoints")
    parser.add_argument("--count", type=int, default=256, help="clips per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", choices=REAL_SOURCES, default=None, help="default: from the first run's manifest")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "critic_probe.json")
    args = parser.parse_args()
    manifest = ckpt.run_manifest(args.sources[0])
    config = ModelConfig.from_dict(manifest["model_config"])
    source = args.real or real_source_of(manifest, str(args.sources[0]))
    clips, swapped = identity_swapped_clips(source, 2 * args.count, config.frames, config.size, args.seed)
    real, others, swapped = clips[: args.count], clips[args.count :], swapped[: args.count]
    reports = {str(s): probe(s, real, others, args.seed, swapped) for s in args.sources}
    names = list(reports)
    print(f"fakeness of each clip kind in D_V's eyes (0 = real, 1 = content switching every frame), {source}, {args.count} clips")
    print(f"{'kind':26}" + "".join(f"{Path(n).stem[:22]:>24}" for n in names))
    kinds = [s.kind for s in reports[names[0]].scores]
    for row, kind in enumerate(kinds):
        print(f"{kind:26}" + "".join(f"{reports[n].scores[row].fakeness:24.2f}" for n in names))
    print("drop below real in units of the real clips' score spread (readable when fakeness is NaN: "
          "a D_V that scores content switching at or above real gives fakeness no unit)")
    for row, kind in enumerate(kinds):
        print(f"{kind:26}" + "".join(f"{reports[n].scores[row].drop:24.2f}" for n in names))
    with_pairs = [n for n in names if reports[n].pair_scores]
    if with_pairs:
        print("content critic D_P on (first, last frame) pairs: drop below real pairs in real-score std")
        print(f"{'kind':26}" + "".join(f"{Path(n).stem[:22]:>24}" for n in with_pairs))
        for row, kind in enumerate(s.kind for s in reports[with_pairs[0]].pair_scores):
            print(f"{kind:26}" + "".join(f"{reports[n].pair_scores[row].drop:24.2f}" for n in with_pairs))
    for label, key in (("step", "step"), ("lambda_i of the run", "image_lambda"), ("|grad D_V| per clip", "video_grad_norm"),
                       ("|grad D_I| per frame", "image_grad_norm"), ("balanced lambda_i", "balanced_image_lambda")):
        print(f"{label:26}" + "".join(f"{getattr(reports[n], key):24.3g}" for n in names))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"real": source, "count": args.count, "seed": args.seed,
                                    "runs": {n: r.to_dict() for n, r in reports.items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
