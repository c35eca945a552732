"""FD-own: Fréchet distance on OUR Moving-MNIST classifier's 512-d frame features.

Not FVD, and never to be reported as FVD: the network is our own frame classifier
(`classifier.py`), not I3D, and it sees single frames, so FD-own measures how far the
distribution of generated frames (digit shapes, sharpness, positions) is from real
ones, not motion. It is cheap enough for CI. The samples are the features of every
frame of every video (K x F vectors), not per-video means: 256 per-video means would
give a rank-deficient 512 x 512 covariance.
"""

from __future__ import annotations

import numpy as np

from savgan.model.metrics.frechet import frechet_distance_of

NAME = "fd-own"
FEATURES = "Moving-MNIST frame classifier, 512-d penultimate features, every frame of every video"


def fd_own(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """FD between per-frame features (K, F, 512) of two video sets."""
    real = np.asarray(real_features).reshape(-1, np.shape(real_features)[-1])
    fake = np.asarray(fake_features).reshape(-1, np.shape(fake_features)[-1])
    return frechet_distance_of(real, fake)
