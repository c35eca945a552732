"""Spatio-temporal self-attention: exact (flash SDPA) and Nystrom-approximated.

Shapes: q and k are (B, N, d) with d = C/8, v is (B, N, C), N = T*H*W tokens.

The Nystrom form follows Xiong et al. (AAAI 2021):
    S~ = softmax(Q K~^T s) . pinv(softmax(Q~ K~^T s)) . softmax(Q~ K^T s),   s = 1/sqrt(d)
evaluated right to left (kernel3 @ V first) so that no N x N tensor ever exists; the
reference code multiplies the three kernels into N x N first, which costs O(N^2) memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from savgan.model.config import AttentionSpec

LandmarkSource = torch.Generator | Sequence[torch.Generator] | None
"""Where Nystrom landmarks come from: one draw for the batch, one generator per sample, or the global RNG."""

QueryProgress = Callable[[int, int], None]
"""``(queries done, queries)`` of the attention being computed."""

QUERY_BLOCK = 4096
"""Queries per reported block: a multiple of 256, the CPU flash kernel's query tile for long inputs."""

_query_progress: ContextVar[QueryProgress | None] = ContextVar("query_progress", default=None)


@contextmanager
def reporting_query_progress(callback: QueryProgress) -> Iterator[None]:
    """Within, :func:`flash_attention` over two or more ``QUERY_BLOCK``s of CPU queries reports each block.

    One attention over a long clip is most of a long video's generation (the bundled models'
    last exact attention: 88% of a 128-frame forward, and it grows with the square of the
    length while the convolutions grow linearly), so progress counted per stage or per video
    stands still for minutes. Each query's output depends only
    on its own row and on all keys and values, and the CPU flash kernel computes every query
    tile on its own, so block by block gives the same bits (tests/test_generate.py checks it);
    CUDA kernels make no such promise here, so CUDA attention runs whole and reports nothing.
    """
    token = _query_progress.set(callback)
    try:
        yield
    finally:
        _query_progress.reset(token)


def query_blocks(queries: int) -> list[tuple[int, int]]:
    """``[start, end)`` runs of ``QUERY_BLOCK`` queries, the last one taking the remainder.

    Folding the remainder into the last block (instead of a short block of its own) keeps
    every block at least ``QUERY_BLOCK`` long, so the CPU kernel keeps its long-input tiling.
    """
    starts = list(range(0, queries, QUERY_BLOCK))
    if len(starts) > 1 and queries - starts[-1] < QUERY_BLOCK:
        starts.pop()
    return list(zip(starts, [*starts[1:], queries]))


def iterative_pinv(matrix: Tensor, iterations: int = 6) -> Tensor:
    """Moore-Penrose pseudo-inverse of a batch of softmax matrices by Newton-Schulz iteration.

    Nystromformer's order-3 scheme: Z <- Z/4 (13I - AZ(15I - AZ(7I - AZ))), started from
    Z0 = A^T / (||A||_1 ||A||_inf). Rows of a softmax sum to 1, so ||A||_inf = 1 and the
    start only needs the largest column sum; then ||I - A Z0|| < 1 and the iteration
    converges. Matmuls only: fast on every device and differentiable, unlike an SVD.
    ``matrix`` is a batch (B, m, m); each "cI - AZ(...)" is one fused baddbmm: at m = 512
    the separate scalings and subtractions took up to half as long as the matmuls (profiled
    on two contended CPU cores).
    """
    identity = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    seven, thirteen, fifteen = 7 * identity, 13 * identity, 15 * identity
    col_norm = matrix.abs().sum(dim=-2).amax(dim=-1, keepdim=True)
    row_norm = matrix.abs().sum(dim=-1).amax(dim=-1, keepdim=True)
    z = matrix.transpose(-1, -2) / (col_norm * row_norm).unsqueeze(-1)
    for _ in range(iterations):
        az = matrix @ z
        inner = torch.baddbmm(fifteen, az, seven - az, alpha=-1)
        z = (z @ torch.baddbmm(thirteen, az, inner, alpha=-1)).mul_(0.25)
    return z


def iterations_applied_to_values(iterations: int, size: int, width: int) -> int:
    """How many of the last Newton-Schulz iterates :func:`pinv_times` applies without forming.

    Forming an iterate costs four (m x m)(m x m) products; applying the last j iterates to
    (m x C) values costs 2 * 4^j - 1 (m x m)(m x C) products. The j minimising the total
    is 2 at m = 512 and C = 32 or 64: about 18 or 20 m^3-sized products instead of 24.
    """
    costs = [4 * (iterations - j) * size + (2 * 4**j - 1) * width for j in range(iterations + 1)]
    return costs.index(min(costs))


