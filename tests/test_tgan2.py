"""TGANv2 as a third family: levels, sub-sampling, training and resume, generation, registry and CLI."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from savgan.model import registry
from savgan.model.config import (
    PRESETS,
    ModelConfig,
    TGAN2Spec,
    TrainConfig,
    preset,
    preset_for,
    train_config_for,
)
from savgan.model.family import build_generator, family_of
from savgan.model.generate import generate_videos
from savgan.model.networks import VideoGenerator, sample_latents
from savgan.model.tgan2 import (
    MultiLevelCritic,
    TGAN2Generator,
    level_indices,
    real_levels,
)
from savgan.model.train import TrainHooks, Trainer

# 3 levels rendering 8x4x4, 4x8x8, 2x16x16; the LSTM's 4x4 maps are the first level's size.
TINY = ModelConfig(
    arch="tgan2",
    size=16,
    frames=8,
    z_dim=16,
    z_distribution="uniform",
    g_conv_dim=4,
    d_conv_dim=4,
    g_attention=(),
    d_attention=(),
    tgan2=TGAN2Spec(clstm_channels=16, clstm_layers=2, frame_strides=(2, 2), batch_strides=(2, 2)),
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_bank(count: int = 6, frames: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(count, 1, frames, 16, 16, generator=g) * 2 - 1


def tiny_train(**overrides) -> TrainConfig:
    settings = dict(steps=3, batch_size=4, n_critic=2, sample_every=100, checkpoint_every=2)
    return train_config_for("tgan2", **{**settings, **overrides})


def run(tmp_path, name: str, **overrides) -> Trainer:
    trainer = Trainer(TINY, tiny_train(**overrides), tiny_bank(), tmp_path / name, "random clips")
    trainer.train(TrainHooks(show_progress_bar=False))
    return trainer


# --- config ------------------------------------------------------------------------------------


def test_presets_round_trip_and_savgan_manifests_keep_their_keys():
    for name, config in PRESETS.items():
        assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config, name
    assert "tgan2" not in preset("cpu").to_dict() and "tgan2" not in preset("paper-3dgan").to_dict()
    assert list(preset("paper-tgan2").to_dict()["tgan2"]["frame_strides"]) == [2, 2, 2]
    bundled = json.loads((registry.BUNDLED_ROOT / "mmnist" / "manifest.json").read_text())
    assert json.loads(json.dumps(ModelConfig.from_dict(bundled["model_config"]).to_dict())) == bundled["model_config"]


def test_paper_and_cpu_presets_have_the_papers_clip_sizes():
    paper, cpu = preset("paper-tgan2"), preset("cpu-tgan2")
    assert (paper.channels, paper.frames, paper.size, paper.tgan2.levels) == (1, 32, 64, 4)
    assert (cpu.channels, cpu.frames, cpu.size, cpu.tgan2.levels) == (1, 16, 32, 3)
    assert paper.z_dim == 256 and paper.tgan2.clstm_channels == 512 and paper.d_conv_dim == 64


def test_arch_and_size_pick_the_preset_or_say_which_exist():
    assert preset_for("tgan2", "cpu") == preset("cpu-tgan2")
    assert preset_for("tgan2", "paper") == preset("paper-tgan2")
    assert preset_for("tgan2", "paper-tgan2") == preset("paper-tgan2")
    assert preset_for("savgan", "paper-full") == preset("paper-full")
    assert preset_for("3dgan", "cpu") == preset("cpu-3dgan")
    assert preset_for(None, "cpu") == preset("cpu")
    with pytest.raises(ValueError, match="tgan2 presets are cpu-tgan2, paper-tgan2"):
        preset_for("tgan2", "paper-full")
    with pytest.raises(ValueError, match="tgan2 presets"):
        preset_for("tgan2", "cpu-3dgan")


def test_bad_tgan2_configs_are_refused():
    with pytest.raises(ValueError, match="needs a tgan2 spec"):
        ModelConfig(arch="tgan2", g_attention=(), d_attention=())
    with pytest.raises(ValueError, match="only it may have one"):
        ModelConfig(tgan2=TGAN2Spec())
    with pytest.raises(ValueError, match="multiple of 8"):
        ModelConfig(arch="tgan2", frames=12, g_attention=(), d_attention=(), tgan2=TGAN2Spec())
    with pytest.raises(ValueError, match="first of 4 levels"):
        ModelConfig(arch="tgan2", size=16, frames=8, g_attention=(), d_attention=(), tgan2=TGAN2Spec())
    with pytest.raises(ValueError, match="arch"):
        ModelConfig(arch="tgan3")


def test_the_cli_knows_every_arch():
    from savgan.cli.main import ARCHS as CLI_ARCHS
    from savgan.model.config import ARCHS

    assert CLI_ARCHS == ARCHS


def test_each_family_has_its_own_training_defaults():
    tgan2, savgan = train_config_for("tgan2"), train_config_for("savgan")
    assert (tgan2.lr_g, tgan2.lr_d, tgan2.betas, tgan2.n_critic, tgan2.gp_lambda, tgan2.adam_eps) == (
        1e-4, 1e-4, (0.0, 0.9), 5, 10.0, 1e-8,
    )
    assert savgan == TrainConfig() and savgan.lr_d == 4e-4
    assert train_config_for("tgan2", lr_d=None, steps=7).lr_d == 1e-4


# --- networks: levels and sub-sampling ---------------------------------------------------------


def test_level_indices_match_hand_computed_ones():
    spec = TGAN2Spec()  # strides 2, 2, 2
    levels = level_indices(8, 32, spec, offsets=(1, 0, 1))
    assert levels[0] == (list(range(8)), list(range(32)))
    assert levels[1] == ([0, 2, 4, 6], list(range(1, 32, 2)))
    assert levels[2] == ([0, 4], [1, 5, 9, 13, 17, 21, 25, 29])
    assert levels[3] == ([0], [5, 13, 21, 29])
    uneven = TGAN2Spec(frame_strides=(4, 1), batch_strides=(1, 3))
    assert level_indices(7, 16, uneven, offsets=(3, 0)) == [
        (list(range(7)), list(range(16))),
        (list(range(7)), [3, 7, 11, 15]),
        ([0, 3, 6], [3, 7, 11, 15]),
    ]
    with pytest.raises(ValueError, match="outside"):
        level_indices(8, 32, spec, offsets=(2, 0, 0))


def test_real_levels_are_cut_and_pooled_like_the_fakes():
    spec = TINY.tgan2
    real = torch.arange(4 * 8 * 16 * 16, dtype=torch.float32).reshape(4, 1, 8, 16, 16)
    levels = real_levels(real, spec, offsets=(1, 0))
    assert [tuple(x.shape) for x in levels] == [(4, 1, 8, 4, 4), (2, 1, 4, 8, 8), (1, 1, 2, 16, 16)]
    assert torch.equal(levels[2][0, 0], real[0, 0, [1, 5]])
    assert torch.equal(levels[1][1, 0, 0], real[2, 0, 1].reshape(8, 2, 8, 2).mean(dim=(1, 3)))
    assert torch.allclose(levels[0][3, 0, 7], real[3, 0, 7].reshape(4, 4, 4, 4).mean(dim=(1, 3)))


def test_training_mode_gives_one_video_per_level():
    torch.manual_seed(0)
    g = TGAN2Generator(TINY).train()
    videos = g(sample_latents(TINY, 4))
    assert [tuple(v.shape) for v in videos] == [(4, 1, 8, 4, 4), (2, 1, 4, 8, 8), (1, 1, 2, 16, 16)]
    assert all(v.abs().max() <= 1 for v in videos)
    scores = MultiLevelCritic(TINY)(videos)
    assert [tuple(s.shape) for s in scores] == [(4,), (2,), (1,)]


@pytest.mark.parametrize(
    "name, shapes",
    [
        ("cpu-tgan2", [(8, 1, 16, 8, 8), (4, 1, 8, 16, 16), (2, 1, 4, 32, 32)]),
        ("paper-tgan2", [(8, 1, 32, 8, 8), (4, 1, 16, 16, 16), (2, 1, 8, 32, 32), (1, 1, 4, 64, 64)]),
    ],
)
def test_preset_level_shapes_and_dense_output(name, shapes):
    """The presets' levels; widths narrowed (shapes do not depend on them) to keep the test fast."""
    config = preset(name)
    config = replace(config, g_conv_dim=2, tgan2=replace(config.tgan2, clstm_channels=8))
    torch.manual_seed(0)
    g = TGAN2Generator(config).train()
    with torch.no_grad():
        assert [tuple(v.shape) for v in g(sample_latents(config, 8))] == shapes
        g.eval()
        assert tuple(g(sample_latents(config, 1)).shape) == (1, 1, config.frames, config.size, config.size)


