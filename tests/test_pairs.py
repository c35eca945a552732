"""The content critic D_P on (first frame, later frame) pairs: pairs, training, checkpoints, balance."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from savgan.model import checkpoint as ckpt
from savgan.model.config import AttentionSpec, preset
from savgan.model.networks import SiamesePairCritic
from savgan.model.pairs import PAIR_PREFIX, build_pair_critic, frame_pairs, later_frames
from savgan.model.train import TrainHooks, Trainer
from tests.test_train import TINY, tiny_bank, tiny_config


def _pair_trainer(tmp_path, name, swaps=True, **overrides):
    bank = tiny_bank()
    config = tiny_config(pair_lambda=5.0, **overrides)
    return Trainer(TINY, config, bank, tmp_path / name, "random clips", swaps=-bank.flip(-1) if swaps else None)


def test_pairs_stack_the_first_frame_with_the_later_one():
    videos = torch.randn(3, 2, 8, 4, 4)
    later = torch.tensor([4, 7, 5])
    pairs = frame_pairs(videos, later)
    assert pairs.shape == (3, 4, 4, 4)
    for b in range(3):
        assert torch.equal(pairs[b, :2], videos[b, :, 0]) and torch.equal(pairs[b, 2:], videos[b, :, later[b]])
    other = torch.randn_like(videos)
    negatives = frame_pairs(other, later, first_from=videos)
    assert torch.equal(negatives[:, :2], videos[:, :, 0]) and torch.equal(negatives[1, 2:], other[1, :, 7])


def test_later_frames_lie_in_the_second_half():
    torch.manual_seed(0)
    picks = later_frames(4000, 16)
    assert picks.min() == 8 and picks.max() == 15
    assert set(later_frames(200, 3).tolist()) == {1, 2}


@pytest.mark.parametrize("penalty_step", ["joint", "separate"])
def test_the_pair_critic_trains_is_logged_and_checkpointed(tmp_path, penalty_step):
    trainer = _pair_trainer(tmp_path, penalty_step, penalty_step=penalty_step)
    before = [p.detach().clone() for p in trainer.pair_critic.parameters()]
    trainer.train(TrainHooks(show_progress_bar=False))
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.pair_critic.parameters()))
    log = [json.loads(line) for line in (tmp_path / penalty_step / "log.jsonl").read_text().splitlines()]
    assert all({"wasserstein_pair", "gp_pair", "identity_gap_pair"} <= set(row) for row in log)
    state = ckpt.load_tensors(tmp_path / penalty_step / ckpt.TRAINING_STATE)
    assert ckpt.has_prefix(state, PAIR_PREFIX) and ckpt.has_prefix(state, "opt_dp")
    assert ckpt.has_prefix(ckpt.load_tensors(tmp_path / penalty_step / ckpt.CRITIC_WEIGHTS), PAIR_PREFIX)


def test_without_swaps_the_pair_critic_still_trains_real_against_fake(tmp_path):
    losses = _pair_trainer(tmp_path, "recordings", swaps=False).iteration()
    assert "wasserstein_pair" in losses and "identity_gap_pair" not in losses
    assert "identity_gap_video" not in losses  # identity_weight 0: D_V gets no negatives


def test_a_resumed_pair_run_continues_exactly(tmp_path):
    straight = _pair_trainer(tmp_path, "straight")
    straight.train(TrainHooks(show_progress_bar=False))
    half = _pair_trainer(tmp_path, "half", steps=2)
    half.train(TrainHooks(show_progress_bar=False))
    bank = tiny_bank()
    resumed = Trainer.resume(tmp_path / "half", bank, swaps=-bank.flip(-1), steps=3)
    resumed.train(TrainHooks(show_progress_bar=False))
    for a, b in zip(straight.pair_critic.parameters(), resumed.pair_critic.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(straight.generator.parameters(), resumed.generator.parameters()):
        assert torch.equal(a, b)


def test_fine_tuning_a_base_without_a_pair_critic_starts_a_fresh_one(tmp_path):
    base = Trainer(TINY, tiny_config(steps=1), tiny_bank(), tmp_path / "base", "random clips")
    base.train(TrainHooks(show_progress_bar=False))
    tuned = _pair_trainer(tmp_path, "tuned")
    fresh = [p.detach().clone() for p in tuned.pair_critic.parameters()]
    tuned.load_weights(tmp_path / "base", "base")
    assert all(torch.equal(a, b) for a, b in zip(fresh, tuned.pair_critic.parameters()))
    for a, b in zip(base.video_critic.parameters(), tuned.video_critic.parameters()):
        assert torch.equal(a, b)
    again = _pair_trainer(tmp_path, "again")
    tuned.train(TrainHooks(show_progress_bar=False))
    again.load_weights(tmp_path / "tuned", "tuned")  # a base that has D_P hands it on
    for a, b in zip(tuned.pair_critic.parameters(), again.pair_critic.parameters()):
        assert torch.equal(a, b)


def test_measured_balance_includes_the_pair_term_and_sums_to_the_same_gradient(tmp_path):
    exact = replace(TINY, g_attention=(AttentionSpec("full"),))
    bank = tiny_bank()
    trainers = [
        Trainer(exact, tiny_config(pair_lambda=5.0, balance_every=every), bank, tmp_path / str(every), "random")
        for every in (1, 0)
    ]
    losses = trainers[0].iteration()
    trainers[1].iteration()
    assert losses["grad_norm_pair"] > 0 and "pair_along_video" in losses and "grad_cosine" in losses
    for a, b in zip(trainers[0].generator.parameters(), trainers[1].generator.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-5)


def _swap_gap_after_training(tmp_path, bank, swaps, kind="stacked"):
    """D_P's real-minus-swap score gap on (frame 0, frame 7) pairs in real-score std, after 100 updates."""
    config = tiny_config(pair_lambda=1.0, pair_critic=kind, batch_size=16, lr_d=1e-3)
    trainer = Trainer(TINY, config, bank, tmp_path / kind, "patterns", swaps=swaps)
    torch.manual_seed(0)
    for _ in range(100):
        trainer._pair_update(bank, torch.rand_like(bank) * 2 - 1, swaps)
    later = torch.full((bank.shape[0],), 7)
    with torch.no_grad():
        real = trainer.pair_critic(frame_pairs(bank, later))
        swapped = trainer.pair_critic(frame_pairs(swaps, later, first_from=bank))
    return float((real.mean() - swapped.mean()) / real.std())


