"""Where models live and how a name becomes a loaded generator.

A model is a folder with ``manifest.json`` (the :class:`ModelConfig` and how it was
trained) and ``generator.safetensors``. A training run folder is such a folder too.
Names resolve, in order, to: an existing folder path; ``init:<preset>`` (a freshly
initialised generator, for smoke tests); an installed model under the models root
(``<root>/<name>/<version>/``, newest version unless ``name:version`` is given); a
model bundled with the package (``savgan/model/bundled/<name>/``).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from savgan.model import checkpoint as ckpt
from savgan.model.config import ModelConfig, preset
from savgan.model.family import build_generator
from savgan.model.layout import BUNDLED_ROOT, MODEL_FILES

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
INIT_PREFIX = "init:"


class ModelNotFoundError(LookupError):
    pass


@dataclass(frozen=True)
class ModelRecord:
    name: str
    version: str
    path: Path
    source: str  # "path", "init", "installed" or "bundled"
    manifest: dict[str, Any]

    @property
    def config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.manifest["model_config"])

    def summary(self) -> dict[str, Any]:
        cfg = self.manifest["model_config"]
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "path": str(self.path),
            "arch": cfg.get("arch", "savgan"),
            "clip": f"{cfg['frames']}x{cfg['size']}x{cfg['size']}",
            "step": self.manifest.get("step", 0),
            "data": self.manifest.get("data", ""),
        }


def models_root() -> Path:
    """``SAVGAN_MODELS_DIR``, or a per-user folder."""
    env = os.environ.get("SAVGAN_MODELS_DIR")
    return Path(env) if env else Path.home() / ".local" / "share" / "savgan" / "models"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(f"model name {name!r} must be 1-64 characters of a-z, 0-9, '.', '_' or '-'")
    return name


def _versions(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    found = [p.name for p in folder.iterdir() if (p / ckpt.MANIFEST).exists()]
    return sorted(found, key=lambda v: (len(v), v))


def _record(name: str, version: str, path: Path, source: str) -> ModelRecord:
    return ModelRecord(name, version, path, source, ckpt.read_json(path / ckpt.MANIFEST))


def resolve(spec: str, root: Path | None = None) -> ModelRecord:
    """The model a user means by ``spec`` (see the module docstring)."""
    as_path = Path(spec).expanduser()
    if (as_path / ckpt.MANIFEST).exists():
        return _record(as_path.name, "local", as_path, "path")
    if spec.startswith(INIT_PREFIX):
        config = preset(spec[len(INIT_PREFIX) :])
        manifest = {"format": "savgan-model/1", "model_config": config.to_dict(), "step": 0, "data": "untrained"}
        return ModelRecord(spec, "0", Path(), "init", manifest)
    name, _, version = spec.partition(":")
    root = root or models_root()
    installed = _versions(root / name)
    if installed:
        chosen = version or installed[-1]
        if chosen not in installed:
            raise ModelNotFoundError(f"model {name!r} has no version {chosen!r}; versions: {', '.join(installed)}")
        return _record(name, chosen, root / name / chosen, "installed")
    if (BUNDLED_ROOT / name / ckpt.MANIFEST).exists() and version in ("", "bundled"):
        return _record(name, "bundled", BUNDLED_ROOT / name, "bundled")
    known = ", ".join(r.name for r in list_models(root)) or "none installed"
    raise ModelNotFoundError(
        f"no model {spec!r}: give a model folder, a name (known: {known}), or init:<preset> for an untrained one"
    )


def list_models(root: Path | None = None) -> list[ModelRecord]:
    """Installed models (every version) then bundled ones."""
    root = root or models_root()
    records = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            records += [_record(folder.name, v, folder / v, "installed") for v in _versions(folder)]
    if BUNDLED_ROOT.is_dir():
        for folder in sorted(BUNDLED_ROOT.iterdir()):
            if (folder / ckpt.MANIFEST).exists():
                records.append(_record(folder.name, "bundled", folder, "bundled"))
    return records


def load_generator(record: ModelRecord, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Build the generator of the manifest's family (model/family.py) and load its weights (safetensors, never pickle)."""
    if record.source == "init":
        torch.manual_seed(0)
        return build_generator(record.config).to(device).eval()
    generator = build_generator(record.config)
    try:
        generator.load_state_dict(ckpt.load_tensors(record.path / ckpt.GENERATOR_WEIGHTS))
    except RuntimeError as err:
        raise ValueError(f"weights in {record.path} do not match its manifest's model_config: {err}") from None
    return generator.to(device).eval()


def copy_model_files(run_dir: Path, target: Path) -> list[str]:
    """Copy what a model folder carries (layout.MODEL_FILES) from a run folder; the names copied.

    A model folder is what ``--base`` fine-tunes from and what ships bundled: the generator,
    the critics in bf16, the manifest and the pictures, without the optimiser state.
    """
    run_dir, target = Path(run_dir), Path(target)
    if not (run_dir / ckpt.MANIFEST).exists() or not (run_dir / ckpt.GENERATOR_WEIGHTS).exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: it needs {ckpt.MANIFEST} and {ckpt.GENERATOR_WEIGHTS}")
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for item in MODEL_FILES:
        if (run_dir / item).exists():
            shutil.copy2(run_dir / item, target / item)
            copied.append(item)
    return copied


def install(run_dir: Path, name: str, root: Path | None = None) -> ModelRecord:
    """Copy a run's generator, manifest and samples into the models root as the next version."""
    check_name(name)
    folder = (root or models_root()) / name
    existing = [int(v) for v in _versions(folder) if v.isdigit()]
    version = str(max(existing, default=0) + 1)
    target = folder / version
    staging = folder / f".{version}.partial"
    staging.mkdir(parents=True, exist_ok=False)
    copy_model_files(run_dir, staging)
    staging.rename(target)
    return _record(name, version, target, "installed")
