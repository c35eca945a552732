"""What each ``savgan`` subcommand does; each returns a JSON-able summary for the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing
from typing import Any

from tqdm import tqdm

from savgan.cli.graceful_stop import stop_after_step
from savgan.model import checkpoint as ckpt
from savgan.model import registry
from savgan.model.config import ModelConfig, TrainConfig, preset_for, train_config_for, with_recipe
from savgan.model.generate import generate_videos
from savgan.model.video_io.calibration import calibration, video_for_format
from savgan.model.video_io.formats import write_video


class AttentionBar:
    """A second, transient bar for the attention running inside one forward.

    The frames bar moves when a forward's videos are done; a 1024-frame video is one forward
    of minutes, nearly all of it one attention, which reports its blocks of queries here
    (model/generate.py, progress). Each attention gets a fresh bar, gone when it finishes.
    """

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, desc="attention", unit="query", unit_scale=True, leave=False, position=1)
        self.bar.update(done - self.bar.n)
        if done == total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _file_stem(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def generate(args: argparse.Namespace) -> dict[str, Any]:
    record = registry.resolve(args.model)
    frames = record.config.frames if args.frames is None else args.frames
    physical = record.manifest.get("physical", {})
    pixel_size, interval = calibration(physical, args.pixel_size, args.frame_interval)
    generator = registry.load_generator(record, args.device)
    with tqdm(total=args.count * frames, desc="generate", unit="frame") as bar, closing(AttentionBar()) as attention:
        videos = generate_videos(
            generator, args.seed, frames, args.count, on_video=lambda *_: bar.update(frames), on_attention=attention
        )
    args.out.mkdir(parents=True, exist_ok=True)
    files = []
    for index, video in enumerate(videos):
        stem = args.out / _file_stem(f"{record.name}_seed{args.seed}_{index:03d}")
        files += [
            str(write_video(stem, video_for_format(video, fmt, physical), fmt, pixel_size, interval))
            for fmt in args.format
        ]
    return {"model": record.summary(), "seed": args.seed, "frames": frames, "files": files}


# Options that shape the optimisation: a resumed run keeps its own (model/train.py RESUME_CHANGES
# lists what it may change).
FIXED_ON_RESUME = (
    "batch_size", "lr_g", "lr_d", "n_critic", "long_clip_prob", "penalty_step", "image_lambda", "identity_weight",
    "pair_lambda", "pair_critic",
)


def _check_unchanged(args: argparse.Namespace, stored: dict[str, Any]) -> None:
    """Refuse options that would change a resumed run's optimisation (the same values are fine)."""
    defaults = TrainConfig().to_dict()
    changed = [
        f"--{name.replace('_', '-')} {getattr(args, name)} (the run's: {stored.get(name, defaults[name])})"
        for name in FIXED_ON_RESUME
        if getattr(args, name) is not None and getattr(args, name) != stored.get(name, defaults[name])
    ]
    if changed:
        raise ValueError(
            f"{', '.join(changed)}: these cannot change when resuming, a resumed run replays its own "
            "settings; start a new run, or fine-tune this one with --base"
        )


def _train_config(args: argparse.Namespace, arch: str) -> TrainConfig:
    """The family's defaults (model/config.py FAMILY_TRAIN_DEFAULTS) under what the command line gives."""
    return train_config_for(
        arch,
        args.recipe,
        steps=args.steps,
        batch_size=args.batch_size,
        lr_g=args.lr_g,
        lr_d=args.lr_d,
        n_critic=args.n_critic,
        long_clip_prob=args.long_clip_prob,
        seed=args.seed,
        sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every,
        bf16=args.bf16,
        ema_decay=args.ema_decay,
        penalty_step=args.penalty_step,
        image_lambda=args.image_lambda,
        identity_weight=args.identity_weight,
        pair_lambda=args.pair_lambda,
        pair_critic=args.pair_critic,
    )


