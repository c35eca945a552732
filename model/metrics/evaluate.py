"""Score a model with the paper's metrics, beside what real data scores (the floor).

`evaluate` generates `count` videos of `frames` frames from a model and computes each
requested metric on them; it computes the same metrics on real videos of the data the
model imitates, so every figure comes with the value a perfect generator would reach:

- AACD, Flips/seq, cosTS: on real clips of held-out data (Moving MNIST from the MNIST
  test digits; simulator videos from a seed the training data does not use).
- FD-own, FVD (distances to that held-out reference set): the model's generated set
  against the reference, and, as the floor, real clips of the training distribution
  (Moving MNIST from the train digits; simulator videos of the training seed) against
  the same reference.

Flips/seq and cosTS need digits: they are computed for Moving-MNIST models only. The
CLI (`savgan evaluate`) and the worker's `evaluate` task both call this function.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from savgan.model import registry
from savgan.model.generate import check_frames, generate_videos
from savgan.model.metrics import aacd as aacd_metric
from savgan.model.metrics import cosine, fd_own, flips
from savgan.model.metrics.identity import identity_persistence
from savgan.model.metrics.classifier import classifier_card, load_classifier
from savgan.model.metrics.features import frame_outputs
from savgan.model.metrics.i3d import MIN_FRAMES

METRICS = ("aacd", "flips", "cosTS", "identity", "fd-own", "fvd")
DEFAULT_METRICS = ("aacd", "flips", "cosTS", "identity", "fd-own")  # fvd needs the optional I3D weights
DIGIT_METRICS = ("flips", "cosTS", "identity")
CLASSIFIER_METRICS = ("flips", "cosTS", "identity", "fd-own")
REAL_SOURCES = ("mmnist", "toc-sim")
CLASSIFIER_FRAME_SIZE = 32
REFERENCE_SEED_OFFSET = 1_000_003  # simulator reference videos never share the training seed
# Table 1 of the paper (SAVGAN columns); AACD there is on an unstated intensity scale.
PAPER_SAVGAN = {
    "mmnist": {"fvd": 81.29, "aacd": 0.469, "flips": 1.76, "cosTS": 0.76},
    "toc-sim": {"fvd": 389.3, "aacd": 0.477},
}
DEFINITIONS = {
    "aacd": f"mean |mean intensity(t+1) - mean intensity(t)| per video, intensities on {aacd_metric.INTENSITY_SCALE}; lower is better",
    "flips": "changes of the classifier's predicted digit along each sequence, averaged; lower is better",
    "cosTS": "mean cosine similarity of consecutive frames' 512-d classifier features; higher is better",
    "identity": (
        "share of clips whose most frequent digit over the first quarter of the frames is the one over the last "
        "quarter (model/metrics/identity.py); real data ~1.0, chance ~0.14; higher is better; see standard_errors"
    ),
    "fd-own": (
        f"Frechet distance on our classifier's features ({fd_own.FEATURES}), to the held-out reference set; "
        "NOT FVD; on simulator videos the Moving-MNIST network is only a generic frame-feature extractor"
    ),
    "fvd": "Frechet distance of I3D Kinetics-400 logits (400-d, reference recipe), to the held-out reference set",
}

ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RealSets:
    """Held-out reference clips and clips of the training distribution, both (K, F, H, W)."""

    reference: np.ndarray
    reference_description: str
    training_like: np.ndarray | None
    training_like_description: str


def parse_metrics(names: list[str]) -> list[str]:
    """Canonical metric names (case-insensitive), in the order given, without repeats."""
    by_lower = {m.lower(): m for m in METRICS}
    unknown = [n for n in names if n.lower() not in by_lower]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {unknown or names}: choose among {', '.join(METRICS)}")
    return list(dict.fromkeys(by_lower[n.lower()] for n in names))


def real_source_of(manifest: dict[str, Any], name: str) -> str:
    """Which real data the model or run ``name`` imitates, from its manifest's data description."""
    data = str(manifest.get("data", ""))
    if data.startswith("Moving MNIST"):
        return "mmnist"
    if data.startswith("tumour-on-chip simulator"):
        return "toc-sim"
    raise ValueError(
        f"cannot tell which real data model {name!r} imitates (data: {data!r}); "
        f"say it with real={'|'.join(REAL_SOURCES)} (CLI: --real)"
    )


