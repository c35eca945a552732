"""The coherent recipe: shared content code, identity-only negatives, the critics' balance, the identity metric."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from savgan.model import checkpoint as ckpt
from savgan.model.config import (
    RECIPES,
    AttentionSpec,
    ModelConfig,
    TrainConfig,
    preset,
    train_config_for,
    with_recipe,
)
from savgan.model.critic_probe import IDENTITY_KIND, identity_swapped_clips, probe
from savgan.model.data.mmnist import MovingMNIST
from savgan.model.identity import identity_negatives, negatives_per_batch, switch_frames
from savgan.model.metrics.identity import end_labels, identity_persistence
from savgan.model.networks import SharedContentSeed, VideoGenerator, sample_latents
from savgan.model.train import TrainHooks, Trainer, shared_content_weights
from tests.test_train import TINY, tiny_bank, tiny_config

SHARED = replace(TINY, content_code="shared")


def test_shared_seed_gives_both_slots_of_a_one_step_clip_the_same_content():
    """Without the phase embedding both slots are exactly P z; the phase alone tells them apart."""
    seed = SharedContentSeed(z_dim=5, channels=3)
    z = torch.randn(2, 5, 1, 1, 1)
    with torch.no_grad():
        out = seed(z)
        assert out.shape == (2, 3, 2, 4, 4)
        assert torch.allclose(out[:, :, 0], out[:, :, 1])
        seed.phase[:, :, 1] += 1.0
        moved = seed(z)
    assert torch.allclose(moved[:, :, 1] - moved[:, :, 0], torch.ones(()))


def test_shared_seed_overlaps_latent_steps_like_a_transposed_convolution():
    """Slot t of a sequence sums P z_t and P z_(t-1), as the paper's layer would with tied taps."""
    seed = SharedContentSeed(z_dim=4, channels=2)
    z = torch.randn(1, 4, 3, 1, 1)
    with torch.no_grad():
        out = seed(z)
        single = [seed(z[:, :, i : i + 1]) for i in range(3)]
    assert out.shape[2] == 4
    assert torch.allclose(out[:, :, 1], single[0][:, :, 1] + single[1][:, :, 0] - seed.bias.view(1, -1, 1, 1), atol=1e-6)


def test_shared_generator_makes_any_length():
    generator = VideoGenerator(SHARED)
    assert generator(sample_latents(SHARED, 2)).shape == (2, 1, 8, 16, 16)
    assert generator(sample_latents(SHARED, 1, steps=4)).shape == (1, 1, 20, 16, 16)


def test_paper_weights_convert_to_a_shared_first_layer_with_the_mean_of_the_taps():
    paper = VideoGenerator(TINY)
    converted = shared_content_weights(paper.state_dict())
    shared = VideoGenerator(SHARED)
    shared.load_state_dict(converted)
    taps = paper.state_dict()["seed.0.weight"]
    assert torch.allclose(shared.seed[0].content[:, :, 0], (taps[:, :, 0] + taps[:, :, 1]) / 2)
    assert shared_content_weights(converted) is converted


def test_recipes_keep_the_paper_unchanged_and_name_the_coherent_one():
    assert train_config_for("savgan", "paper") == TrainConfig()
    coherent = train_config_for("savgan", "coherent")
    assert (coherent.identity_weight, coherent.image_lambda) == (0.5, 5.0)
    assert train_config_for("savgan", "coherent", image_lambda=20.0).image_lambda == 20.0
    assert with_recipe(preset("cpu"), "coherent").content_code == "shared"
    assert with_recipe(preset("cpu"), "paper") == preset("cpu")
    assert with_recipe(preset("cpu-tgan2"), "coherent") == preset("cpu-tgan2")
    assert train_config_for("tgan2", "coherent").identity_weight == 0.0
    assert "content_code" not in preset("cpu").to_dict()
    assert ModelConfig.from_dict(with_recipe(preset("cpu"), "coherent").to_dict()).content_code == "shared"
    assert set(RECIPES) == {"paper", "coherent"}
    with pytest.raises(ValueError, match="unknown recipe"):
        train_config_for("savgan", "fancy")


def test_identity_negatives_keep_the_start_and_take_the_swap_from_the_switch_frame():
    clips = torch.zeros(2, 1, 6, 2, 2)
    swaps = torch.ones(2, 1, 6, 2, 2)
    out = identity_negatives(clips, swaps, torch.tensor([2, 4]))
    assert out[0, 0, :, 0, 0].tolist() == [0, 0, 1, 1, 1, 1]
    assert out[1, 0, :, 0, 0].tolist() == [0, 0, 0, 0, 1, 1]
    torch.manual_seed(0)
    switch = switch_frames(1000, 16)
    assert int(switch.min()) == 4 and int(switch.max()) == 12
    assert negatives_per_batch(8) == 2 and negatives_per_batch(2) == 1