def train(args: argparse.Namespace) -> dict[str, Any]:
    from savgan.model.data.sources import load_training_data
    from savgan.model.train import Trainer, TrainHooks

    manifest_path = args.out / ckpt.MANIFEST
    if args.resume_from or args.resume:
        resumed = ckpt.packed_manifest(args.resume_from) if args.resume_from else ckpt.read_json(manifest_path)
        _check_unchanged(args, resumed["train_config"])
    base = None
    if args.resume_from:
        if manifest_path.exists():
            raise ValueError(f"{args.out} already holds a run: --resume-from needs a new --out folder")
        ckpt.unpack_run(args.resume_from, args.out)
        args.resume = True
    if args.resume:
        config = ModelConfig.from_dict(ckpt.read_json(manifest_path)["model_config"])
    elif manifest_path.exists():
        raise ValueError(f"{args.out} already holds a run: add --resume to continue it, or choose another --out")
    elif args.base:
        base = registry.resolve(args.base)
        config = with_recipe(base.config, args.recipe)
    else:
        config = with_recipe(preset_for(args.arch, args.preset), args.recipe)
    if args.arch is not None and args.arch != config.arch:
        raise ValueError(f"--arch {args.arch} does not match the {config.arch} model resumed or fine-tuned")
    train_config = None if args.resume else _train_config(args, config.arch)
    run_config = train_config or TrainConfig.from_dict(ckpt.read_json(manifest_path)["train_config"])
    wants_swaps = run_config.identity_weight > 0 or run_config.pair_lambda > 0
    data = load_training_data(args.data, config, args.clips, seed=args.seed, identity_swaps=wants_swaps)
    if args.resume:
        trainer = Trainer.resume(
            args.out,
            data.bank,
            args.device,
            steps=args.steps,
            sample_every=args.sample_every,
            checkpoint_every=args.checkpoint_every,
            ema_decay=args.ema_decay,
            swaps=data.swaps,
        )
    else:
        trainer = Trainer(
            config, train_config, data.bank, args.out, data.description, args.device, data.physical, data.swaps
        )
        if base is not None:
            trainer.load_weights(base.path, f"{base.name}:{base.version}")
    print(f"savgan train: {config.arch} {trainer.train_config}", file=sys.stderr)
    with stop_after_step() as should_stop:
        result = trainer.train(TrainHooks(should_stop=should_stop))
    summary: dict[str, Any] = {
        "run": str(args.out),
        "arch": config.arch,
        "step": result.step,
        "train_config": trainer.train_config.to_dict(),
        "losses": result.losses,
        "stopped_early": result.stopped_early,
    }
    if args.install_as:
        summary["installed"] = registry.install(args.out, args.install_as).summary()
    return summary


def export(args: argparse.Namespace) -> dict[str, Any]:
    """A model folder from a run: what ships bundled and what ``--base`` fine-tunes from, critics included."""
    copied = registry.copy_model_files(args.run, args.out)
    return {"model": str(args.out), "files": copied}


def simulate(args: argparse.Namespace) -> dict[str, Any]:
    from savgan.model.data.simulator import SimulatorParams, save_simulation, simulate as run_simulation

    params = SimulatorParams()
    args.out.mkdir(parents=True, exist_ok=True)
    outputs = []
    for index in tqdm(range(args.count), desc="simulate", unit="video"):
        sim = run_simulation(args.frames, args.size, args.size, seed=args.seed + index, params=params)
        stem = f"toc_seed{args.seed + index}"
        files = [
            str(write_video(args.out / stem, sim.video, fmt, params.pixel_size_um, params.frame_interval_s))
            for fmt in args.format
        ]
        truth = save_simulation(sim, args.out, stem)
        outputs.append(
            {"video": files, "masks": str(truth.masks), "tracks": str(truth.tracks), "params": str(truth.params)}
        )
    return {"videos": outputs}


def models(args: argparse.Namespace) -> list[dict[str, Any]]:
    found = [record.summary() for record in registry.list_models()]
    if not found:
        print(f"no models installed in {registry.models_root()} and none bundled; try --model init:cpu")
    return found


def pack(args: argparse.Namespace) -> dict[str, Any]:
    ckpt.pack_run(args.run, args.out)
    return {"packed": str(args.out), "bytes": args.out.stat().st_size}


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Metrics of a model and of real data: a table on stderr, the full JSON on stdout and in --out."""
    from savgan.model.metrics.evaluate import evaluate as run_evaluation, format_table

    result = run_evaluation(
        args.model, args.metrics, count=args.count, seed=args.seed, frames=args.frames, real=args.real,
        device=args.device, i3d=args.i3d, i3d_torchscript=args.i3d_torchscript,
    )
    print(format_table(result), file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        result = {**result, "written": str(args.out)}
    return result
