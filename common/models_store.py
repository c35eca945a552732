"""Model versions in object storage, beside the models bundled with the package.

A version lives under ``models/{owner}/{name}/{version}/`` (manifest.json, generator and
training-state safetensors, samples.png, losses.png). Its number is claimed first by creating
``claim.json`` there only if absent (an atomic conditional write), so publishers racing on one
name each get a version of their own; its manifest is written last and names each file's
sha256, a version is listed only once its manifest exists, and a fetch checks every file
against it, so a half-uploaded or mixed-up version is never seen or used.
Bundled models (``savgan/model/bundled/<name>/``) are visible to every owner as version
``bundled`` of owner ``public``. Manifests are read as JSON here: this module runs in the API
image, which has no torch.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from savgan.common.jobs import TransientState
from savgan.common.storage import ObjectExists, ObjectNotFound, Storage
from savgan.model.layout import BUNDLED_ROOT, MANIFEST, SAMPLES, VERSION_FILES

BUNDLED = "bundled"
PUBLIC_OWNER = "public"
# A listing is reused while the owner's model generation is unchanged, but never longer than
# this: versions written around the service (an operator copying objects) appear within it.
LISTING_MAX_AGE_S = 60.0
# Marks a version number as taken from the moment it is claimed; never listed as a version.
CLAIM = "claim.json"
# Each publisher racing on a name takes at most one number, so a claim that keeps failing this
# often means a server answering "exists" to every conditional write, not contention.
MAX_CLAIM_TRIES = 100


class DamagedModel(ValueError):
    """A stored version's file differs from what its manifest says (sha256 or size)."""


class ModelVersionInfo(BaseModel):
    owner: str = Field(description='who trained it; "public" for models bundled with the service')
    name: str
    version: str = Field(description='an integer counting up per name, or "bundled"')
    source: Literal["stored", "bundled"]
    step: int = Field(description="generator steps trained")
    arch: str
    clip: str = Field(description="trained clip, frames x height x width", examples=["16x32x32"])
    data: str = Field(description="what it was trained on")
    physical: dict[str, float] = Field(default_factory=dict, description="pixel_size_um, frame_interval_s")
    base_model: str | None = Field(None, description="name:version it was fine-tuned from")
    created_at: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(
        default_factory=dict, description="the recipe it was trained with (batch size, learning rates, critic weights, ...)"
    )
    samples_key: str | None = Field(None, description="storage key of the sample montage")

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def prefix(self) -> str:
        return f"models/{self.owner}/{self.name}/{self.version}/"


class ModelInfo(BaseModel):
    name: str
    owner: str
    versions: list[ModelVersionInfo] = Field(description="oldest first; the last one is used when none is named")


def _version_info(owner: str, name: str, version: str, manifest: dict[str, Any], source: str, samples_key: str | None) -> ModelVersionInfo:
    config = manifest.get("model_config", {})
    physical = manifest.get("physical") or {}
    return ModelVersionInfo(
        owner=owner,
        name=name,
        version=version,
        source=source,
        step=int(manifest.get("step", 0)),
        arch=config.get("arch", "savgan"),
        clip=f"{config.get('frames', '?')}x{config.get('size', '?')}x{config.get('size', '?')}",
        data=str(manifest.get("data", "")),
        physical={k: float(v) for k, v in physical.items() if isinstance(v, int | float)},
        base_model=manifest.get("base_model"),
        created_at=manifest.get("published_at") or manifest.get("saved_at"),
        metrics=manifest.get("metrics") or {},
        training=manifest.get("train_config") or {},
        samples_key=samples_key,
    )


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


