"""The files of a model or training-run folder, and where bundled models live.

One place for these names, and torch-free: the CLI, the trainer, the worker and the API
image (which has no torch) all read and write the same folders.
"""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.json"
GENERATOR_WEIGHTS = "generator.safetensors"
TRAINING_STATE = "training_state.safetensors"
# The critics' weights in bf16 (no optimiser state): what a model folder needs to be
# fine-tuned with trained critics (--base), at a third of the training state's size.
CRITIC_WEIGHTS = "critics.safetensors"
SAMPLES = "samples.png"
LOSSES = "losses.png"
LOG = "log.jsonl"

# What a published model version carries (the manifest goes last, see common/models_store.py).
VERSION_FILES = (GENERATOR_WEIGHTS, TRAINING_STATE, SAMPLES, LOSSES)
# What a training run checkpoints besides its manifest.
RUN_FILES = (TRAINING_STATE, GENERATOR_WEIGHTS, CRITIC_WEIGHTS, LOG, SAMPLES, LOSSES)
# What a model folder (bundled or installed) carries: a generator to sample, critics to fine-tune.
MODEL_FILES = (MANIFEST, GENERATOR_WEIGHTS, CRITIC_WEIGHTS, SAMPLES, LOSSES)

BUNDLED_ROOT = Path(__file__).parent / "bundled"
