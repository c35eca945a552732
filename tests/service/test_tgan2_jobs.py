"""A TGANv2 model goes through the service's jobs like any other: train, publish, generate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile

from savgan.common.context import build_context
from savgan.common.jobs import new_job
from savgan.common.requests import GenerateRequest, TrainRequest, Upload
from savgan.common.settings import Settings
from savgan.worker.jobs_runner import run_generate, run_train


def test_a_tgan2_training_job_publishes_a_model_that_generate_jobs_use(
    settings_local: Settings, tmp_path: Path, one_torch_thread
):
    ctx = build_context(settings_local)
    t, y, x = np.mgrid[0:30, 0:64, 0:64]
    video = 100 + 1000 * np.exp(-((x - 10 - t) ** 2 + (y - 32) ** 2) / 40.0)
    tifffile.imwrite(tmp_path / "cells.tif", video.astype(np.uint16))
    ctx.storage.put_file("uploads/cells.tif", tmp_path / "cells.tif")
    size = (tmp_path / "cells.tif").stat().st_size
    upload = Upload(key="uploads/cells.tif", filename="cells.tif", bytes=size, format="tiff")
    train = TrainRequest(
        name="cells-tgan2", preset="cpu-tgan2", steps=2, batch_size=2, n_critic=1, patch_method="grid",
        checkpoint_every=2, uploads=[upload],
    )
    record = new_job("alice", "train", train.model_dump(mode="json"))
    ctx.jobs.create(record)
    messages = []
    assert run_train(ctx, record.id, lambda p: messages.append(p.message)) == "succeeded"
    assert any("W video" in m and "G loss" in m and "W image" not in m for m in messages if m)
    version = ctx.models.resolve("alice", "cells-tgan2")
    manifest = json.loads((ctx.models.fetch(version, tmp_path / "cache") / "manifest.json").read_text())
    assert manifest["model_config"]["arch"] == "tgan2"
    assert manifest["train_config"]["lr_d"] == 1e-4, "the family's default when the request leaves lr_d out"

    request = GenerateRequest(model="cells-tgan2", frames=20, count=2, formats=["ome-tiff"])
    job = new_job("alice", "generate", request.model_dump(mode="json"))
    ctx.jobs.create(job)
    assert run_generate(ctx, job.id) == "succeeded", ctx.jobs.get(job.id).error
    tiff = next(r for r in ctx.jobs.get(job.id).results if r.format == "ome-tiff")
    with tifffile.TiffFile(ctx.storage.path(tiff.key)) as tif:
        assert tif.series[0].shape == (20, 32, 32)
