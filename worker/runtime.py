"""Generators loaded once per worker process and kept by (owner, name, version).

Loading a model (download, build, move to the GPU) costs seconds; a generation costs less,
so each process keeps its recent models. Nothing here touches CUDA until a task asks for a
model, which happens in the prefork child: the parent process never initialises CUDA, so
forking stays safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from savgan.common.context import Context
from savgan.common.models_store import ModelVersionInfo

if TYPE_CHECKING:
    from savgan.model.networks import VideoGenerator

MAX_CACHED_MODELS = 4


def resolve_device(setting: str) -> str:
    """``auto``: the first GPU when torch sees one, else the CPU."""
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class ModelCache:
    """A small LRU of loaded generators; a lock keeps the embedded mode's threads from loading twice."""

    def __init__(self, capacity: int = MAX_CACHED_MODELS) -> None:
        self.capacity = capacity
        self._models: OrderedDict[tuple[str, str, str], VideoGenerator] = OrderedDict()
        self._lock = threading.Lock()

    def generator(self, ctx: Context, info: ModelVersionInfo) -> VideoGenerator:
        from savgan.model import registry

        key = (info.owner, info.name, info.version)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            folder = ctx.models.fetch(info, ctx.settings.worker_model_cache_dir)
            generator = registry.load_generator(registry.resolve(str(folder)), resolve_device(ctx.settings.device))
            self._models[key] = generator
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return generator


models = ModelCache()
