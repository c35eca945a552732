"""Checkpoints and model folders: safetensors weights beside a JSON manifest.

Nothing here unpickles: weights are safetensors, everything else (configs, optimiser
hyper-parameters, losses, data description) is JSON, so a checkpoint from anyone can be
opened safely. Writes go to a temporary name first and are renamed into place, so a
reader never sees half a file.
"""

from __future__ import annotations

import base64
import gzip
import json
import lzma
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from savgan.model.atomic import atomic_path
from savgan.model.layout import CRITIC_WEIGHTS, GENERATOR_WEIGHTS, LOG, MANIFEST, TRAINING_STATE

# Training-state prefix of the generator's weight average (model/ema.py), which a run exports
# instead of G's last iterate when it keeps one.
AVERAGE_PREFIX = "G_avg"
# Packed-file metadata key of the run's loss log (log.jsonl, xz, base64): safetensors metadata
# holds only strings, and the log must survive a pack so that a resumed run plots its whole history.
# xz at its strongest preset stores a long log in three quarters of gzip's bytes, which keeps a
# packed run under the 20 MiB a file may weigh in git for thousands of steps longer.
PACKED_LOG = "log.jsonl.xz.b64"
# The key files packed before xz carry (gzip, base64); unpack_run still reads it.
PACKED_LOG_GZIP = "log.jsonl.gz.b64"


# Significant digits of every loss in log.jsonl: float32 losses printed to 17 digits made the log,
# which feeds plots and travels inside every packed run, twice the size for digits that are noise.
LOG_DIGITS = 6


def log_values(values: dict[str, float]) -> dict[str, float]:
    """Loss values as log.jsonl keeps them (LOG_DIGITS significant digits)."""
    return {key: float(f"{value:.{LOG_DIGITS}g}") for key, value in values.items()}


def compact_log(log: bytes) -> bytes:
    """A log.jsonl with every loss cut to LOG_DIGITS digits: logs written before the cut shrink by half when packed."""
    lines = []
    for line in log.decode().splitlines():
        entry = json.loads(line)
        lines.append(json.dumps({"step": entry.pop("step"), **log_values(entry)}))
    return "".join(line + "\n" for line in lines).encode()


def has_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> bool:
    """Whether a tensor file holds a module saved under ``prefix``."""
    return any(key.startswith(prefix + ".") for key in tensors)


def has_average(tensors: dict[str, torch.Tensor]) -> bool:
    """Whether a training state holds a weight average (runs without one, or from before it, do not)."""
    return has_prefix(tensors, AVERAGE_PREFIX)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: is this a savgan model or run folder?") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the file is damaged") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} is missing")
    return load_file(str(path))


def optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser's state into tensors (for safetensors) and JSON (its param groups)."""
    state = optimizer.state_dict()
    tensors = {
        f"{prefix}.{index}.{name}": value if value.dim() else value.reshape(1)
        for index, slots in state["state"].items()
        for name, value in slots.items()
    }
    return tensors, {"param_groups": state["param_groups"]}


def load_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if not key.startswith(prefix + "."):
            continue
        index, name = key[len(prefix) + 1 :].split(".", 1)
        state.setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
    optimizer.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def module_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return module_prefixed(prefix, module.state_dict())


