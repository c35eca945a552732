"""The Moving-MNIST frame classifier behind Flips/seq, Res18-cosTS and FD-own.

The paper judges digit identity over time with "a ResNet-18 trained to classify MMNIST
digits" (95 % accuracy) and takes its 512-d last features for cosTS. Ours keeps the
ResNet-18 layout (BasicBlocks [2, 2, 2, 2], global average pooling) adapted to small
1-channel frames (3x3 stem, no max-pool), at narrower widths so it trains on a CPU in
minutes. Its last stage has `widths[-1]` channels; a linear projection to 512 units
(+ BatchNorm + ReLU) gives the 512-d, non-negative feature the paper's cosTS uses,
before the final 512 -> 10 linear layer.

It is trained on frames of Moving-MNIST sequences rendered from the TRAIN digits and
measured on frames from the HELD-OUT (MNIST test) digits, so its accuracy is that on
digits it never saw. Retrain with::

    python -m savgan.model.metrics.classifier --train --frame-size 32
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from savgan.model.data.mmnist import render_frames

FEATURE_DIM = 512
NUM_CLASSES = 10
WEIGHTS_DIR = Path(__file__).parent / "weights"
CONFIG_KEY = "classifier_config"
MAX_BLUR_SIGMA = 1.0  # pixels, at the classifier's frame size
NOISE_STD = 0.05


def weights_path(frame_size: int) -> Path:
    """Where the shipped weights for `frame_size` frames live."""
    return WEIGHTS_DIR / f"mmnist_classifier_{frame_size}.safetensors"


@dataclass(frozen=True)
class ClassifierConfig:
    frame_size: int = 32
    widths: tuple[int, int, int, int] = (16, 32, 64, 128)

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierConfig:
        return cls(frame_size=int(data["frame_size"]), widths=tuple(int(w) for w in data["widths"]))


class BasicBlock(nn.Module):
    """The ResNet-18 residual block: two 3x3 convolutions, projection shortcut on change."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class FrameClassifier(nn.Module):
    """Frames (N, 1, H, W) in [-1, 1] -> digit logits (N, 10); `features` gives the 512-d layer."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.stem = nn.Sequential(nn.Conv2d(1, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU())
        stages = []
        cin = w[0]
        for index, cout in enumerate(w):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.project = nn.Sequential(nn.Linear(w[-1], FEATURE_DIM, bias=False), nn.BatchNorm1d(FEATURE_DIM), nn.ReLU())
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        pooled = self.stages(self.stem(frames)).mean(dim=(2, 3))
        return self.project(pooled)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(frames))


def save_classifier(model: FrameClassifier, path: Path, extra: dict | None = None) -> None:
    """Weights as safetensors; the config (and training facts) travel in its metadata."""
    metadata = {CONFIG_KEY: json.dumps(asdict(model.config))}
    if extra:
        metadata["training"] = json.dumps(extra)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)


def _metadata(source: Path) -> dict[str, str]:
    if not source.exists():
        raise FileNotFoundError(
            f"no Moving-MNIST classifier weights at {source}; train them with "
            "`python -m savgan.model.metrics.classifier --train --frame-size N`"
        )
    with safe_open(str(source), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if CONFIG_KEY not in metadata:
        raise ValueError(f"{source} has no {CONFIG_KEY!r} metadata: not a savgan classifier file")
    return metadata


def load_classifier(frame_size: int = 32, path: str | Path | None = None) -> FrameClassifier:
    """The classifier for `frame_size` frames (shipped weights unless `path`), in eval mode."""
    source = Path(path) if path else weights_path(frame_size)
    model = FrameClassifier(ClassifierConfig.from_dict(json.loads(_metadata(source)[CONFIG_KEY])))
    model.load_state_dict(load_file(str(source)))
    return model.eval()


def classifier_card(frame_size: int = 32, path: str | Path | None = None) -> dict:
    """Which weights judge the digits, and the held-out accuracy measured when they were trained."""
    source = Path(path) if path else weights_path(frame_size)
    metadata = _metadata(source)
    training = json.loads(metadata.get("training", "{}"))
    return {
        "weights": str(source),
        "config": json.loads(metadata[CONFIG_KEY]),
        "heldout_accuracy": training.get("heldout_accuracy"),
        "heldout_frames": training.get("heldout_frames"),
    }


@torch.inference_mode()
def predict(model: FrameClassifier, frames: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (N,), features (N, 512)) of frames (N, H, W) in [-1, 1], in batches."""
    device = next(model.parameters(), torch.empty(0)).device
    labels, feats = [], []
    for start in range(0, frames.shape[0], batch):
        f = model.features(frames[start : start + batch].unsqueeze(1).float().to(device))
        feats.append(f.cpu())
        labels.append(model.fc(f).argmax(dim=1).cpu())
    return torch.cat(labels), torch.cat(feats)