class ModelStore:
    """List, resolve, publish and fetch model versions; manifests are cached (published ones never change)."""

    def __init__(self, storage: Storage, transient: TransientState | None = None) -> None:
        """With ``transient``, an owner's listing is cached until a publish bumps the owner's
        generation (one Redis GET per request instead of an object-storage LIST); without it,
        every call lists storage."""
        self.storage = storage
        self.transient = transient
        self._manifests: dict[str, dict[str, Any]] = {}
        self._listings: dict[str, tuple[int, float, dict[str, list[ModelVersionInfo]]]] = {}
        self._lock = threading.Lock()

    def _manifest(self, key: str) -> dict[str, Any]:
        with self._lock:
            cached = self._manifests.get(key)
        if cached is None:
            cached = json.loads(self.storage.get_bytes(key))
            with self._lock:
                self._manifests[key] = cached
        return cached

    def _stored(self, owner: str) -> dict[str, list[ModelVersionInfo]]:
        if self.transient is None:
            return self._list_stored(owner)
        generation = self.transient.generation(f"models:{owner}")
        with self._lock:
            cached = self._listings.get(owner)
        if cached and cached[0] == generation and time.monotonic() - cached[1] < LISTING_MAX_AGE_S:
            return cached[2]
        listing = self._list_stored(owner)
        with self._lock:
            self._listings[owner] = (generation, time.monotonic(), listing)
        return listing

    def _list_stored(self, owner: str) -> dict[str, list[ModelVersionInfo]]:
        keys = self.storage.list(f"models/{owner}/")
        present = set(keys)
        found: dict[str, list[ModelVersionInfo]] = {}
        for key in keys:
            parts = key.split("/")
            if len(parts) != 5 or parts[4] != MANIFEST:
                continue
            name, version = parts[2], parts[3]
            samples = f"models/{owner}/{name}/{version}/samples.png"
            info = _version_info(owner, name, version, self._manifest(key), "stored", samples if samples in present else None)
            found.setdefault(name, []).append(info)
        for versions in found.values():
            versions.sort(key=lambda v: _version_order(v.version))
        return found

    def list_models(self, owner: str) -> list[ModelInfo]:
        """The owner's models, then bundled ones; a name the owner also trained lists both kinds of version."""
        stored = self._stored(owner)
        bundled = _bundled_models()
        models = []
        for name in sorted(set(stored) | set(bundled)):
            versions = stored.get(name, []) + ([bundled[name]] if name in bundled else [])
            models.append(ModelInfo(name=name, owner=owner if name in stored else PUBLIC_OWNER, versions=versions))
        return models

    def get_model(self, owner: str, name: str) -> ModelInfo | None:
        return next((m for m in self.list_models(owner) if m.name == name), None)

    def resolve(self, owner: str, spec: str) -> ModelVersionInfo:
        """``name`` (newest trained version, else the bundled one) or ``name:version``."""
        name, _, version = spec.partition(":")
        model = self.get_model(owner, name)
        if model is None:
            known = ", ".join(m.name for m in self.list_models(owner)) or "none yet"
            raise LookupError(f"no model named {name!r}; known models: {known}")
        if not version:
            stored = [v for v in model.versions if v.source == "stored"]
            return (stored or model.versions)[-1]
        for info in model.versions:
            if info.version == version:
                return info
        versions = ", ".join(v.version for v in model.versions)
        raise LookupError(f"model {name!r} has no version {version!r}; versions: {versions}")

    def _next_version(self, owner: str, name: str) -> int:
        """Counts every key under the name, so a half-uploaded version's number is never reused."""
        used = [k.split("/")[3] for k in self.storage.list(f"models/{owner}/{name}/")]
        return max((int(v) for v in used if v.isdigit()), default=0) + 1

    def _claim_version(self, owner: str, name: str) -> str:
        """The first free number from the listing on, taken by a conditional create of its claim:
        a publisher that loses a number to a concurrent one moves on to the next."""
        claim = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "claimed_at": _now()}).encode()
        number = self._next_version(owner, name)
        for _ in range(MAX_CLAIM_TRIES):
            try:
                self.storage.create_exclusive(f"models/{owner}/{name}/{number}/{CLAIM}", claim, "application/json")
                return str(number)
            except ObjectExists:
                number += 1
        raise RuntimeError(
            f"could not claim a version of model {name!r} of {owner} in {MAX_CLAIM_TRIES} tries (up to {number}): "
            "the storage refuses every conditional create; check that its server supports If-None-Match: *"
        )

    def publish_run(self, owner: str, name: str, run_dir: Path) -> ModelVersionInfo:
        """Upload a training run folder as a new version of ``name``, claimed for this run alone;
        the manifest goes last and records each file's sha256 and size."""
        run_dir = Path(run_dir)
        manifest = json.loads((run_dir / MANIFEST).read_text())
        files = [f for f in VERSION_FILES if (run_dir / f).is_file()]
        manifest["files"] = {f: {"sha256": _sha256(run_dir / f), "bytes": (run_dir / f).stat().st_size} for f in files}
        version = self._claim_version(owner, name)
        manifest["published_at"] = _now()
        final = f"models/{owner}/{name}/{version}/"
        for filename in files:
            self.storage.put_file(final + filename, run_dir / filename, _content_type(filename))
        self.storage.put_bytes(final + MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode(), "application/json")
        if self.transient is not None:
            self.transient.bump(f"models:{owner}")
        samples = final + SAMPLES if SAMPLES in files else None
        return _version_info(owner, name, version, manifest, "stored", samples)

    def fetch(self, info: ModelVersionInfo, cache_dir: Path) -> Path:
        """A local folder holding the version, its files checked against the manifest's sha256s;
        downloaded once (atomically) and reused afterwards."""
        if info.source == "bundled":
            return BUNDLED_ROOT / info.name
        target = Path(cache_dir) / info.owner / info.name / info.version
        if (target / MANIFEST).is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.parent / f".{info.version}.{os.getpid()}.{uuid.uuid4().hex}.partial"
        partial.mkdir()
        try:
            self._download_version(info, partial)
            try:
                os.rename(partial, target)
            except OSError:
                if not (target / MANIFEST).is_file():
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return target

    def _download_version(self, info: ModelVersionInfo, folder: Path) -> None:
        """The version files the manifest names (only those: a manifest cannot write elsewhere),
        each verified; versions published before manifests named their files come as every
        object under the prefix."""
        try:
            raw = self.storage.get_bytes(info.prefix + MANIFEST)
        except ObjectNotFound:
            raise LookupError(f"model {info.spec} of {info.owner} has no manifest in storage") from None
        described = json.loads(raw).get("files")
        if described is None:
            for key in self.storage.list(info.prefix):
                self.storage.download(key, folder / key.rsplit("/", 1)[-1])
            return
        for filename in (f for f in VERSION_FILES if f in described):
            expected = described[filename]
            path = folder / filename
            self.storage.download(info.prefix + filename, path)
            found = {"sha256": _sha256(path), "bytes": path.stat().st_size}
            if found != expected:
                raise DamagedModel(
                    f"model {info.spec} of {info.owner} is damaged in storage: {filename} has {found}, "
                    f"its manifest says {expected}; publish the run again as a new version"
                )
        (folder / MANIFEST).write_bytes(raw)


@functools.cache
def _bundled_models() -> dict[str, ModelVersionInfo]:
    """Read once per process: bundled models ship inside the installed package and never change under it."""
    if not BUNDLED_ROOT.is_dir():
        return {}
    found = {}
    for folder in sorted(BUNDLED_ROOT.iterdir()):
        if (folder / MANIFEST).is_file():
            manifest = json.loads((folder / MANIFEST).read_text())
            found[folder.name] = _version_info(PUBLIC_OWNER, folder.name, BUNDLED, manifest, "bundled", None)
    return found


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _content_type(filename: str) -> str:
    return "image/png" if filename.endswith(".png") else "application/octet-stream"
