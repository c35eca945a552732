"""Spatio-temporal self-attention: exact (flash SDPA) and Nystrom-approximated.

Shapes: q and k are (B, N, d) with d = C/8, v is (B, N, C), N = T*H*W tokens.

The Nystrom form follows Xiong et al. (AAAI 2021):
    S~ = softmax(Q K~^T s) . pinv(softmax(Q~ K~^T s)) . softmax(Q~ K^T s),   s = 1/sqrt(d)
evaluated right to left (kernel3 @ V first) so that no N x N tensor ever exists; the
reference code multiplies the three kernels into N x N first, which costs O(N^2) memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from savgan.model.config import AttentionSpec


def iterative_pinv(matrix: Tensor, iterations: int = 6) -> Tensor:
    """Moore-Penrose pseudo-inverse of a batch of softmax matrices by Newton-Schulz iteration.

    Nystromformer's order-3 scheme: Z <- Z/4 (13I - AZ(15I - AZ(7I - AZ))), started from
    Z0 = A^T / (||A||_1 ||A||_inf). Rows of a softmax sum to 1, so ||A||_inf = 1 and the
    start only needs the largest column sum; then ||I - A Z0|| < 1 and the iteration
    converges. Matmuls only: fast on every device and differentiable, unlike an SVD.
    """
    identity = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    col_norm = matrix.abs().sum(dim=-2).amax(dim=-1, keepdim=True)
    row_norm = matrix.abs().sum(dim=-1).amax(dim=-1, keepdim=True)
    z = matrix.transpose(-1, -2) / (col_norm * row_norm).unsqueeze(-1)
    for _ in range(iterations):
        az = matrix @ z
        z = 0.25 * z @ (13 * identity - az @ (15 * identity - az @ (7 * identity - az)))
    return z


def choose_landmarks(tokens: int, landmarks: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Indices of the landmark tokens, drawn uniformly without replacement.

    A fresh draw every training step (the paper); at inference the caller passes a
    generator seeded from the request so the same seed gives the same video.
    """
    if landmarks >= tokens:
        return torch.arange(tokens, device=device)
    perm = torch.randperm(tokens, generator=generator, device=generator.device if generator else device)
    return perm[:landmarks].to(device)


def nystrom_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    landmarks: int,
    pinv_iterations: int = 6,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Nystrom attention, multiplied right to left: memory O(N m), never O(N^2)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    idx = choose_landmarks(q.shape[1], landmarks, generator, q.device)
    q_land, k_land = q[:, idx], k[:, idx]
    kernel3 = torch.softmax((q_land @ k.transpose(1, 2)) * scale, dim=-1)  # (B, m, N)
    kernel2 = torch.softmax((q_land @ k_land.transpose(1, 2)) * scale, dim=-1)  # (B, m, m)
    kernel1 = torch.softmax((q @ k_land.transpose(1, 2)) * scale, dim=-1)  # (B, N, m)
    landmark_values = iterative_pinv(kernel2, pinv_iterations) @ (kernel3 @ v)  # (B, m, C)
    return kernel1 @ landmark_values


def flash_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Exact attention through SDPA's O(N)-memory flash kernel.

    On CPU the flash kernel needs q, k and v of one head width and contiguous; with
    q/k at C/8 and v at C, SDPA silently falls back to a kernel that builds N x N.
    Zero-padding q and k to C leaves every dot product unchanged; ``scale`` keeps the
    1/sqrt(C/8) of the unpadded width.
    """
    d, c = q.shape[-1], v.shape[-1]
    scale = 1.0 / math.sqrt(d)
    if d < c:
        q = F.pad(q, (0, c - d))
        k = F.pad(k, (0, c - d))
    out = F.scaled_dot_product_attention(
        q.unsqueeze(1).contiguous(), k.unsqueeze(1).contiguous(), v.unsqueeze(1).contiguous(), scale=scale
    )
    return out.squeeze(1)


def exact_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Textbook attention that materialises the N x N matrix: the reference for tests and benchmarks."""
    scores = torch.softmax((q @ k.transpose(1, 2)) / math.sqrt(q.shape[-1]), dim=-1)
    return scores @ v


class SelfAttention3d(nn.Module):
    """SAGAN-style self-attention over all T*H*W positions of a 3D feature map.

    f, g: 1x1x1 convs to C/8 channels, h: 1x1x1 conv to C; y = gamma * attend(f, g, h) + x
    with gamma initialised to 0, so the block starts as the identity and the network
    learns how much non-local evidence to mix in.

    ``twice_differentiable`` is for the critics: the gradient penalty differentiates them
    twice and SDPA's flash kernel has no double backward, so exact attention there
    materialises its (small: 448 tokens at most in D_V) matrix instead.
    """

    def __init__(self, channels: int, spec: AttentionSpec, twice_differentiable: bool = False) -> None:
        super().__init__()
        self.twice_differentiable = twice_differentiable
        if spec.kind == "none":
            raise ValueError("SelfAttention3d needs kind 'nystrom' or 'full'; omit the layer for 'none'")
        self.spec = spec
        reduced = max(channels // 8, 1)
        self.query = nn.Conv3d(channels, reduced, 1)
        self.key = nn.Conv3d(channels, reduced, 1)
        self.value = nn.Conv3d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, landmark_generator: torch.Generator | None = None) -> Tensor:
        b, c, t, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)
        k = self.key(x).flatten(2).transpose(1, 2)
        v = self.value(x).flatten(2).transpose(1, 2)
        if self.spec.kind == "nystrom":
            out = nystrom_attention(q, k, v, self.spec.landmarks, self.spec.pinv_iterations, landmark_generator)
        elif self.twice_differentiable:
            out = exact_attention(q, k, v)
        else:
            out = flash_attention(q, k, v)
        return x + self.gamma * out.transpose(1, 2).reshape(b, c, t, h, w)