def test_mmnist_identity_swap_is_the_same_trajectory_with_a_digit_of_another_label():
    dataset = MovingMNIST("train", length=8, frame_size=32, num_sequences=20, seed=3)
    for index in range(20):
        spec, swap = dataset.spec(index), dataset.identity_swap(index)
        assert swap.label != spec.label
        assert swap.top == spec.top and np.array_equal(swap.left, spec.left)
    swaps = dataset.identity_swaps()
    assert swaps.shape == (20, 1, 8, 32, 32)
    assert torch.equal(swaps[5, 0], torch.from_numpy(dataset.render([dataset.identity_swap(5)])[0]))
    assert not torch.equal(swaps[5], dataset[5])


def _identity_trainer(tmp_path, name, **overrides):
    bank = tiny_bank()
    swaps = -bank.flip(-1)
    config = tiny_config(identity_weight=0.5, **overrides)
    return Trainer(TINY, config, bank, tmp_path / name, "random clips", swaps=swaps)


@pytest.mark.parametrize("penalty_step", ["joint", "separate"])
def test_identity_negatives_train_and_are_logged(tmp_path, penalty_step):
    trainer = _identity_trainer(tmp_path, penalty_step, penalty_step=penalty_step)
    assert trainer.identity_negatives_on
    trainer.train(TrainHooks(show_progress_bar=False))
    log = [json.loads(line) for line in (tmp_path / penalty_step / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["identity_gap_video"]) for r in log)
    assert json.loads((tmp_path / penalty_step / "manifest.json").read_text())["identity_negatives"] is True


def test_identity_negatives_change_what_the_video_critic_learns(tmp_path):
    with_negatives = _identity_trainer(tmp_path, "on")
    without = Trainer(TINY, tiny_config(), tiny_bank(), tmp_path / "off", "random clips")
    assert not without.identity_negatives_on
    with_negatives.iteration(), without.iteration()
    changed = [
        not torch.equal(a, b)
        for a, b in zip(with_negatives.video_critic.parameters(), without.video_critic.parameters())
    ]
    assert any(changed)


def test_identity_weight_without_swaps_trains_without_negatives(tmp_path):
    trainer = Trainer(TINY, tiny_config(identity_weight=0.5), tiny_bank(), tmp_path / "r", "recordings")
    assert not trainer.identity_negatives_on
    assert "identity_gap_video" not in trainer.iteration()


def test_swaps_must_match_the_bank(tmp_path):
    with pytest.raises(ValueError, match="identity swaps"):
        Trainer(TINY, tiny_config(), tiny_bank(), tmp_path / "x", "random", swaps=tiny_bank(count=3))


def test_balance_is_measured_on_schedule_and_sums_to_the_generators_gradient(tmp_path):
    """The split backward gives G the same gradient as one backward of the summed loss."""
    exact = replace(TINY, g_attention=(AttentionSpec("full"),))
    measured = Trainer(exact, tiny_config(balance_every=1), tiny_bank(), tmp_path / "m", "random")
    plain = Trainer(exact, tiny_config(balance_every=0), tiny_bank(), tmp_path / "p", "random")
    losses = measured.iteration()
    assert "grad_cosine" not in plain.iteration()
    assert -1.0 <= losses["grad_cosine"] <= 1.0
    assert losses["grad_norm_video"] > 0 and losses["grad_norm_image"] > 0
    assert losses["image_along_video"] == pytest.approx(
        losses["grad_cosine"] * losses["grad_norm_image"] / losses["grad_norm_video"]
    )
    for a, b in zip(measured.generator.parameters(), plain.generator.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-5)  # biases before instance norm: float noise


def test_identity_persistence_counts_clips_whose_ends_show_the_same_digit():
    labels = np.array([[3, 3, 3, 3, 5, 3, 3, 3], [1, 1, 1, 1, 2, 2, 2, 2], [4, 7, 4, 4, 4, 4, 7, 7]])
    first, last = end_labels(labels)
    assert first.tolist() == [3, 1, 4] and last.tolist() == [3, 2, 7]
    result = identity_persistence(labels)
    assert result.share == pytest.approx(1 / 3)
    assert result.standard_error == pytest.approx(np.sqrt((1 / 3) * (2 / 3) / 3))
    with pytest.raises(ValueError, match="per-frame labels"):
        identity_persistence(np.zeros(4))


def test_identity_swapped_probe_clips_switch_content_at_the_middle():
    real, swapped = identity_swapped_clips("mmnist", 4, 8, 32)
    assert real.shape == swapped.shape == (4, 8, 32, 32)
    assert np.array_equal(real[:, :4], swapped[:, :4])
    assert not np.array_equal(real[:, 4:], swapped[:, 4:])


def test_probe_reports_the_identity_kind_when_given_swaps(tmp_path):
    trainer = _identity_trainer(tmp_path, "run", steps=2)
    trainer.train(TrainHooks(show_progress_bar=False))
    clips = np.random.default_rng(0).uniform(-1, 1, (6, 8, 16, 16)).astype(np.float32)
    report = probe(tmp_path / "run", clips[:3], clips[3:], swapped=clips[3:])
    kinds = {s.kind: s for s in report.scores}
    assert kinds[IDENTITY_KIND].mean == pytest.approx(kinds["other real"].mean)
    with pytest.raises(ValueError, match="identity-swapped"):
        probe(tmp_path / "run", clips[:3], clips[3:], swapped=clips[:2])
    assert ckpt.read_json(tmp_path / "run" / "manifest.json")["identity_negatives"] is True