def test_sparse_levels_select_the_frames_and_videos_of_level_indices():
    """With BatchNorm on running statistics every frame is decoded alone: the last level's
    frames must then be exactly the dense video's frames at the listed indices."""
    torch.manual_seed(1)
    g = TGAN2Generator(TINY).eval()
    z = sample_latents(TINY, 4)
    with torch.no_grad():
        dense = g(z)
        last = g.levels_forward(z, offsets=(1, 1))[-1]
    videos, frames = level_indices(4, 8, TINY.tgan2, (1, 1))[-1]
    assert (videos, frames) == ([0], [3, 7])
    assert torch.allclose(last, dense[videos][:, :, frames], atol=1e-6)


def test_dense_generation_at_full_size_for_any_length():
    torch.manual_seed(0)
    g = TGAN2Generator(TINY).eval()
    z = sample_latents(TINY, 2, steps=3)  # (3 + 1) * 4 frames
    with torch.no_grad():
        assert tuple(g(z).shape) == (2, 1, 16, 16, 16)
        assert tuple(g(z, frames=1).shape) == (2, 1, 1, 16, 16)
        assert tuple(g(z[..., :1]).shape) == (2, 1, 8, 16, 16)


# --- training ----------------------------------------------------------------------------------


def test_a_few_training_steps_give_finite_losses_and_a_complete_checkpoint(tmp_path):
    trainer = run(tmp_path, "r", steps=2, sample_every=2)
    assert trainer.image_critic is None and set(trainer.critics) == {"DV"}
    losses = trainer.latest
    assert {"wasserstein_video", "gp_video", "loss_generator", "wasserstein_level3", "gp_level1"} <= set(losses)
    assert all(np.isfinite(v) for v in losses.values())
    folder = tmp_path / "r"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert ModelConfig.from_dict(manifest["model_config"]) == TINY
    assert manifest["train_config"]["lr_d"] == 1e-4 and manifest["train_config"]["adam_eps"] == 1e-8
    assert set(manifest["optimizers"]) == {"opt_g", "opt_dv"}
    assert manifest["optimizers"]["opt_dv"]["param_groups"][0]["eps"] == 1e-8
    state = load_file(str(folder / "training_state.safetensors"))
    assert {k.split(".")[0] for k in state} == {"G", "DV", "opt_g", "opt_dv"}
    assert set(load_file(str(folder / "generator.safetensors"))) == set(trainer.generator.state_dict())
    assert (folder / "samples.png").stat().st_size > 0 and (folder / "losses.png").stat().st_size > 0


