"""Identity persistence: does a clip end showing the digit it started with?

Flips/seq counts every change of the classifier's label, so frame noise alone raises it
(real clips with 2 % salt speckle score 3.9). Identity persistence asks the question a
viewer asks: is the digit of the first frames the digit of the last frames? The label of
each end is the most frequent classifier label over its first / last quarter of the frames
(at least one frame). Real Moving MNIST scores about 1.0; a generator whose digit drifts
into an unrelated one scores about chance (13-15 % for the ten digits' frequencies).

The share comes with its binomial standard error sqrt(p (1 - p) / K): 256 clips give about
+-2.3 points near 15 %, so claims about small changes need 1024 clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = 10


@dataclass(frozen=True)
class Persistence:
    share: float
    standard_error: float
    clips: int


def end_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K,) most frequent label of the first and of the last quarter of each clip's per-frame labels (K, F)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] < 2:
        raise ValueError(f"identity needs per-frame labels shaped (K, F>=2), got {labels.shape}")
    window = max(1, labels.shape[1] // 4)

    def mode(part: np.ndarray) -> np.ndarray:
        counts = np.stack([(part == c).sum(axis=1) for c in range(CLASSES)], axis=1)
        return counts.argmax(axis=1)

    return mode(labels[:, :window]), mode(labels[:, -window:])


def identity_persistence(labels: np.ndarray) -> Persistence:
    first, last = end_labels(labels)
    share = float((first == last).mean())
    return Persistence(share, float(np.sqrt(share * (1 - share) / len(first))), len(first))
