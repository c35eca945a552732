"""The generator's weight average: the update rule, what a run exports, resume and packing."""

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from savgan.model.checkpoint import AVERAGE_PREFIX, pack_run, unpack_run
from savgan.model.ema import WeightAverage
from savgan.model.train import TrainHooks, Trainer
from tests.test_train import TINY, run, tiny_bank, tiny_config


def test_average_follows_the_exponential_rule_and_copies_buffers():
    live = nn.BatchNorm1d(3)
    average = WeightAverage(live, decay=0.75)
    start = live.weight.detach().clone()
    with torch.no_grad():
        live.weight.add_(4.0)
        live.running_mean.fill_(2.0)
    average.update(live)
    assert torch.allclose(average.module.weight, 0.1 * start + 0.9 * (start + 4.0))  # ramp: 1/10 at first
    assert torch.equal(average.module.running_mean, live.running_mean)
    assert not average.module.weight.requires_grad and not average.module.training
    average.reset(live)
    assert torch.equal(average.module.weight, live.weight) and average.updates == 0


def test_decay_ramps_up_to_its_setting():
    average = WeightAverage(nn.Linear(2, 2), decay=0.999)
    assert [round(average.decay_at(n), 4) for n in (0, 8, 90, 990, 9000)] == [0.1, 0.5, 0.91, 0.991, 0.999]


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_average_refuses_a_decay_outside_the_open_interval(decay):
    with pytest.raises(ValueError, match="decay must lie in"):
        WeightAverage(nn.Linear(2, 2), decay)


def test_run_exports_the_average_of_the_iterates_it_took(tmp_path):
    seen = []
    trainer = Trainer(TINY, tiny_config(steps=3, ema_decay=0.5), tiny_bank(), tmp_path / "r", "random")
    start = {k: v.clone() for k, v in trainer.generator.named_parameters()}
    trainer.train(TrainHooks(
        on_progress=lambda _: seen.append({k: v.detach().clone() for k, v in trainer.generator.named_parameters()}),
        show_progress_bar=False,
    ))
    exported = load_file(str(tmp_path / "r" / "generator.safetensors"))
    decays = [trainer.average.decay_at(n) for n in range(len(seen))]
    for name, value in start.items():
        expected = value
        for iterate, decay in zip(seen, decays):
            expected = decay * expected + (1 - decay) * iterate[name]
        assert torch.allclose(exported[name], expected, atol=1e-6), name
    assert any(not torch.allclose(exported[name], seen[-1][name]) for name in start)  # not the last iterate
    state = load_file(str(tmp_path / "r" / "training_state.safetensors"))
    assert any(k.startswith(AVERAGE_PREFIX + ".") for k in state)


def test_resume_replays_the_average_exactly(tmp_path):
    straight = run(tmp_path, "straight", steps=4, ema_decay=0.9)
    run(tmp_path, "split", steps=2, ema_decay=0.9)
    resumed = Trainer.resume(tmp_path / "split", tiny_bank(), steps=4)
    assert resumed.average.updates == 2
    resumed.train(TrainHooks(show_progress_bar=False))
    for key, value in straight.exported_generator.state_dict().items():
        assert torch.equal(value, resumed.exported_generator.state_dict()[key]), key


def test_a_run_without_an_average_can_start_one_on_resume(tmp_path):
    plain = run(tmp_path, "plain", steps=2)
    assert plain.average is None and plain.exported_generator is plain.generator
    resumed = Trainer.resume(tmp_path / "plain", tiny_bank(), steps=3, ema_decay=0.9)
    assert resumed.train_config.ema_decay == 0.9
    before = {k: v.clone() for k, v in resumed.generator.state_dict().items()}
    assert all(torch.equal(v, resumed.exported_generator.state_dict()[k]) for k, v in before.items())
    resumed.train(TrainHooks(show_progress_bar=False))
    after = resumed.generator.state_dict()
    for name, _ in resumed.generator.named_parameters():  # one update, at the ramp's first decay 0.1
        assert torch.allclose(resumed.exported_generator.state_dict()[name], 0.1 * before[name] + 0.9 * after[name])


def test_a_packed_averaging_run_unpacks_to_its_average(tmp_path):
    trainer = run(tmp_path, "orig", steps=2, ema_decay=0.5)
    pack_run(tmp_path / "orig", tmp_path / "run.safetensors")
    unpack_run(tmp_path / "run.safetensors", tmp_path / "copy")
    exported = load_file(str(tmp_path / "copy" / "generator.safetensors"))
    average = trainer.exported_generator.state_dict()
    assert set(exported) == set(average)
    assert all(torch.equal(exported[k], average[k]) for k in average)
    copy = Trainer.resume(tmp_path / "copy", tiny_bank(), steps=2)
    assert all(torch.equal(v, copy.generator.state_dict()[k]) for k, v in trainer.generator.state_dict().items())


def test_resume_refuses_changes_that_would_alter_the_replayed_steps(tmp_path):
    run(tmp_path, "r", steps=1)
    with pytest.raises(ValueError, match=r"cannot change \['lr_g'\]"):
        Trainer.resume(tmp_path / "r", tiny_bank(), lr_g=1e-3)
    resumed = Trainer.resume(tmp_path / "r", tiny_bank(), checkpoint_every=7, sample_every=None)
    assert resumed.train_config.checkpoint_every == 7 and resumed.train_config.sample_every == 100