def test_the_pair_critic_learns_to_tell_a_swapped_later_frame(tmp_path):
    """Clips that keep one pattern for all their frames, swaps that show another clip's pattern later:
    after some updates D_P scores real pairs above swapped ones by more than their spread."""
    g = torch.Generator().manual_seed(1)
    patterns = torch.rand(16, 1, 1, 16, 16, generator=g) * 2 - 1
    bank = patterns.expand(-1, -1, 8, -1, -1).contiguous()
    assert _swap_gap_after_training(tmp_path, bank, bank.roll(1, dims=0)) > 2


def _moved_swap_gap(tmp_path, kind):
    """The gap on clips whose pattern moves 6 px by frame 7, and swaps that show another clip's
    pattern at that same place."""
    g = torch.Generator().manual_seed(1)
    patterns = torch.zeros(16, 1, 16, 16)
    patterns[:, :, 4:10, 2:8] = torch.rand(16, 1, 6, 6, generator=g) * 2 - 1
    bank = torch.stack([patterns.roll(6 * t // 7, dims=-1) for t in range(8)], dim=2)
    return _swap_gap_after_training(tmp_path, bank, bank.roll(1, dims=0), kind)


def test_the_siamese_pair_critic_tells_a_swap_of_content_that_moved_where_the_stacked_one_cannot(tmp_path):
    """Why the Siamese D_P: content that moved is compared as a descriptor, not location by location
    (measured 0.96 against 0.02 real-score std)."""
    siamese, stacked = _moved_swap_gap(tmp_path, "siamese"), _moved_swap_gap(tmp_path, "stacked")
    assert siamese > 0.5 and siamese > 4 * abs(stacked), (siamese, stacked)


def test_the_siamese_critic_encodes_each_frame_of_a_pair_alone(tmp_path):
    critic = build_pair_critic(TINY, "siamese")
    assert isinstance(critic, SiamesePairCritic)
    pairs = torch.rand(3, 2, 16, 16) * 2 - 1
    scores = critic(pairs)
    assert scores.shape == (3,)
    first, later = critic.describe(pairs[:, :1]), critic.describe(pairs[:, 1:])
    expected = critic.head(torch.cat([first, later, (first - later).abs(), first * later], dim=1)).squeeze(1)
    assert torch.allclose(scores, expected, atol=1e-6)
    changed = pairs.clone()
    changed[0, 1] = -changed[0, 1]
    moved = critic(changed)
    assert not torch.isclose(moved[0], scores[0]) and torch.allclose(moved[1:], scores[1:], atol=1e-6)
    with pytest.raises(ValueError, match="stacked, siamese"):
        build_pair_critic(TINY, "cnn")
    with pytest.raises(ValueError, match="pair_critic"):
        tiny_config(pair_critic="cnn")


def test_fine_tuning_from_a_base_with_the_other_pair_critic_starts_a_fresh_one(tmp_path):
    base = _pair_trainer(tmp_path, "stacked", steps=1)
    base.train(TrainHooks(show_progress_bar=False))
    tuned = _pair_trainer(tmp_path, "siamese", pair_critic="siamese")
    fresh = [p.detach().clone() for p in tuned.pair_critic.parameters()]
    tuned.load_weights(tmp_path / "stacked", "stacked")
    assert all(torch.equal(a, b) for a, b in zip(fresh, tuned.pair_critic.parameters()))
    for a, b in zip(base.video_critic.parameters(), tuned.video_critic.parameters()):
        assert torch.equal(a, b)


def test_only_savgan_families_train_a_pair_critic(tmp_path):
    tgan2 = preset("cpu-tgan2")
    with pytest.raises(ValueError, match="content critic"):
        bank = torch.zeros(2, 1, tgan2.frames, tgan2.size, tgan2.size)
        Trainer(tgan2, tiny_config(pair_lambda=1.0), bank, tmp_path / "t", "random")


@pytest.mark.parametrize("kind", ["stacked", "siamese"])
def test_the_probe_scores_the_pair_critic_when_a_run_has_one(tmp_path, kind):
    from savgan.model.critic_probe import IDENTITY_KIND, PAIR_KINDS, probe

    trainer = _pair_trainer(tmp_path, "run", steps=1, pair_critic=kind)
    trainer.train(TrainHooks(show_progress_bar=False))
    clips = np.random.default_rng(0).uniform(-1, 1, (6, 8, 16, 16)).astype(np.float32)
    swapped = clips[:3].copy()
    swapped[:, 4:] = clips[3:, 4:]
    report = probe(tmp_path / "run", clips[:3], clips[3:], swapped=swapped)
    pairs = {s.kind: s for s in report.pair_scores}
    assert list(pairs) == list(PAIR_KINDS) and pairs["real"].drop == 0.0
    # the swapped clip's pair is (its own first frame, the other clip's last): "other real"'s pair exactly
    assert pairs[IDENTITY_KIND].mean == pytest.approx(pairs["other real"].mean)
    plain = Trainer(TINY, tiny_config(steps=1), tiny_bank(), tmp_path / "plain", "random clips")
    plain.train(TrainHooks(show_progress_bar=False))
    assert probe(tmp_path / "plain", clips[:3], clips[3:]).pair_scores == []
