"""Res18-cosTS: temporal stability as the cosine similarity of consecutive frames' features.

The paper takes the 512-d last-layer features of a ResNet-18 trained to classify Moving
MNIST digits and averages the cosine similarity between consecutive frames; higher is
better (the digit keeps its identity and shape while it moves).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def consecutive_cosine_per_video(features: np.ndarray) -> np.ndarray:
    """(K,) mean over t of cos(f[k, t], f[k, t+1]) for features (K, F, D)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 3 or features.shape[1] < 2:
        raise ValueError(f"cosTS needs per-frame features shaped (K, F>=2, D), got {features.shape}")
    a, b = features[:, :-1], features[:, 1:]
    norms = np.maximum(np.linalg.norm(a, axis=2) * np.linalg.norm(b, axis=2), EPS)
    return ((a * b).sum(axis=2) / norms).mean(axis=1)


def cosine_ts(features: np.ndarray) -> float:
    """Mean consecutive-frame cosine similarity over all videos."""
    return float(consecutive_cosine_per_video(features).mean())
