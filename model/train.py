"""The SAVGAN training loop: WGAN-GP, 5 critic steps per generator step, checkpoints, snapshots.

A run folder tells what happened: ``manifest.json`` (configs, step, data, seed, latest
losses), ``log.jsonl`` (losses per step), ``samples/`` (montages), ``losses.png``,
``training_state.safetensors`` (everything needed to resume exactly) and
``generator.safetensors``, which makes the run folder itself a usable model.

Every step re-seeds the global RNG from (seed, step), so batches, latents, landmarks,
interpolation weights and frame picks depend only on the step number: resuming from a
checkpoint replays exactly the steps an uninterrupted run would have taken.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from savgan.model import checkpoint as ckpt
from savgan.model.config import ModelConfig, TrainConfig
from savgan.model.ema import WeightAverage
from savgan.model.family import family_of
from savgan.model.layout import LOG, LOSSES, SAMPLES
from savgan.model.losses import (
    CriticLoss,
    critic_loss,
    generator_loss,
    gradient_penalty,
    random_frames,
    wasserstein_gap,
)
from savgan.model.networks import sample_latents
from savgan.model.plots import plot_losses, save_sample_montage

STEP_SEED_STRIDE = 1_000_003
# TrainConfig fields a resume may change: none alters the steps the run replays.
RESUME_CHANGES = frozenset({"steps", "sample_every", "checkpoint_every", "ema_decay"})


@dataclass(frozen=True)
class TrainProgress:
    """What a progress callback receives after every generator step."""

    step: int
    total_steps: int
    losses: dict[str, float]
    elapsed_s: float
    eta_s: float | None


@dataclass
class TrainHooks:
    """How a caller (the CLI, the service's worker) watches and stops a run.

    ``should_stop`` is polled after every step; when it answers True the run writes a
    checkpoint and returns, so a cancelled training keeps a usable model.
    """

    on_progress: Callable[[TrainProgress], None] | None = None
    should_stop: Callable[[], bool] | None = None
    show_progress_bar: bool = True


@dataclass
class TrainResult:
    step: int
    stopped_early: bool
    losses: dict[str, float] = field(default_factory=dict)


def derive_seed(seed: int, index: int) -> int:
    return (seed * STEP_SEED_STRIDE + index) % (2**63 - 1)


class Trainer:
    """Owns the networks of the model's family (model/family.py), their optimisers and the run folder.

    SAVGAN/3DGAN: G, the video critic D_V and the image critic D_I, trained by
    :meth:`iteration`'s own objective; a family with its own objective (TGANv2) supplies it.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        bank: Tensor,
        run_dir: Path,
        data_description: str,
        device: str | torch.device = "cpu",
        physical: dict[str, float] | None = None,
    ) -> None:
        if bank.dim() != 5 or bank.shape[1] != model_config.channels:
            raise ValueError(f"training videos must be (N, {model_config.channels}, T, H, W), got {tuple(bank.shape)}")
        if bank.shape[2] < model_config.frames or bank.shape[-1] != model_config.size or bank.shape[-2] != model_config.size:
            raise ValueError(
                f"training clips are {tuple(bank.shape[2:])} but the model needs at least "
                f"{model_config.frames}x{model_config.size}x{model_config.size}"
            )
        self.model_config = model_config
        self.train_config = train_config
        self.device = torch.device(device)
        self.bank = bank
        self.run_dir = Path(run_dir)
        self.data_description = data_description
        self.physical = physical or {}
        self.base_model: str | None = None
        torch.manual_seed(train_config.seed)
        self.family = family_of(model_config)
        self.generator = self.family.build_generator(model_config).to(self.device)
        self.critics = {prefix: c.to(self.device) for prefix, c in self.family.build_critics(model_config).items()}
        self.video_critic = self.critics["DV"]
        self.image_critic = self.critics.get("DI")
        betas, eps = train_config.betas, train_config.adam_eps
        self.average = WeightAverage(self.generator, train_config.ema_decay) if train_config.ema_decay else None
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=train_config.lr_g, betas=betas, eps=eps)
        self.critic_optimizers = {
            f"opt_{prefix.lower()}": torch.optim.Adam(critic.parameters(), lr=train_config.lr_d, betas=betas, eps=eps)
            for prefix, critic in self.critics.items()
        }
        self.opt_dv = self.critic_optimizers["opt_dv"]
        self.opt_di = self.critic_optimizers.get("opt_di")
        self.step = 0
        self.latest: dict[str, float] = {}
        self.sample_latents = sample_latents(
            model_config, 8, generator=torch.Generator().manual_seed(train_config.seed)
        ).to(self.device)

    @property
    def exported_generator(self) -> torch.nn.Module:
        """The network the run shows and ships: the weight average when there is one, else G itself."""
        return self.average.module if self.average is not None else self.generator

    @property
    def long_clips_possible(self) -> bool:
        return self.bank.shape[2] >= self.model_config.frames + self.model_config.frames_per_latent

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.train_config.bf16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _real_batch(self, frames: int) -> Tensor:
        index = torch.randint(self.bank.shape[0], (self.train_config.batch_size,))
        offsets = torch.randint(self.bank.shape[2] - frames + 1, (self.train_config.batch_size,))
        clips = [self.bank[i, :, o : o + frames] for i, o in zip(index.tolist(), offsets.tolist())]
        return torch.stack(clips).to(self.device, non_blocking=True)

    def iteration(self) -> dict[str, float]:
        """One generator iteration of the family's objective, then the weight average's update."""
        torch.manual_seed(derive_seed(self.train_config.seed, self.step))
        if self.family.iteration is not None:  # a family with its own objective (TGANv2)
            losses = self.family.iteration(self)
        else:
            losses = self._wgan_gp_iteration()
        self.step += 1
        if self.average is not None:
            self.average.update(self.generator)
        return losses

    def _wgan_gp_iteration(self) -> dict[str, float]:
        """SAVGAN/3DGAN: n_critic updates of D_V and D_I, then one generator update."""
        cfg = self.train_config
        latent_steps = 2 if self.long_clips_possible and torch.rand(()) < cfg.long_clip_prob else 1
        frames = (latent_steps + 1) * self.model_config.frames_per_latent
        self.generator.train()
        for critic in (self.video_critic, self.image_critic):
            critic.requires_grad_(True)
        for _ in range(cfg.n_critic):
            real = self._real_batch(frames)
            z = sample_latents(self.model_config, cfg.batch_size, latent_steps).to(self.device)
            with torch.no_grad(), self._autocast():
                fake = self.generator(z).float()
            video, image = self._critic_update(real, fake)
        for critic in (self.video_critic, self.image_critic):
            critic.requires_grad_(False)
        z = sample_latents(self.model_config, cfg.batch_size, latent_steps).to(self.device)
        with self._autocast():
            loss_g = generator_loss(self.video_critic, self.image_critic, self.generator(z), cfg.image_lambda)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return {
            "wasserstein_video": video.wasserstein,
            "wasserstein_image": image.wasserstein,
            "gp_video": video.penalty,
            "gp_image": image.penalty,
            "loss_critic_video": video.loss.item(),
            "loss_critic_image": image.loss.item(),
            "loss_generator": loss_g.item(),
            "clip_frames": float(frames),
        }

    def train(self, hooks: TrainHooks | None = None) -> TrainResult:
        """Run until ``train_config.steps`` generator steps are done or a hook asks to stop."""
        hooks = hooks or TrainHooks()
        cfg = self.train_config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        start_step, started = self.step, time.monotonic()
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="it", disable=not hooks.show_progress_bar)
        stopped = False
        with bar, (self.run_dir / LOG).open("a") as log:
            while self.step < cfg.steps:
                self.latest = self.iteration()
                log.write(json.dumps({"step": self.step, **ckpt.log_values(self.latest)}) + "\n")
                bar.update(1)
                bar.set_postfix({label: f"{self.latest[key]:.3f}" for label, key in self.family.progress})
                if self.step % cfg.sample_every == 0 or self.step % cfg.checkpoint_every == 0:
                    log.flush()
                if self.step % cfg.sample_every == 0:
                    self.snapshot()
                if self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                if hooks.on_progress:
                    elapsed = time.monotonic() - started
                    rate = (self.step - start_step) / elapsed if elapsed > 0 else 0.0
                    eta = (cfg.steps - self.step) / rate if rate > 0 else None
                    hooks.on_progress(TrainProgress(self.step, cfg.steps, dict(self.latest), elapsed, eta))
                if hooks.should_stop and hooks.should_stop():
                    stopped = self.step < cfg.steps
                    break
        if self.step % cfg.checkpoint_every or stopped or self.step == start_step:
            self.save_checkpoint()
        if self.step % cfg.sample_every:
            self.snapshot()
        return TrainResult(self.step, stopped, dict(self.latest))

    def _critic_update(self, real: Tensor, fake: Tensor) -> tuple[CriticLoss, CriticLoss]:
        """One update of D_V and D_I (on one random frame per video), as ``penalty_step`` says."""
        cfg = self.train_config
        if cfg.penalty_step == "joint":
            with self._autocast():
                video = critic_loss(self.video_critic, real, fake, cfg.gp_lambda)
                image = critic_loss(self.image_critic, random_frames(real), random_frames(fake), cfg.gp_lambda)
            self._critic_step(video.loss + image.loss)
            return video, image
        frames = random_frames(real), random_frames(fake)
        with self._autocast():
            gaps = wasserstein_gap(self.video_critic, real, fake), wasserstein_gap(self.image_critic, *frames)
        self._critic_step(-(gaps[0] + gaps[1]))
        with self._autocast():
            penalties = gradient_penalty(self.video_critic, real, fake), gradient_penalty(self.image_critic, *frames)
        self._critic_step(cfg.gp_lambda * (penalties[0] + penalties[1]))
        video, image = (
            CriticLoss((cfg.gp_lambda * penalty - gap).detach(), gap.item(), penalty.item())
            for gap, penalty in zip(gaps, penalties)
        )
        return video, image

    def _critic_step(self, loss: Tensor) -> None:
        self.opt_dv.zero_grad(set_to_none=True)
        self.opt_di.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_dv.step()
        self.opt_di.step()

    def snapshot(self) -> None:
        """A montage of fixed latents and the loss curves, so progress can be seen at a glance."""
        generator = self.exported_generator
        generator.eval()
        with torch.no_grad():
            videos = generator(self.sample_latents).float().cpu()[:, 0].numpy()
        save_sample_montage(self.run_dir / "samples" / f"step_{self.step:07d}.png", videos)
        save_sample_montage(self.run_dir / SAMPLES, videos)
        plot_losses(self.run_dir / LOG, self.run_dir / LOSSES)

    def manifest(self) -> dict[str, Any]:
        return {
            "format": "savgan-model/1",
            "model_config": self.model_config.to_dict(),
            "train_config": self.train_config.to_dict(),
            "step": self.step,
            "seed": self.train_config.seed,
            "data": self.data_description,
            "physical": self.physical,
            "base_model": self.base_model,
            "losses": self.latest,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def save_checkpoint(self) -> None:
        """Training state first, generator export and manifest last: the manifest names a complete step."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, Tensor] = {}
        groups: dict[str, Any] = {}
        for prefix, module in self._modules():
            tensors.update(ckpt.module_tensors(prefix, module))
        for prefix, optimizer in self._optimizers():
            opt_tensors, groups[prefix] = ckpt.optimizer_tensors(prefix, optimizer)
            tensors.update(opt_tensors)
        ckpt.save_tensors(self.run_dir / ckpt.TRAINING_STATE, tensors)
        ckpt.save_tensors(self.run_dir / ckpt.GENERATOR_WEIGHTS, self.exported_generator.state_dict())
        manifest = self.manifest()
        manifest["optimizers"] = groups
        if self.average is not None:
            manifest["average_updates"] = self.average.updates
        ckpt.write_json(self.run_dir / ckpt.MANIFEST, manifest)

    @classmethod
    def resume(
        cls, run_dir: Path, bank: Tensor, device: str | torch.device = "cpu", **changes: int | float | None
    ) -> Trainer:
        """Rebuild a run from its folder, with the settings of RESUME_CHANGES that are not None changed.

        None of those touches what G and the critics learn: ``steps`` raises the target,
        ``sample_every``/``checkpoint_every`` change what is written, and ``ema_decay`` starts
        (from G's current weights) or changes the weight average.
        """
        unknown = set(changes) - RESUME_CHANGES
        if unknown:
            raise ValueError(f"a resumed run cannot change {sorted(unknown)}; only {sorted(RESUME_CHANGES)}")
        manifest = ckpt.read_json(Path(run_dir) / ckpt.MANIFEST)
        given = {k: v for k, v in changes.items() if v is not None}
        train_config = TrainConfig.from_dict({**manifest["train_config"], **given})
        trainer = cls(
            ModelConfig.from_dict(manifest["model_config"]),
            train_config,
            bank,
            Path(run_dir),
            manifest["data"],
            device,
            manifest.get("physical"),
        )
        trainer.base_model = manifest.get("base_model")
        trainer.load_state(manifest)
        return trainer

    def load_weights(self, model_dir: Path, label: str) -> None:
        """Fine-tuning: start from another model's networks (critics too when it has them), at step 0."""
        tensors = ckpt.load_tensors(Path(model_dir) / ckpt.GENERATOR_WEIGHTS)
        self.generator.load_state_dict({k: v.to(self.device) for k, v in tensors.items()})
        if self.average is not None:
            self.average.reset(self.generator)
        state_path = Path(model_dir) / ckpt.TRAINING_STATE
        if state_path.exists():
            state = {k: v.to(self.device) for k, v in ckpt.load_tensors(state_path).items()}
            for prefix, critic in self.critics.items():
                ckpt.load_module(prefix, critic, state)
        self.base_model = label

    def _modules(self) -> list[tuple[str, torch.nn.Module]]:
        """Checkpoint prefix and network: G, its weight average if kept, then the critics (SAVGAN: DV, DI)."""
        average = [(ckpt.AVERAGE_PREFIX, self.average.module)] if self.average is not None else []
        return [("G", self.generator), *average, *self.critics.items()]

    def _optimizers(self) -> list[tuple[str, torch.optim.Optimizer]]:
        return [("opt_g", self.opt_g), *self.critic_optimizers.items()]

    def load_state(self, manifest: dict[str, Any]) -> None:
        tensors = ckpt.load_tensors(self.run_dir / ckpt.TRAINING_STATE)
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        averaged = ckpt.has_average(tensors)
        for prefix, module in self._modules():
            if prefix != ckpt.AVERAGE_PREFIX or averaged:
                ckpt.load_module(prefix, module, tensors)
        if self.average is not None and not averaged:  # a run that starts averaging on this resume
            self.average.reset(self.generator)
        elif self.average is not None:
            self.average.updates = int(manifest.get("average_updates", 0))
        for prefix, optimizer in self._optimizers():
            ckpt.load_optimizer(prefix, optimizer, tensors, manifest["optimizers"][prefix])
        self.step = int(manifest["step"])
        self.latest = dict(manifest.get("losses", {}))
        self._truncate_log()

    def _truncate_log(self) -> None:
        """Drop log lines past the checkpoint: those steps are about to be replayed."""
        log = self.run_dir / LOG
        if log.exists():
            kept = [line for line in log.read_text().splitlines() if line and json.loads(line)["step"] <= self.step]
            ckpt.atomic_write_bytes(log, "".join(line + "\n" for line in kept).encode())