def test_training_is_deterministic_and_resumes_bit_exactly(tmp_path):
    straight = run(tmp_path, "straight", steps=4)
    again = run(tmp_path, "again", steps=4)
    for key, value in straight.generator.state_dict().items():
        assert torch.equal(value, again.generator.state_dict()[key]), key
    run(tmp_path, "split", steps=2)
    resumed = Trainer.resume(tmp_path / "split", tiny_bank(), steps=4)
    assert resumed.step == 2
    resumed.train(TrainHooks(show_progress_bar=False))
    for mine, theirs in ((resumed.generator, straight.generator), (resumed.video_critic, straight.video_critic)):
        for key, value in theirs.state_dict().items():
            assert torch.equal(value, mine.state_dict()[key]), key
    log = (tmp_path / "split" / "log.jsonl").read_text()
    assert log == (tmp_path / "straight" / "log.jsonl").read_text()


def test_generator_gets_the_critic_gradient_of_every_level(tmp_path):
    trainer = Trainer(TINY, tiny_train(steps=1), tiny_bank(), tmp_path / "g", "random")
    before = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    trainer.iteration()
    changed = {k for k, v in trainer.generator.state_dict().items() if not torch.equal(v, before[k])}
    for k in range(3):
        assert any(key.startswith(f"renders.{k}.conv") for key in changed)


