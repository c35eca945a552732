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
from savgan.model.identity import identity_negatives, negatives_per_batch, switch_frames
from savgan.model.layout import LOG, LOSSES, SAMPLES
from savgan.model.losses import (
    CriticLoss,
    critic_loss,
    gaps_with_negatives,
    generator_loss,
    gradient_penalty,
    penalty_with_negatives,
    random_frames,
    wasserstein_gap,
)
from savgan.model.networks import sample_latents
from savgan.model.pairs import PAIR_NEGATIVE_WEIGHT, PAIR_PREFIX, build_pair_critic, frame_pairs, later_frames
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


def shared_content_weights(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """A paper-recipe generator's weights for a shared-content first layer: P = (A0 + A1) / 2, no phase yet.

    So the coherent recipe can fine-tune a model trained with the paper's first layer; a
    generator that already has a shared layer is returned unchanged.
    """
    if "seed.0.weight" not in tensors:
        return tensors
    converted = {k: v for k, v in tensors.items() if not k.startswith("seed.0.")}
    weight = tensors["seed.0.weight"]
    converted["seed.0.content"] = weight.mean(dim=2, keepdim=True)
    converted["seed.0.phase"] = torch.zeros(1, *weight.shape[1:], dtype=weight.dtype)
    converted["seed.0.bias"] = tensors["seed.0.bias"]
    return converted


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
        swaps: Tensor | None = None,
    ) -> None:
        """``swaps``: for each clip of ``bank``, the same motion with other content (identity-only negatives)."""
        if swaps is not None and swaps.shape != bank.shape:
            raise ValueError(f"identity swaps {tuple(swaps.shape)} must match the training clips {tuple(bank.shape)}")
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
        if train_config.pair_lambda > 0 and family_of(model_config).iteration is not None:
            raise ValueError(f"pair_lambda is for SAVGAN/3DGAN; {model_config.arch} trains no content critic")
        wants_swaps = train_config.identity_weight > 0 or train_config.pair_lambda > 0
        self.swaps = swaps if wants_swaps and model_config.arch != "tgan2" else None
        self.run_dir = Path(run_dir)
        self.data_description = data_description
        self.physical = physical or {}
        self.base_model: str | None = None
        torch.manual_seed(train_config.seed)
        self.family = family_of(model_config)
        self.generator = self.family.build_generator(model_config).to(self.device)
        self.critics = {prefix: c.to(self.device) for prefix, c in self.family.build_critics(model_config).items()}
        if train_config.pair_lambda > 0:  # built after the family's critics: their initialisation stays as it was
            self.critics[PAIR_PREFIX] = build_pair_critic(model_config, train_config.pair_critic).to(self.device)
        self.video_critic = self.critics["DV"]
        self.image_critic = self.critics.get("DI")
        self.pair_critic = self.critics.get(PAIR_PREFIX)
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

    @property
    def identity_negatives_on(self) -> bool:
        """Whether D_V trains on identity-only negatives: the recipe asks for them and the data has swaps."""
        return self.swaps is not None and self.train_config.identity_weight > 0

    def _real_batch(self, frames: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Real clips, D_V's identity negatives (the first few clips with their content swapped from a
        random frame, when on) and the clips' identity swaps (for D_P, when it has them)."""
        index = torch.randint(self.bank.shape[0], (self.train_config.batch_size,))
        offsets = torch.randint(self.bank.shape[2] - frames + 1, (self.train_config.batch_size,))
        picks = list(zip(index.tolist(), offsets.tolist()))
        clips = torch.stack([self.bank[i, :, o : o + frames] for i, o in picks]).to(self.device, non_blocking=True)
        if self.swaps is None:
            return clips, None, None
        count = negatives_per_batch(len(picks))
        wanted = picks if self.pair_critic is not None else picks[:count]  # D_V alone needs only its negatives' swaps
        swaps = torch.stack([self.swaps[i, :, o : o + frames] for i, o in wanted]).to(self.device, non_blocking=True)
        negatives = None
        if self.identity_negatives_on:
            negatives = identity_negatives(clips[:count], swaps[:count], switch_frames(count, frames).to(self.device))
        return clips, negatives, swaps if self.pair_critic is not None else None

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
        for critic in self.critics.values():
            critic.requires_grad_(True)
        for _ in range(cfg.n_critic):
            real, negatives, swaps = self._real_batch(frames)
            z = sample_latents(self.model_config, cfg.batch_size, latent_steps).to(self.device)
            with torch.no_grad(), self._autocast():
                fake = self.generator(z).float()
            video, image, identity = self._critic_update(real, fake, negatives)
            pair = self._pair_update(real, fake, swaps) if self.pair_critic is not None else {}
        for critic in self.critics.values():
            critic.requires_grad_(False)
        z = sample_latents(self.model_config, cfg.batch_size, latent_steps).to(self.device)
        self.opt_g.zero_grad(set_to_none=True)
        balance: dict[str, float] = {}
        if cfg.balance_every and self.step % cfg.balance_every == 0:
            loss_g, balance = self._generator_backward_measured(z)
        else:
            with self._autocast():
                fake = self.generator(z)
                loss_g = generator_loss(self.video_critic, self.image_critic, fake, cfg.image_lambda) + self._pair_term(fake)
            loss_g.backward()
        self.opt_g.step()
        return {
            **identity,
            **pair,
            **balance,
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

    def _pair_term(self, fake: Tensor) -> Tensor:
        """G's content-critic term -lambda_p E[D_P(first frame, later frame)], 0 without D_P."""
        if self.pair_critic is None:
            return torch.zeros((), device=fake.device)
        pairs = frame_pairs(fake, later_frames(fake.shape[0], fake.shape[2], fake.device))
        return -self.train_config.pair_lambda * self.pair_critic(pairs).mean()

    def _generator_backward_measured(self, z: Tensor) -> tuple[Tensor, dict[str, float]]:
        """G's backward with its gradient split into the D_V, D_I (and D_P) terms, whose norms and cosines go to the log.

        At lambda_i 20 the paper recipe measured cosine -0.31: D_I's term cancelled about 95 %
        of D_V's pull along D_V's direction. ``image_along_video`` is that component of D_I's
        term (negative: it works against D_V) over the norm of D_V's term; ``pair_along_video``
        the same for D_P's.
        """
        params = [p for p in self.generator.parameters() if p.requires_grad]
        with self._autocast():
            fake = self.generator(z)
            terms = {
                "video": -self.video_critic(fake).mean(),
                "image": -self.train_config.image_lambda * self.image_critic(random_frames(fake)).mean(),
            }
            if self.pair_critic is not None:
                terms["pair"] = self._pair_term(fake)
        grads, flat = {}, {}
        for index, (name, term) in enumerate(terms.items()):
            grads[name] = torch.autograd.grad(term, params, retain_graph=index < len(terms) - 1, allow_unused=True)
            flat[name] = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads[name], params)])
        norms = {name: float(vector.norm()) for name, vector in flat.items()}
        balance = {f"grad_norm_{name}": norm for name, norm in norms.items()}
        for name in terms.keys() - {"video"}:
            cosine = float(torch.dot(flat["video"], flat[name])) / max(norms["video"] * norms[name], 1e-30)
            balance[f"{name}_along_video"] = cosine * norms[name] / max(norms["video"], 1e-30)
            if name == "image":
                balance["grad_cosine"] = cosine
        for index, param in enumerate(params):
            parts = [g[index] for g in grads.values() if g[index] is not None]
            param.grad = sum(parts) if parts else None
        return sum(terms.values()).detach(), balance

    def _critic_update(
        self, real: Tensor, fake: Tensor, negatives: Tensor | None
    ) -> tuple[CriticLoss, CriticLoss, dict[str, float]]:
        """One update of D_V and D_I (on one random frame per video), as ``penalty_step`` says.

        With identity negatives D_V also maximises w (E[D_V(real)] - E[D_V(negative)]) and
        its gradient penalty also covers real-negative interpolates (model/identity.py).
        """
        cfg = self.train_config
        if cfg.penalty_step == "joint":
            with self._autocast():
                gap, identity_gap = gaps_with_negatives(self.video_critic, real, fake, negatives)
                penalty = penalty_with_negatives(self.video_critic, real, fake, negatives)
                image = critic_loss(self.image_critic, random_frames(real), random_frames(fake), cfg.gp_lambda)
            self._critic_step(cfg.gp_lambda * penalty - gap - cfg.identity_weight * identity_gap + image.loss)
        else:
            frames = random_frames(real), random_frames(fake)
            with self._autocast():
                gap, identity_gap = gaps_with_negatives(self.video_critic, real, fake, negatives)
                image_gap = wasserstein_gap(self.image_critic, *frames)
            self._critic_step(-(gap + image_gap + cfg.identity_weight * identity_gap))
            with self._autocast():
                penalty = penalty_with_negatives(self.video_critic, real, fake, negatives)
                image_penalty = gradient_penalty(self.image_critic, *frames)
            self._critic_step(cfg.gp_lambda * (penalty + image_penalty))
            image = CriticLoss((cfg.gp_lambda * image_penalty - image_gap).detach(), image_gap.item(), image_penalty.item())
        video = CriticLoss((cfg.gp_lambda * penalty - gap).detach(), gap.item(), penalty.item())
        identity = {"identity_gap_video": identity_gap.item()} if negatives is not None else {}
        return video, image, identity

    def _critic_step(self, loss: Tensor, optimizers: tuple[torch.optim.Optimizer, ...] | None = None) -> None:
        """One Adam step of D_V and D_I (or of ``optimizers``) on ``loss``."""
        optimizers = optimizers or (self.opt_dv, self.opt_di)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()

    def _pair_update(self, real: Tensor, fake: Tensor, swaps: Tensor | None) -> dict[str, float]:
        """One update of D_P (model/pairs.py), with ``penalty_step``'s split, on pairs drawn once for both steps."""
        cfg, critic = self.train_config, self.pair_critic
        optimizer = (self.critic_optimizers[f"opt_{PAIR_PREFIX.lower()}"],)
        later = later_frames(real.shape[0], real.shape[2], real.device)
        real_pairs, fake_pairs = frame_pairs(real, later), frame_pairs(fake, later)
        negative_pairs = frame_pairs(swaps, later, first_from=real) if swaps is not None else None
        with self._autocast():
            gap, identity_gap = gaps_with_negatives(critic, real_pairs, fake_pairs, negative_pairs)
            objective = gap + PAIR_NEGATIVE_WEIGHT * identity_gap
            if cfg.penalty_step == "joint":
                penalty_value = penalty_with_negatives(critic, real_pairs, fake_pairs, negative_pairs)
                self._critic_step(cfg.gp_lambda * penalty_value - objective, optimizer)
        if cfg.penalty_step == "separate":
            self._critic_step(-objective, optimizer)
            with self._autocast():
                penalty_value = penalty_with_negatives(critic, real_pairs, fake_pairs, negative_pairs)
            self._critic_step(cfg.gp_lambda * penalty_value, optimizer)
        values = {"wasserstein_pair": gap.item(), "gp_pair": penalty_value.item()}
        if negative_pairs is not None:
            values["identity_gap_pair"] = identity_gap.item()
        return values

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
            "identity_negatives": self.identity_negatives_on,
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
        ckpt.save_tensors(self.run_dir / ckpt.CRITIC_WEIGHTS, ckpt.critic_tensors(self.critics))
        manifest = self.manifest()
        manifest["optimizers"] = groups
        if self.average is not None:
            manifest["average_updates"] = self.average.updates
        ckpt.write_json(self.run_dir / ckpt.MANIFEST, manifest)

    @classmethod
    def resume(
        cls,
        run_dir: Path,
        bank: Tensor,
        device: str | torch.device = "cpu",
        swaps: Tensor | None = None,
        **changes: int | float | None,
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
            swaps,
        )
        trainer.base_model = manifest.get("base_model")
        trainer.load_state(manifest)
        return trainer

    def load_weights(self, model_dir: Path, label: str) -> None:
        """Fine-tuning: start from another model's networks (critics too when it has them), at step 0.

        Critics come from a run's training state, or from a model folder's bf16 critics file.
        """
        tensors = ckpt.load_tensors(Path(model_dir) / ckpt.GENERATOR_WEIGHTS)
        if self.model_config.content_code == "shared":
            tensors = shared_content_weights(tensors)
        self.generator.load_state_dict({k: v.to(self.device) for k, v in tensors.items()})
        if self.average is not None:
            self.average.reset(self.generator)
        state_path = Path(model_dir) / ckpt.TRAINING_STATE
        if not state_path.exists():
            state_path = Path(model_dir) / ckpt.CRITIC_WEIGHTS
        if state_path.exists():
            state = {k: v.to(self.device, torch.float32) for k, v in ckpt.load_tensors(state_path).items()}
            for prefix, critic in self.critics.items():
                if prefix != PAIR_PREFIX or ckpt.fits(prefix, critic, state):  # a base without this D_P: it starts fresh
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
