"""Checks of a command line that run before torch or any model loads.

Each failure is a ValueError whose message says what was wrong and how to fix it; the
``savgan`` entry point prints it as one line and exits with status 2. Loading torch and a
model takes seconds, so a typo in ``--frames`` or ``--out`` must not wait for them (nor,
for ``--out``, for the whole generation to finish).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from savgan.model.limits import check_frames

MIN_SIMULATED_SIZE = 8  # model/data/simulator.py MIN_SIZE, spelt out: the simulator imports scipy


def check_output_folder(folder: Path, option: str = "--out") -> None:
    """``folder`` exists or can be made, and a file can be written in it.

    A real write, not a mode check: root ignores mode bits, and /proc or a read-only mount
    refuse writes whatever the bits say.
    """
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"{option} {folder}: {existing} is a file, not a folder; choose another {option}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".savgan-write-check-"):
            pass
    except OSError as err:
        raise ValueError(f"{option} {folder} is not writable ({err.strerror or err}); choose a folder you can write to") from None


def check_output_file(path: Path, option: str = "--out") -> None:
    """``path`` can be written as a file: not an existing folder, in a folder that takes writes."""
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name, e.g. {path / 'results.json'}")
    check_output_folder(path.parent, f"{option}'s folder")


def check_at_least(option: str, value: float | None, low: float, unit: str = "") -> None:
    """``value`` (None: the option was not given) is ``low`` or more."""
    if value is not None and value < low:
        raise ValueError(f"{option} must be at least {low}{unit}, got {value}")


def check_within(option: str, value: float | None, low: float, high: float, high_open: bool = False) -> None:
    """``value`` (None: not given) lies in [low, high], or [low, high) with ``high_open``."""
    if value is not None and not (low <= value < high if high_open else low <= value <= high):
        interval = f"[{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{option} must lie in {interval}, got {value}")


def check_frame_count(value: int | None, low: int = 1, why: str = "") -> None:
    """``--frames`` (None: not given) within what generation makes (model/limits.py MAX_FRAMES)."""
    if value is not None:
        check_frames(value, low, "--frames", why)


def check_positive(option: str, value: float | None) -> None:
    """``value`` (None: not given) is a number above 0."""
    if value is not None and not value > 0:
        raise ValueError(f"{option} must be a positive number, got {value}")


def check_formats(formats: list[str]) -> None:
    """At least one format, all known (model/video_io/formats.py, torch-free)."""
    from savgan.model.video_io.formats import get_format

    if not formats:
        raise ValueError("--format needs at least one format, e.g. --format ome-tiff")
    for fmt in formats:
        get_format(fmt)


def check_generate(args: argparse.Namespace) -> None:
    """Everything of ``savgan generate`` but the model name, which the registry resolves next."""
    check_frame_count(args.frames)
    check_at_least("--count", args.count, 1, " video")
    check_formats(args.format)
    check_positive("--pixel-size", args.pixel_size)
    check_positive("--frame-interval", args.frame_interval)
    check_output_folder(args.out)


def check_simulate(args: argparse.Namespace) -> None:
    """The simulator's own limits (model/data/simulator.py _check_request), before it imports."""
    check_at_least("--frames", args.frames, 1)
    check_at_least("--count", args.count, 1, " video")
    check_at_least("--size", args.size, MIN_SIMULATED_SIZE, " px")
    check_at_least("--seed", args.seed, 0)
    check_formats(args.format)
    check_output_folder(args.out)


def check_evaluate(args: argparse.Namespace) -> None:
    """The limits model/metrics/evaluate.py checks, before it imports torch."""
    check_frame_count(args.frames, 2, " (metrics compare consecutive frames)")
    if args.count < 2:
        raise ValueError(f"--count must be at least 2 videos (distances need a covariance), got {args.count}")
    if args.out is not None:
        check_output_file(args.out)


def check_train(args: argparse.Namespace) -> None:
    """model/config.py TrainConfig's limits, by option name, and the ones it leaves to a crash.

    ``--sample-every 0`` or ``--checkpoint-every 0`` would otherwise stop a run with a
    division by zero at its first step, after the data has been built.
    """
    check_at_least("--steps", args.steps, 0)
    for option in ("batch_size", "n_critic", "clips", "sample_every", "checkpoint_every"):
        check_at_least(f"--{option.replace('_', '-')}", getattr(args, option), 1)
    check_positive("--lr-g", args.lr_g)
    check_positive("--lr-d", args.lr_d)
    check_within("--long-clip-prob", args.long_clip_prob, 0, 1)
    check_within("--identity-weight", args.identity_weight, 0, 1)
    check_within("--ema-decay", args.ema_decay, 0, 1, high_open=True)
    check_at_least("--image-lambda", args.image_lambda, 0)
    check_at_least("--pair-lambda", args.pair_lambda, 0)
    check_output_folder(args.out)


CHECKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "generate": check_generate, "simulate": check_simulate, "evaluate": check_evaluate, "train": check_train,
}


def check_arguments(args: argparse.Namespace) -> None:
    """Run the checks of ``args.command``, if it has any (the others check as they go)."""
    check = CHECKS.get(args.command)
    if check is not None:
        check(args)
