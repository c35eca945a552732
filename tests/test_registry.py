"""Model names resolve to folders; installs are versioned; weights load without pickle."""

import json

import pytest
import torch

from savgan.model import registry
from savgan.model.checkpoint import GENERATOR_WEIGHTS, MANIFEST, save_tensors
from savgan.model.config import preset
from savgan.model.networks import VideoGenerator


def make_model_folder(folder, seed: int = 0):
    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    generator = VideoGenerator(preset("cpu"))
    save_tensors(folder / GENERATOR_WEIGHTS, generator.state_dict())
    manifest = {"model_config": preset("cpu").to_dict(), "step": 7, "data": "test clips"}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return generator


def test_folder_path_resolves_and_loads_the_same_weights(tmp_path):
    original = make_model_folder(tmp_path / "run")
    record = registry.resolve(str(tmp_path / "run"))
    assert record.source == "path" and record.summary()["step"] == 7
    loaded = registry.load_generator(record)
    for key, value in original.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    assert not loaded.training


def test_install_creates_increasing_versions_and_name_resolves_to_the_newest(tmp_path):
    root = tmp_path / "models"
    make_model_folder(tmp_path / "a", seed=1)
    make_model_folder(tmp_path / "b", seed=2)
    first = registry.install(tmp_path / "a", "cells", root)
    second = registry.install(tmp_path / "b", "cells", root)
    assert (first.version, second.version) == ("1", "2")
    assert registry.resolve("cells", root).version == "2"
    assert registry.resolve("cells:1", root).path == root / "cells" / "1"
    with pytest.raises(registry.ModelNotFoundError, match="no version '9'"):
        registry.resolve("cells:9", root)
    names = [(r.name, r.version) for r in registry.list_models(root) if r.source == "installed"]
    assert names == [("cells", "1"), ("cells", "2")]
    assert not list((root / "cells").glob(".*partial"))


def test_bad_names_and_unknown_models_are_refused(tmp_path):
    make_model_folder(tmp_path / "a")
    with pytest.raises(ValueError, match="must be 1-64 characters"):
        registry.install(tmp_path / "a", "../escape", tmp_path / "models")
    with pytest.raises(registry.ModelNotFoundError, match="init:<preset>"):
        registry.resolve("ghost", tmp_path / "models")


def test_weights_that_do_not_match_the_manifest_are_reported(tmp_path):
    make_model_folder(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    manifest["model_config"] = preset("paper").to_dict()
    (tmp_path / "m" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="do not match its manifest"):
        registry.load_generator(registry.resolve(str(tmp_path / "m")))


def test_init_models_are_deterministic_and_untrained():
    record = registry.resolve("init:cpu")
    assert record.source == "init" and record.manifest["step"] == 0
    a, b = registry.load_generator(record), registry.load_generator(record)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