def real_sets(source: str, count: int, frames: int, size: int, seed: int, training_like: bool) -> RealSets:
    """The reference set and, when `training_like`, the floor set for distance metrics."""
    if source == "mmnist":
        from savgan.model.data.mmnist import MovingMNIST

        def clips(split: str) -> np.ndarray:
            dataset = MovingMNIST(split, length=frames, frame_size=size, num_sequences=count, seed=seed)
            return dataset.videos(range(count))

        return RealSets(
            clips("heldout"), f"Moving MNIST, held-out (MNIST test) digits, {count} clips, seed {seed}",
            clips("train") if training_like else None, f"Moving MNIST, train digits, {count} clips, seed {seed}",
        )
    if source == "toc-sim":
        from savgan.model.data.simulator import SimulatorDataset

        def sim(sim_seed: int) -> np.ndarray:
            dataset = SimulatorDataset(num_videos=count, frames=frames, height=size, width=size, seed=sim_seed)
            return np.stack([dataset[i][0].numpy() for i in range(count)])

        reference_seed = seed + REFERENCE_SEED_OFFSET
        return RealSets(
            sim(reference_seed), f"simulator videos, {count} clips, seed {reference_seed}",
            sim(seed) if training_like else None, f"simulator videos, {count} clips, seed {seed}",
        )
    raise ValueError(f"unknown real data {source!r}: choose among {', '.join(REAL_SOURCES)}")


