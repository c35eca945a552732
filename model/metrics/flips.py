"""Flips/seq: how often the digit a classifier sees changes along a sequence.

The paper runs a pretrained Moving-MNIST frame classifier on each frame of a generated
10-frame sequence and counts the changes of its predicted digit; a video whose digit
stays the same scores 0 (best). Real Moving-MNIST clips score close to 0, minus the
classifier's own errors; that floor is reported beside the model's figure.
"""

from __future__ import annotations

import numpy as np


def label_changes(labels: np.ndarray) -> np.ndarray:
    """(K, F-1) booleans: whether labels[k, t+1] != labels[k, t], for predicted labels (K, F)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] < 2:
        raise ValueError(f"flips need per-frame labels shaped (K, F>=2), got {labels.shape}")
    return labels[:, 1:] != labels[:, :-1]


def flips_per_video(labels: np.ndarray) -> np.ndarray:
    """(K,) number of label changes along each sequence."""
    return label_changes(labels).sum(axis=1)


def flips_per_sequence(labels: np.ndarray) -> float:
    """Mean number of flips per sequence."""
    return float(flips_per_video(labels).mean())


def flip_rate_by_transition(labels: np.ndarray) -> list[float]:
    """Fraction of sequences whose predicted digit changes at each transition t -> t+1.

    Shows *where* flips happen: a rate that alternates between even and odd transitions is
    the temporal checkerboard of stride-2 transposed convolutions (docs/TRAINING.md).
    """
    return [float(x) for x in label_changes(labels).mean(axis=0)]
