"""The critic probe: crafted clip kinds, the fakeness scale, gradient balance, reading checkpoints."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from savgan.model.checkpoint import pack_run, read_training_state
from savgan.model.critic_probe import (
    REFERENCE_KIND,
    crafted_kinds,
    frozen,
    mean_grad_norm,
    probe,
    score_kinds,
    shuffled,
    switched,
)
from savgan.model.metrics.evaluate import real_sets

from tests.test_train import run

ROOT = Path(__file__).resolve().parents[1]


def numbered_clips(batch: int, frames: int, offset: float = 0.0) -> torch.Tensor:
    """Clips whose frame t is filled with the value t + offset: frame provenance is readable."""
    return (torch.arange(frames, dtype=torch.float32) + offset).view(1, 1, frames, 1, 1).expand(batch, 1, frames, 4, 4).clone()


def frame_values(clips: torch.Tensor) -> list[float]:
    return clips[0, 0, :, 0, 0].tolist()


def test_switched_takes_every_other_block_from_the_other_clips():
    clips, others = numbered_clips(2, 8), numbered_clips(2, 8, offset=100)
    assert frame_values(switched(clips, others, 2)) == [0, 1, 102, 103, 4, 5, 106, 107]
    assert frame_values(switched(clips, others, 1)) == [0, 101, 2, 103, 4, 105, 6, 107]


def test_frozen_and_shuffled_keep_real_frames_but_break_motion():
    clips = numbered_clips(2, 16)
    assert frame_values(frozen(clips)) == [0.0] * 16
    assert frame_values(frozen(clips, 8)) == [8.0] * 16
    order = frame_values(shuffled(clips, seed=0))
    assert sorted(order) == list(range(16)) and order != list(range(16))
    assert torch.equal(shuffled(clips, 0)[0], shuffled(clips, 0)[1])  # one order for all clips


class MeanCritic(nn.Module):
    """Scores a clip by its mean value: fakeness becomes plain arithmetic."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(dim=1)


def test_fakeness_is_the_drop_below_real_in_units_of_the_reference_kind():
    real = torch.full((3, 1, 4, 2, 2), 5.0)
    kinds = {"real": real, REFERENCE_KIND: real - 2.0, "generated": real - 7.0, "better than real": real + 1.0}
    by_kind = {s.kind: s for s in score_kinds(MeanCritic(), kinds)}
    assert by_kind["real"].fakeness == 0.0
    assert by_kind[REFERENCE_KIND].fakeness == 1.0
    assert by_kind["generated"].fakeness == pytest.approx(3.5)
    assert by_kind["better than real"].fakeness == pytest.approx(-0.5)
    assert by_kind["generated"].mean == pytest.approx(-2.0)
    assert np.isnan(by_kind["generated"].drop)  # real clips all score alike: no spread to measure a drop in


def test_a_critic_that_prefers_content_switching_has_no_fakeness_unit_but_still_a_drop():
    real = torch.tensor([4.0, 6.0]).view(2, 1, 1, 1, 1).expand(2, 1, 4, 2, 2)
    kinds = {"real": real, REFERENCE_KIND: real + 3.0, "generated": real - 2.0}
    by_kind = {s.kind: s for s in score_kinds(MeanCritic(), kinds)}
    assert all(np.isnan(s.fakeness) for s in by_kind.values())
    spread = float(torch.tensor([4.0, 6.0]).std())
    assert by_kind["generated"].drop == pytest.approx(2.0 / spread)
    assert by_kind[REFERENCE_KIND].drop == pytest.approx(-3.0 / spread)


def test_mean_grad_norm_of_a_linear_critic_is_its_weight_norm():
    weight = torch.randn(1, 1, 4, 3, 3)

    class Linear(nn.Module):
        def forward(self, x):
            return (x * weight).flatten(1).sum(dim=1)

    assert mean_grad_norm(Linear(), torch.randn(5, 1, 4, 3, 3)) == pytest.approx(float(weight.norm()), rel=1e-5)


def test_a_packed_checkpoint_probes_exactly_like_its_run_folder(tmp_path):
    trainer = run(tmp_path, "orig", steps=2)
    pack_run(tmp_path / "orig", tmp_path / "run.safetensors")
    manifest, tensors = read_training_state(tmp_path / "run.safetensors")
    assert manifest["step"] == 2 and all(t.dtype == torch.float32 for t in tensors.values())
    torch.manual_seed(3)
    real, others = (torch.rand(4, 8, 16, 16).numpy() * 2 - 1 for _ in range(2))
    from_folder = probe(tmp_path / "orig", real, others)
    from_file = probe(tmp_path / "run.safetensors", real, others)
    assert from_folder == from_file
    assert from_folder.step == 2 and from_folder.image_lambda == trainer.train_config.image_lambda
    assert from_folder.balanced_image_lambda == pytest.approx(from_folder.video_grad_norm / from_folder.image_grad_norm)
    kinds = [s.kind for s in from_folder.scores]
    assert kinds[-3:] == ["generated", "generated, middle frame frozen", "generated, frames shuffled"]


def test_probe_refuses_clips_of_the_wrong_shape(tmp_path):
    run(tmp_path, "orig", steps=2)
    clips = np.zeros((4, 16, 16, 16), dtype=np.float32)  # 16 frames; the run trains on 8
    with pytest.raises(ValueError, match=r"real clips must be \(K, 8, 16, 16\)"):
        probe(tmp_path / "orig", clips, clips)


def test_the_bundled_runs_critic_ranks_content_switching_by_how_often_it_happens(one_torch_thread):
    """A loaded, trained D_V: another real clip scores like real; switching more often scores worse."""
    clips = real_sets("mmnist", 64, 16, 32, 0, False).reference
    report = probe(ROOT / "model" / "bundled" / "mmnist", clips[:32], clips[32:])
    fakeness = {s.kind: s.fakeness for s in report.scores}
    assert abs(fakeness["other real"]) < 0.3
    assert 0 < fakeness["content switch every 8"] < fakeness["content switch every 2"] < fakeness[REFERENCE_KIND] == 1.0
    assert set(fakeness) == set(crafted_kinds(numbered_clips(1, 16), numbered_clips(1, 16))) | {
        "generated", "generated, middle frame frozen", "generated, frames shuffled"}