def evaluate(
    model_spec: str,
    metrics: list[str],
    count: int = 256,
    seed: int = 0,
    frames: int = 10,
    real: str | None = None,
    device: str = "cpu",
    i3d: str | Path | None = None,
    i3d_torchscript: str | Path | None = None,
    show_progress: bool = True,
    on_progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Metrics of `count` generated videos and of real data; JSON-able."""
    started = time.monotonic()
    chosen = parse_metrics(metrics)
    if count < 2:
        raise ValueError(f"count must be at least 2 videos (distances need a covariance), got {count}")
    check_frames(frames)
    if frames < 2:
        raise ValueError("metrics compare consecutive frames: frames must be at least 2")
    if "fvd" in chosen and frames < MIN_FRAMES:
        raise ValueError(f"FVD's I3D needs at least {MIN_FRAMES} frames per video, got {frames}")
    record = registry.resolve(model_spec)
    source = real or real_source_of(record.manifest, record.name)
    embedder = _load_embedder(i3d, i3d_torchscript, device) if "fvd" in chosen else None
    skipped = {m: "needs digits: Moving-MNIST models only" for m in chosen if m in DIGIT_METRICS and source != "mmnist"}
    computed = [m for m in chosen if m not in skipped]

    def report(stage: str, done: int, total: int) -> None:
        if on_progress:
            on_progress(stage, done, total)

    generator = registry.load_generator(record, device)
    size = record.config.size
    with tqdm(total=count, desc="generate", unit="video", disable=not show_progress) as bar:
        def on_video(done: int, total: int) -> None:
            bar.update(1)
            report("generate", done, total)

        fake = generate_videos(generator, seed, frames, count, on_video)
    distances = [m for m in computed if m in ("fd-own", "fvd")]
    report("real data", 0, 1)
    sets = real_sets(source, count, frames, size, seed, training_like=bool(distances))
    report("real data", 1, 1)

    result_model: dict[str, float | None] = {}
    result_real: dict[str, float | None] = {}
    flip_rates: dict[str, list[float]] | None = None
    standard_errors: dict[str, dict[str, float]] = {}
    classifier_info: dict[str, Any] | None = None
    if any(m in computed for m in CLASSIFIER_METRICS):
        classifier = load_classifier(CLASSIFIER_FRAME_SIZE).to(device)
        classifier_info = classifier_card(CLASSIFIER_FRAME_SIZE)
        named = [("model", fake), ("reference", sets.reference)]
        if sets.training_like is not None:
            named.append(("training_like", sets.training_like))
        out = {name: frame_outputs(classifier, videos)
               for name, videos in tqdm(named, desc="classifier features", unit="set", disable=not show_progress)}
        if "flips" in computed:
            result_model["flips"] = flips.flips_per_sequence(out["model"].labels)
            result_real["flips"] = flips.flips_per_sequence(out["reference"].labels)
            flip_rates = {name: flips.flip_rate_by_transition(out[key].labels)
                          for name, key in (("model", "model"), ("real", "reference"))}
        if "cosTS" in computed:
            result_model["cosTS"] = cosine.cosine_ts(out["model"].features)
            result_real["cosTS"] = cosine.cosine_ts(out["reference"].features)
        if "identity" in computed:
            persistence = {name: identity_persistence(out[key].labels) for name, key in (("model", "model"), ("real", "reference"))}
            result_model["identity"], result_real["identity"] = persistence["model"].share, persistence["real"].share
            standard_errors["identity"] = {name: p.standard_error for name, p in persistence.items()}
        if "fd-own" in computed:
            result_model["fd-own"] = fd_own.fd_own(out["reference"].features, out["model"].features)
            result_real["fd-own"] = fd_own.fd_own(out["reference"].features, out["training_like"].features)
    if "aacd" in computed:
        result_model["aacd"] = aacd_metric.aacd(fake)
        result_real["aacd"] = aacd_metric.aacd(sets.reference)
    if "fvd" in computed:
        result_model["fvd"], result_real["fvd"] = _fvd(embedder, fake, sets, show_progress, report)
    for metric in skipped:
        result_model[metric] = result_real[metric] = None

    return {
        "model": record.summary(),
        "count": count,
        "seed": seed,
        "frames": frames,
        "size": size,
        "metrics": {
            m: {"model": result_model[m], "real": result_real[m], "paper_savgan": PAPER_SAVGAN.get(source, {}).get(m)}
            for m in chosen
        },
        "skipped": skipped,
        "flip_rate_by_transition": flip_rates,
        "standard_errors": standard_errors,
        "real_data": {
            "source": source,
            "reference": sets.reference_description,
            "floor_of_distances": sets.training_like_description if distances else None,
            "floor_of_other_metrics": sets.reference_description,
        },
        "definitions": {m: DEFINITIONS[m] for m in chosen},
        "aacd_intensity_scale": aacd_metric.INTENSITY_SCALE,
        "classifier": classifier_info,
        "seconds": round(time.monotonic() - started, 1),
    }


def _load_embedder(i3d: str | Path | None, torchscript: str | Path | None, device: str) -> Callable:
    """I3D loaded before any video is generated, so a missing checkpoint fails fast."""
    from savgan.model.metrics.fvd import load_embedder

    return load_embedder(i3d, torchscript, device)


def _fvd(embedder: Callable, fake: np.ndarray, sets: RealSets, show_progress: bool,
         report: ProgressCallback) -> tuple[float, float]:
    """FVD of the model and of the training-like real set, both against the reference set."""
    from savgan.model.metrics.fvd import fvd, i3d_embeddings

    named = [("model", fake), ("reference", sets.reference), ("training_like", sets.training_like)]
    total = sum(len(v) for _, v in named)
    embeddings = {}
    with tqdm(total=total, desc="I3D", unit="video", disable=not show_progress) as bar:
        for name, videos in named:
            def step(n: int) -> None:
                bar.update(n)
                report("I3D", bar.n, total)

            embeddings[name] = i3d_embeddings(embedder, videos, on_batch=step)
    return fvd(embeddings["reference"], embeddings["model"]), fvd(embeddings["reference"], embeddings["training_like"])


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: metric, model, real-data floor, paper's SAVGAN figure."""
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    rows = [("metric", "model", "real data", "paper SAVGAN")]
    errors = result.get("standard_errors", {})

    def with_error(metric: str, side: str, value: float | None) -> str:
        error = errors.get(metric, {}).get(side)
        return cell(value) if error is None or value is None else f"{value:.3f} ± {error:.3f}"

    rows += [
        (m, with_error(m, "model", v["model"]), with_error(m, "real", v["real"]), cell(v["paper_savgan"]))
        for m, v in result["metrics"].items()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(text.ljust(w) for text, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)
