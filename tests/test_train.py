"""The training loop: determinism, exact resume, hooks, checkpoints, fine-tuning."""

import json

import pytest
import torch
from safetensors.torch import load_file

from savgan.model.config import AttentionSpec, ModelConfig, TrainConfig
from savgan.model.train import TrainHooks, Trainer

TINY = ModelConfig(
    size=16,
    frames=8,
    g_conv_dim=8,
    d_conv_dim=8,
    image_critic_dim=8,
    g_attention=(AttentionSpec("nystrom", landmarks=16),),
    d_attention=(AttentionSpec("full"),),
)


def tiny_bank(count: int = 6, frames: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(count, 1, frames, 16, 16, generator=g) * 2 - 1


def tiny_config(**overrides) -> TrainConfig:
    settings = dict(steps=3, batch_size=2, n_critic=2, sample_every=100, checkpoint_every=2, long_clip_prob=0.5)
    return TrainConfig(**{**settings, **overrides})


def run(tmp_path, name: str, **overrides) -> Trainer:
    trainer = Trainer(TINY, tiny_config(**overrides), tiny_bank(), tmp_path / name, "random clips")
    trainer.train(TrainHooks(show_progress_bar=False))
    return trainer


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.generator.state_dict().items()}


def test_training_is_deterministic_on_cpu(tmp_path):
    a, b = weights(run(tmp_path, "a")), weights(run(tmp_path, "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = weights(run(tmp_path, "c", seed=1))
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_replays_exactly_the_uninterrupted_run(tmp_path):
    straight = run(tmp_path, "straight", steps=4)
    first = run(tmp_path, "split", steps=2)
    assert first.step == 2
    resumed = Trainer.resume(tmp_path / "split", tiny_bank(), steps=4)
    assert resumed.step == 2
    resumed.train(TrainHooks(show_progress_bar=False))
    for key, value in weights(straight).items():
        assert torch.equal(value, resumed.generator.state_dict()[key]), key
    for key, value in straight.video_critic.state_dict().items():
        assert torch.equal(value, resumed.video_critic.state_dict()[key]), key
    log = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    straight_log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert log == straight_log


def test_checkpoint_folder_is_a_complete_model(tmp_path):
    trainer = run(tmp_path, "r", steps=2, sample_every=2)
    folder = tmp_path / "r"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["step"] == 2 and manifest["seed"] == 0 and manifest["data"] == "random clips"
    assert ModelConfig.from_dict(manifest["model_config"]) == TINY
    assert set(manifest["losses"]) >= {"wasserstein_video", "wasserstein_image", "loss_generator"}
    generator = load_file(str(folder / "generator.safetensors"))
    assert set(generator) == set(trainer.generator.state_dict())
    state = load_file(str(folder / "training_state.safetensors"))
    assert any(k.startswith("opt_dv.") and k.endswith("exp_avg_sq") for k in state)
    assert (folder / "samples.png").stat().st_size > 0 and (folder / "losses.png").stat().st_size > 0
    assert (folder / "samples" / "step_0000002.png").exists()


def test_hooks_report_progress_and_stop_with_a_checkpoint(tmp_path):
    seen = []
    trainer = Trainer(TINY, tiny_config(steps=50, checkpoint_every=100), tiny_bank(), tmp_path / "s", "random")
    result = trainer.train(
        TrainHooks(on_progress=seen.append, should_stop=lambda: len(seen) >= 2, show_progress_bar=False)
    )
    assert result.stopped_early and result.step == 2
    assert [p.step for p in seen] == [1, 2] and seen[-1].total_steps == 50 and seen[-1].eta_s > 0
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["step"] == 2


def test_critic_fakes_carry_no_generator_gradient(tmp_path):
    """The critics' fakes are made without a graph: one generator backward per step, not six.

    (With the balance measured, the step's generator backward is split in two on purpose.)
    """
    trainer = Trainer(TINY, tiny_config(steps=1, balance_every=0), tiny_bank(), tmp_path / "g", "random")
    calls = 0

    def count_backward(module, grad_input, grad_output):
        nonlocal calls
        calls += 1

    trainer.generator.to_video.register_full_backward_hook(count_backward)
    trainer.iteration()
    assert calls == 1


def test_long_clips_are_used_when_the_bank_allows(tmp_path):
    trainer = Trainer(TINY, tiny_config(steps=6, long_clip_prob=1.0), tiny_bank(), tmp_path / "l", "random")
    assert trainer.iteration()["clip_frames"] == 12.0
    short = Trainer(TINY, tiny_config(long_clip_prob=1.0), tiny_bank(frames=8), tmp_path / "m", "random")
    assert short.iteration()["clip_frames"] == 8.0


def test_fine_tuning_starts_from_the_base_weights(tmp_path):
    base = run(tmp_path, "base", steps=2)
    tuned = Trainer(TINY, tiny_config(steps=1, seed=5), tiny_bank(), tmp_path / "tuned", "random")
    tuned.load_weights(tmp_path / "base", "base:local")
    for key, value in base.generator.state_dict().items():
        assert torch.equal(value, tuned.generator.state_dict()[key])
    assert tuned.step == 0 and tuned.manifest()["base_model"] == "base:local"


def test_bad_training_data_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 8x16x16"):
        Trainer(TINY, tiny_config(), torch.zeros(2, 1, 4, 16, 16), tmp_path / "x", "short")


def test_packed_run_resumes_from_the_same_weights_with_bf16_moments(tmp_path):
    from savgan.model.checkpoint import pack_run, unpack_run

    run(tmp_path, "orig", steps=2)
    pack_run(tmp_path / "orig", tmp_path / "run.safetensors")
    unpack_run(tmp_path / "run.safetensors", tmp_path / "copy")
    original = Trainer.resume(tmp_path / "orig", tiny_bank(), steps=3)
    copy = Trainer.resume(tmp_path / "copy", tiny_bank(), steps=3)
    assert copy.step == 2
    logged = (tmp_path / "orig" / "log.jsonl").read_text()
    assert [json.loads(line)["step"] for line in logged.splitlines()] == [1, 2]
    assert (tmp_path / "copy" / "log.jsonl").read_text() == logged  # the loss history travels with the file
    assert all(torch.equal(v, copy.generator.state_dict()[k]) for k, v in original.generator.state_dict().items())
    moments = [(original.opt_dv.state[p]["exp_avg_sq"], copy.opt_dv.state[q]["exp_avg_sq"])
               for p, q in zip(original.video_critic.parameters(), copy.video_critic.parameters())]
    assert all(torch.allclose(a, b, rtol=1e-2, atol=1e-12) for a, b in moments)
    assert any(not torch.equal(a, b) for a, b in moments)  # rounded, as documented
    copy.train(TrainHooks(show_progress_bar=False))
    assert copy.step == 3


def test_files_packed_with_the_older_gzip_log_still_unpack_with_their_history(tmp_path):
    import base64
    import gzip

    from safetensors.torch import load_file, save_file

    from savgan.model.checkpoint import PACKED_LOG_GZIP, pack_run, packed_manifest, unpack_run

    run(tmp_path, "orig", steps=2)
    pack_run(tmp_path / "orig", tmp_path / "new.safetensors")
    logged = (tmp_path / "orig" / "log.jsonl").read_bytes()
    old_metadata = {"manifest": json.dumps(packed_manifest(tmp_path / "new.safetensors")),
                    PACKED_LOG_GZIP: base64.b64encode(gzip.compress(logged)).decode("ascii")}
    save_file(load_file(str(tmp_path / "new.safetensors")), str(tmp_path / "old.safetensors"), metadata=old_metadata)
    unpack_run(tmp_path / "old.safetensors", tmp_path / "copy")
    assert (tmp_path / "copy" / "log.jsonl").read_bytes() == logged


def test_logged_losses_keep_six_significant_digits(tmp_path):
    run(tmp_path, "orig", steps=2)
    for line in (tmp_path / "orig" / "log.jsonl").read_text().splitlines():
        values = [v for k, v in json.loads(line).items() if k != "step"]
        assert values and all(len(f"{abs(v):e}".split("e")[0].replace(".", "").rstrip("0")) <= 6 for v in values)
        assert any(v != round(v) for v in values)  # still real numbers, not rounded to integers


def test_packing_cuts_an_older_full_precision_log_to_six_digits(tmp_path):
    from savgan.model.checkpoint import pack_run, unpack_run

    run(tmp_path, "orig", steps=2)
    full = [{"step": step, "wasserstein_video": 83.428466796875 / step, "gp_video": 0.020370176061987877} for step in (1, 2)]
    (tmp_path / "orig" / "log.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in full))
    pack_run(tmp_path / "orig", tmp_path / "run.safetensors")
    unpack_run(tmp_path / "run.safetensors", tmp_path / "copy")
    unpacked = [json.loads(line) for line in (tmp_path / "copy" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in unpacked] == [1, 2]
    assert [entry["wasserstein_video"] for entry in unpacked] == [83.4285, 41.7142]
    assert unpacked[0]["gp_video"] == 0.0203702


def test_unpacking_a_file_that_is_not_a_packed_run_says_so(tmp_path):
    from safetensors.torch import save_file

    from savgan.model.checkpoint import unpack_run

    save_file({"x": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="not a packed savgan run"):
        unpack_run(tmp_path / "w.safetensors", tmp_path / "out")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_lambda": -1.0}, "image_lambda, gp_lambda and pair_lambda must be >= 0"),
        ({"penalty_step": "both"}, "penalty_step must be 'joint' or 'separate'"),
        ({"ema_decay": 1.0}, r"ema_decay must lie in \[0, 1\)"),
        ({"lr_g": 0.0}, "learning rates must be positive"),
    ],
)
def test_bad_train_settings_are_refused_with_the_reason(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)