def heldout_accuracy(model: FrameClassifier, n: int = 2000, seed: int = 1) -> float:
    """Accuracy on `n` frames of Moving-MNIST sequences made from held-out digits."""
    data = render_frames("heldout", n, model.config.frame_size, seed=seed)
    labels, _ = predict(model, data.frames)
    return float((labels == data.labels).float().mean())


def _augment(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Light augmentation: Gaussian blur of random strength and mild noise, because
    generated frames are softer and noisier than rendered ones."""
    sigma = torch.rand(frames.shape[0], 1, 1, 1, generator=generator) * MAX_BLUR_SIGMA
    blurred = _gaussian_blur(frames, sigma)
    noise = torch.randn(frames.shape, generator=generator) * NOISE_STD
    return (blurred + noise).clamp(-1.0, 1.0)


def _gaussian_blur(frames: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    offsets = torch.arange(-2, 3, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma.view(-1, 1).clamp_min(1e-3) ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (N, 5)
    n, c, h, w = frames.shape
    x = F.pad(frames, (2, 2, 2, 2), mode="replicate").view(1, n * c, h + 4, w + 4)
    x = F.conv2d(x, kernel.view(n, 1, 1, 5), groups=n)
    x = F.conv2d(x, kernel.view(n, 1, 5, 1), groups=n)
    return x.view(n, c, h, w)


def train_classifier(
    frame_size: int = 32,
    num_frames: int = 60000,
    epochs: int = 2,
    batch: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    widths: tuple[int, int, int, int] = (16, 32, 64, 128),
    log_every: int = 50,
) -> tuple[FrameClassifier, dict]:
    """Train on `num_frames` frames of train-digit sequences; one-cycle AdamW schedule."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    data = render_frames("train", num_frames, frame_size, seed=seed)
    model = FrameClassifier(ClassifierConfig(frame_size=frame_size, widths=widths))
    steps = epochs * math.ceil(num_frames / batch)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.15)
    started = time.monotonic()
    step = 0
    model.train()
    for _ in range(epochs):
        order = torch.randperm(num_frames, generator=generator)
        for start in range(0, num_frames, batch):
            idx = order[start : start + batch]
            x = _augment(data.frames[idx].unsqueeze(1), generator)
            loss = F.cross_entropy(model(x), data.labels[idx], label_smoothing=0.05)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if step % log_every == 0:
                print(f"step {step}/{steps} loss {loss.item():.4f} {time.monotonic() - started:.0f}s", flush=True)
    model.eval()
    facts = {
        "train_split": "train (shared/data/mnist/mnist_5k.csv.gz, 5000 digits)",
        "train_frames": num_frames,
        "epochs": epochs,
        "batch": batch,
        "lr": lr,
        "seed": seed,
        "steps": steps,
        "train_seconds": round(time.monotonic() - started, 1),
        "threads": torch.get_num_threads(),
    }
    return model, facts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", help="train and write the weights")
    parser.add_argument("--frame-size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=60000, help="training frames (one per sequence)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; more than the free cores makes training several times slower")
    parser.add_argument("--eval-frames", type=int, default=10000, help="held-out frames to measure accuracy on")
    parser.add_argument("--out", type=Path, default=None, help="weights file (default: the shipped location)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out or weights_path(args.frame_size)
    if args.train:
        model, facts = train_classifier(args.frame_size, args.frames, args.epochs, seed=args.seed)
        facts["heldout_accuracy"] = heldout_accuracy(model, args.eval_frames, seed=1)
        facts["heldout_frames"] = args.eval_frames
        out.parent.mkdir(parents=True, exist_ok=True)
        save_classifier(model, out, facts)
        print(json.dumps({"weights": str(out), **facts}, indent=2))
    else:
        model = load_classifier(args.frame_size, out)
        print(json.dumps({"weights": str(out), "heldout_accuracy": heldout_accuracy(model, args.eval_frames)}))


if __name__ == "__main__":
    main()