def _apply_next_iterate(matrix: Tensor, multiply: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """y -> Z' y for the iterate Z' that follows the Z that ``multiply`` applies, never forming Z'.

    Z' y = Z/4 (13y - AZ(15y - AZ(7y - AZ y))), each AZ x taken as A (Z x).
    """

    def coefficient_minus_az(coefficient: float, y: Tensor, x: Tensor) -> Tensor:
        return torch.baddbmm(y, matrix, multiply(x), beta=coefficient, alpha=-1)

    def next_multiply(y: Tensor) -> Tensor:
        inner = coefficient_minus_az(15, y, coefficient_minus_az(7, y, y))
        return 0.25 * multiply(coefficient_minus_az(13, y, inner))

    return next_multiply


def pinv_times(matrix: Tensor, values: Tensor, iterations: int = 6) -> Tensor:
    """``iterative_pinv(matrix, iterations) @ values``, the same maths in fewer flops.

    Nystrom attention needs the pseudo-inverse only times the (m x C) landmark values, so
    the last iterates are applied to the values instead of being formed (see
    :func:`iterations_applied_to_values`); the pinv is most of Nystrom's cost at m = 512.
    """
    applied = iterations_applied_to_values(iterations, matrix.shape[-1], values.shape[-1])
    multiply = partial(torch.matmul, iterative_pinv(matrix, iterations - applied))
    for _ in range(applied):
        multiply = _apply_next_iterate(matrix, multiply)
    return multiply(values)


def choose_landmarks(tokens: int, landmarks: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Indices of the landmark tokens, drawn uniformly without replacement.

    A fresh draw every training step (the paper); at inference the caller passes a
    generator seeded from the request so the same seed gives the same video.
    """
    if landmarks >= tokens:
        return torch.arange(tokens, device=device)
    perm = torch.randperm(tokens, generator=generator, device=generator.device if generator else device)
    return perm[:landmarks].to(device)


def landmark_indices(q: Tensor, landmarks: int, source: LandmarkSource) -> Tensor:
    """(m,) indices shared by the whole batch, or (B, m): one draw per sample from its own generator.

    One generator (training) keeps the paper's single draw per iteration; a sequence of
    generators lets a batch of videos each keep the landmarks it would get on its own.
    """
    if source is None or isinstance(source, torch.Generator):
        return choose_landmarks(q.shape[1], landmarks, source, q.device)
    if len(source) != q.shape[0]:
        raise ValueError(f"got {len(source)} landmark generators for a batch of {q.shape[0]}")
    return torch.stack([choose_landmarks(q.shape[1], landmarks, g, q.device) for g in source])


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """Tokens ``idx`` of every sample of x (B, N, D): shared (m,) or per-sample (B, m) indices."""
    if idx.dim() == 1:
        return x[:, idx]
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def nystrom_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    landmarks: int,
    pinv_iterations: int = 6,
    generator: LandmarkSource = None,
    attend: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """Nystrom attention, multiplied right to left: memory O(N + m^2), never O(N m) nor O(N^2).

    kernel3 @ V = softmax(Q~ K^T s) V and kernel1 @ W = softmax(Q K~^T s) W are exact
    attentions (landmarks over tokens, tokens over landmarks), so ``attend`` (default:
    flash SDPA) computes each block by block and never writes an N x m kernel: forward and
    backward that is faster than forming the kernels (page faults and memory passes on
    32 MiB tensors dominated). Only kernel2 (m x m) is formed, for its pseudo-inverse.
    ``attend=exact_attention`` forms the N x m kernels, for twice-differentiable use.
    """
    attend = attend or flash_attention
    idx = landmark_indices(q, landmarks, generator)
    q_land, k_land = gather_tokens(q, idx), gather_tokens(k, idx)
    kernel2 = torch.softmax((q_land @ k_land.transpose(1, 2)) * (1.0 / math.sqrt(q.shape[-1])), dim=-1)
    return attend(q, k_land, pinv_times(kernel2, attend(q_land, k, v), pinv_iterations))


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
    q, k, v = q.unsqueeze(1).contiguous(), k.unsqueeze(1).contiguous(), v.unsqueeze(1).contiguous()
    report = _query_progress.get()
    blocks = query_blocks(q.shape[2])
    if report is None or len(blocks) < 2 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, scale=scale).squeeze(1)
    out = q.new_empty(q.shape[:-1] + (c,))
    for start, end in blocks:
        out[:, :, start:end] = F.scaled_dot_product_attention(q[:, :, start:end].contiguous(), k, v, scale=scale)
        report(end, q.shape[2])
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
    materialises its (small: 448 tokens at most in D_V) matrix instead, and Nystrom its
    N x m kernels.
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

    def forward(self, x: Tensor, landmark_generator: LandmarkSource = None) -> Tensor:
        b, c, t, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)
        k = self.key(x).flatten(2).transpose(1, 2)
        v = self.value(x).flatten(2).transpose(1, 2)
        if self.spec.kind == "nystrom":
            attend = exact_attention if self.twice_differentiable else flash_attention
            out = nystrom_attention(
                q, k, v, self.spec.landmarks, self.spec.pinv_iterations, landmark_generator, attend
            )
        elif self.twice_differentiable:
            out = exact_attention(q, k, v)
        else:
            out = flash_attention(q, k, v)
        return x + self.gamma * out.transpose(1, 2).reshape(b, c, t, h, w)