def _strip_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def load_module(prefix: str, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    module.load_state_dict(_strip_prefix(tensors, prefix))


def fits(prefix: str, module: nn.Module, tensors: dict[str, torch.Tensor]) -> bool:
    """Whether ``tensors`` hold a module saved under ``prefix`` with exactly ``module``'s parameter names and shapes."""
    saved = {k: v.shape for k, v in _strip_prefix(tensors, prefix).items()}
    return saved == {k: v.shape for k, v in module.state_dict().items()}


COMPACT_MOMENTS = ("exp_avg", "exp_avg_sq")


def pack_run(run_dir: Path, out_file: Path) -> None:
    """One file that resumes a run: its training state with Adam moments in bf16, manifest and loss log in the metadata.

    Small enough to commit between sessions (weights stay float32; the moments, two thirds of
    the state, are halved). Resuming from it continues from the same weights with moments
    rounded to bf16: close to, but not bit-for-bit, the uninterrupted run; the run folder's own
    training_state.safetensors is the exact one.
    """
    tensors = load_tensors(Path(run_dir) / TRAINING_STATE)
    packed = {k: v.to(torch.bfloat16) if k.rsplit(".", 1)[-1] in COMPACT_MOMENTS else v for k, v in tensors.items()}
    metadata = {"manifest": json.dumps(read_json(Path(run_dir) / MANIFEST), sort_keys=True)}
    log = Path(run_dir) / LOG
    if log.exists():
        packed_log = lzma.compress(compact_log(log.read_bytes()), preset=9 | lzma.PRESET_EXTREME)
        metadata[PACKED_LOG] = base64.b64encode(packed_log).decode("ascii")
    with atomic_path(out_file) as tmp:
        save_file(packed, str(tmp), metadata=metadata)


def _packed_metadata(packed_file: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(packed_file), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "manifest" not in metadata:
        raise ValueError(f"{packed_file} is not a packed savgan run (no manifest in its metadata)")
    return metadata


def _packed_log(metadata: dict[str, str]) -> bytes | None:
    """The loss log a packed file carries, from either key; None for files packed before logs travelled."""
    if PACKED_LOG in metadata:
        return lzma.decompress(base64.b64decode(metadata[PACKED_LOG]))
    if PACKED_LOG_GZIP in metadata:
        return gzip.decompress(base64.b64decode(metadata[PACKED_LOG_GZIP]))
    return None


def packed_manifest(packed_file: Path) -> dict[str, Any]:
    """The manifest inside :func:`pack_run`'s file, read without loading its tensors."""
    return json.loads(_packed_metadata(packed_file)["manifest"])


def read_training_state(source: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Manifest and float32 training state of a run folder, a model folder or :func:`pack_run`'s file.

    Lets tools that inspect the critics (bench/critic_probe.py) read a packed checkpoint
    without unpacking it, or a bundled model folder, whose critics are its ``critics.safetensors``
    and whose G is its generator (no optimiser state).
    """
    source = Path(source)
    if source.is_dir() and not (source / TRAINING_STATE).exists() and (source / CRITIC_WEIGHTS).exists():
        tensors = {**load_tensors(source / CRITIC_WEIGHTS), **module_prefixed("G", load_tensors(source / GENERATOR_WEIGHTS))}
    else:
        tensors = load_tensors(source / TRAINING_STATE if source.is_dir() else source)
    return run_manifest(source), {k: v.float() if v.dtype == torch.bfloat16 else v for k, v in tensors.items()}


def module_prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def critic_tensors(critics: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Every critic's weights under its prefix (DV, DI, ...), in bf16: for :data:`CRITIC_WEIGHTS`."""
    return {
        key: value.to(torch.bfloat16) if value.is_floating_point() else value
        for prefix, critic in critics.items()
        for key, value in module_tensors(prefix, critic).items()
    }


def run_manifest(source: Path) -> dict[str, Any]:
    """The manifest of a run folder or of :func:`pack_run`'s file, without loading any weights."""
    source = Path(source)
    return read_json(source / MANIFEST) if source.is_dir() else packed_manifest(source)


def unpack_run(packed_file: Path, run_dir: Path) -> None:
    """Recreate a resumable run folder (manifest, training state, generator, loss log) from :func:`pack_run`'s file.

    Files packed before the log travelled with them unpack without one: the resumed run's log
    then starts at the packed step.
    """
    manifest, tensors = read_training_state(packed_file)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = _packed_log(_packed_metadata(packed_file))
    if log is not None:
        atomic_write_bytes(run_dir / LOG, log)
    save_tensors(run_dir / TRAINING_STATE, tensors)
    exported = AVERAGE_PREFIX if has_average(tensors) else "G"
    save_tensors(run_dir / GENERATOR_WEIGHTS, _strip_prefix(tensors, exported))
    write_json(run_dir / MANIFEST, manifest)