# --- generation, registry, CLI -----------------------------------------------------------------


def test_family_factory_builds_each_arch():
    assert isinstance(build_generator(preset("cpu")), VideoGenerator)
    assert isinstance(build_generator(TINY), TGAN2Generator)
    assert family_of(preset("cpu-3dgan")).iteration is None and family_of(TINY).iteration is not None


def test_generation_is_reproducible_and_longer_videos_continue_shorter_ones():
    torch.manual_seed(0)
    g = TGAN2Generator(TINY)
    a = generate_videos(g, seed=3, frames=8, count=3)
    b = generate_videos(g, seed=3, frames=8, count=1)
    c = generate_videos(g, seed=4, frames=8, count=1)
    assert a.shape == (3, 8, 16, 16)
    assert np.allclose(a[0], b[0], atol=1e-6) and not np.allclose(a[0], c[0]) and not np.allclose(a[0], a[1])
    assert np.array_equal(b, generate_videos(g, seed=3, frames=8, count=1))
    for frames in (1, 5, 13):
        assert generate_videos(g, seed=3, frames=frames).shape == (1, frames, 16, 16)
    long = generate_videos(g, seed=3, frames=40)
    assert np.allclose(long[0, :8], b[0], atol=1e-5)


def test_a_tgan2_run_folder_is_a_model_for_the_registry_and_the_cli(tmp_path):
    from savgan.cli.main import main

    trainer = run(tmp_path, "run", steps=1)
    record = registry.resolve(str(tmp_path / "run"))
    assert record.summary()["arch"] == "tgan2" and record.summary()["clip"] == "8x16x16"
    loaded = registry.load_generator(record)
    assert isinstance(loaded, TGAN2Generator) and not loaded.training
    for key, value in trainer.generator.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    out = tmp_path / "videos"
    argv = ["generate", "--model", str(tmp_path / "run"), "--frames", "20", "--count", "2", "--format", "ome-tiff"]
    assert main([*argv, "--out", str(out)]) == 0
    assert len(list(out.glob("*.ome.tif"))) == 2
    assert main(["generate", "--model", "init:cpu-tgan2", "--out", str(tmp_path / "init")]) == 0


def test_cli_train_arch_tgan2_uses_its_preset_and_defaults(tmp_path, monkeypatch):
    from savgan.cli.main import main
    from savgan.model.data import sources

    class Data:
        bank = torch.rand(6, 1, 24, 32, 32) * 2 - 1
        description, physical, swaps = "random", {}, None

    monkeypatch.setattr(sources, "load_training_data", lambda *a, **k: Data())
    run_dir = tmp_path / "run"
    argv = ["train", "--data", "mmnist", "--arch", "tgan2", "--steps", "1", "--batch-size", "2", "--n-critic", "1"]
    assert main([*argv, "--out", str(run_dir)]) == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert ModelConfig.from_dict(manifest["model_config"]) == preset("cpu-tgan2")
    train = manifest["train_config"]
    assert (train["lr_g"], train["lr_d"], train["batch_size"], train["n_critic"]) == (1e-4, 1e-4, 2, 1)
    assert main([*argv, "--steps", "2", "--resume", "--out", str(run_dir)]) == 0
    assert json.loads((run_dir / "manifest.json").read_text())["step"] == 2
    bad = ["train", "--data", "mmnist", "--arch", "tgan2", "--preset", "paper-full", "--out", str(tmp_path / "x")]
    assert main(bad) == 2
