"""Our training step against the plain reference-structured one (bench/plain_reference.py).

The benchmark compares their speed; these tests make sure it compares two implementations
of the same objective: same losses on the same seed when the attention is exact.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

from savgan.model.attention import SelfAttention3d
from savgan.model.config import AttentionSpec, ModelConfig, TrainConfig
from savgan.model.train import Trainer

_SPEC = importlib.util.spec_from_file_location(
    "plain_reference", Path(__file__).resolve().parents[1] / "bench" / "plain_reference.py"
)
plain_reference = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(plain_reference)

EXACT = ModelConfig(
    size=16,
    frames=8,
    g_conv_dim=8,
    d_conv_dim=8,
    image_critic_dim=8,
    g_attention=(AttentionSpec("full"),),
    d_attention=(AttentionSpec("full"),),
)


def trainers(tmp_path, **overrides) -> tuple[Trainer, "plain_reference.PlainReferenceTrainer"]:
    bank = torch.rand(6, 1, 8, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    config = TrainConfig(**{"batch_size": 2, "n_critic": 2, **overrides})
    ours = Trainer(EXACT, config, bank, tmp_path / "run", "random clips")
    return ours, plain_reference.PlainReferenceTrainer(ours)


# Two Adam steps per critic update amplify float rounding more (an early Adam step moves each
# weight by about lr whatever its gradient's size): 4e-6 apart after one iteration, 2e-4 after three.
@pytest.mark.parametrize(("penalty_step", "rel"), [("joint", 1e-4), ("separate", 1e-3)])
def test_same_losses_on_the_same_seed_with_exact_attention(tmp_path, penalty_step, rel):
    ours, plain = trainers(tmp_path, penalty_step=penalty_step)
    for _ in range(3):
        expected = plain.iteration()
        got = ours.iteration()
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=rel, abs=1e-5), key


def test_a_different_penalty_weight_changes_the_losses(tmp_path):
    """The comparison above is sharp enough to see the objective change."""
    ours, _ = trainers(tmp_path)
    _, plain = trainers(tmp_path, gp_lambda=5.0)
    assert ours.iteration()["loss_critic_video"] != pytest.approx(plain.iteration()["loss_critic_video"], rel=1e-3)


def test_the_separate_penalty_step_is_a_different_update(tmp_path):
    """Stepping on -W and on the penalty in turn differs from one step on their sum."""
    joint, _ = trainers(tmp_path / "joint")
    separate, _ = trainers(tmp_path / "separate", penalty_step="separate")
    joint.iteration(), separate.iteration()
    after = zip(joint.video_critic.parameters(), separate.video_critic.parameters())
    assert any(not torch.allclose(a, b) for a, b in after)


def test_plain_attention_is_our_attention_with_the_matrix_in_memory():
    for kind in ("full", "nystrom"):
        torch.manual_seed(0)
        ours = SelfAttention3d(16, AttentionSpec(kind, landmarks=8))
        torch.nn.init.normal_(ours.gamma)
        plain = plain_reference.PlainSelfAttention3d(ours)
        x = torch.randn(2, 16, 2, 4, 4)
        torch.manual_seed(1)
        expected = ours(x)
        torch.manual_seed(1)
        assert torch.allclose(plain(x), expected, atol=1e-5), kind


def test_plain_copy_shares_the_weights_but_not_the_tensors():
    ours = SelfAttention3d(16, AttentionSpec("full"))
    network = torch.nn.Sequential(ours)
    copy = plain_reference.plain_copy(network)
    assert isinstance(copy[0], plain_reference.PlainSelfAttention3d)
    assert torch.equal(copy[0].query.weight, ours.query.weight)
    assert copy[0].query.weight.data_ptr() != ours.query.weight.data_ptr()
