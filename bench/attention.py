"""Our Nystrom attention against exact attention and the reference's ways, side by side.

Wall time and peak memory of each variant, forward (inference, no graph) and forward +
backward (training), at the generator's attention sizes; each case runs in a fresh
subprocess so that its peak RSS is its own. Relative error against exact attention is
measured separately on batch 1 (it does not depend on the batch).

Variants, all fed the same q, k (B, N, C/8) and v (B, N, C), laid out as the model makes
them (transposed views of channel-first 1x1x1-conv outputs):

    exact-naive   softmax(Q K^T s) by bmm, applied as bmm(V, S^T): the reference's exact attention (N x N)
    exact-sdpa    F.scaled_dot_product_attention on those tensors as they come: non-contiguous, q/k
                  narrower than v, so SDPA falls back to its math kernel (N x N)
    exact-flash   savgan flash_attention: q/k zero-padded to v's width, contiguous, so the CPU flash
                  kernel runs (O(N) memory): the model's `full` attention
    nystrom-ref   our landmarks and scale, the three kernels multiplied into N x N first and then
                  applied to V: the reference's order (bench/plain_reference.py)
    nystrom       savgan nystrom_attention: the model's `nystrom` attention
    nystrom-pkg   lucidrains' nystrom-attention (PyPI; "not installed" when absent):
                  NystromAttention(dim=2d+C, dim_head=C, heads=1, num_landmarks=m, pinv_iterations=6,
                  residual=False), fed x = [q, k, v]; to_qkv is wired to q*sqrt(C/d) (so that its
                  1/sqrt(C) scale gives our 1/sqrt(d)), k zero-padded to C, and v, and to_out to the
                  identity, so it attends over exactly our q, k, v. Its weights are frozen; the two
                  tiny projections stay in the timing. Its landmarks are segment means (the mean of
                  N/m consecutive tokens), ours a random subset of tokens.

Error inputs: "random" is q, k, v ~ N(0, 1) (near-uniform attention, the easy case for
landmarks); "smooth" is q = k = 2 sin(coords W + phase) with coords the (t, y, x) grid
positions in [0, 1] and W ~ N(0, 3^2), v alike: smooth low-rank features with peaked
attention, closer to what conv features of a video look like.

    python bench/attention.py                      # the paper's sizes, about 7 minutes on 2 cores
    python bench/attention.py --shapes 4x8x8:64 8x16x16:32 --batches 8 --variants exact-flash nystrom
        # the cpu preset's generator layers
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from savgan.model.attention import flash_attention, nystrom_attention

Attend = Callable[[Tensor, Tensor, Tensor], Tensor]
VARIANTS = ("exact-naive", "exact-sdpa", "exact-flash", "nystrom-ref", "nystrom", "nystrom-pkg")
SQUARE_COPIES = {
    ("exact-naive", "forward"): 2.0,
    ("exact-naive", "forward+backward"): 4.0,
    ("exact-sdpa", "forward"): 2.3,
    ("exact-sdpa", "forward+backward"): 3.0,
    ("nystrom-ref", "forward"): 1.15,
    ("nystrom-ref", "forward+backward"): 2.2,
}
"""Peak memory of the N x N variants in (B, N, N) float32 tensors, measured at N = 16384, B = 1."""
MODES = ("forward", "forward+backward")
PINV_ITERATIONS = 6


@dataclass(frozen=True)
class Case:
    variant: str
    frames: int
    side: int
    channels: int
    batch: int
    mode: str
    landmarks: int

    @property
    def tokens(self) -> int:
        return self.frames * self.side * self.side

    def predicted_gb(self) -> float:
        """Peak of the N x N variants (the others stay far below 1 GB at these sizes)."""
        copies = SQUARE_COPIES.get((self.variant, self.mode), 0.0)
        return copies * self.batch * self.tokens**2 * 4 / 2**30


def package_attention(width: int, landmarks: int) -> Attend | None:
    """lucidrains' NystromAttention wired to attend over given q, k, v (see the module docstring)."""
    try:
        from nystrom_attention import NystromAttention
    except ImportError:
        return None
    cache: dict[int, torch.nn.Module] = {}

    def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        d = q.shape[-1]
        if d not in cache:
            dim = 2 * d + width
            module = NystromAttention(
                dim=dim, dim_head=width, heads=1, num_landmarks=landmarks, pinv_iterations=PINV_ITERATIONS, residual=False
            )
            with torch.no_grad():
                qkv = torch.zeros(3 * width, dim)
                qkv[:d, :d] = torch.eye(d) * math.sqrt(width / d)
                qkv[width : width + d, d : 2 * d] = torch.eye(d)
                qkv[2 * width :, 2 * d :] = torch.eye(width)
                module.to_qkv.weight.copy_(qkv)
                module.to_out[0].weight.copy_(torch.eye(dim, width))
                module.to_out[0].bias.zero_()
            cache[d] = module.requires_grad_(False)
        return cache[d](torch.cat([q, k, v], dim=-1))[..., :width]

    return attend


def variant_function(name: str, width: int, landmarks: int) -> Attend | None:
    """The attention of one variant as f(q, k, v) -> (B, N, C); None when it is not installed."""
    if name == "exact-flash":
        return flash_attention
    if name == "nystrom":
        return lambda q, k, v: nystrom_attention(q, k, v, landmarks, PINV_ITERATIONS)
    if name == "nystrom-pkg":
        return package_attention(width, landmarks)
    if name == "exact-sdpa":
        return lambda q, k, v: F.scaled_dot_product_attention(
            q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=1 / math.sqrt(q.shape[-1])
        ).squeeze(1)
    from plain_reference import materialised_attention_matrix

    kind = "nystrom" if name == "nystrom-ref" else "full"

    def reference(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        matrix = materialised_attention_matrix(q, k, kind, landmarks, PINV_ITERATIONS)
        return torch.bmm(v.transpose(1, 2), matrix.transpose(1, 2)).transpose(1, 2)

    return reference


def model_layout(channels_first: Tensor) -> Tensor:
    """(B, C, N) -> (B, N, C) as a transposed view, the way SelfAttention3d hands tensors over."""
    return channels_first.transpose(1, 2)


def random_inputs(batch: int, tokens: int, channels: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    d = channels // 8
    return (
        torch.randn(batch, d, tokens, generator=g),
        torch.randn(batch, d, tokens, generator=g),
        torch.randn(batch, channels, tokens, generator=g),
    )


def smooth_inputs(frames: int, side: int, channels: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-1 channel-first q = k and v, smooth in (t, y, x): see the module docstring."""
    g = torch.Generator().manual_seed(seed)
    axes = (torch.linspace(0, 1, frames), torch.linspace(0, 1, side), torch.linspace(0, 1, side))
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)

    def features(width: int) -> Tensor:
        weights = torch.randn(3, width, generator=g) * 3
        phases = torch.rand(width, generator=g) * 2 * math.pi
        return (2 * torch.sin(coords @ weights + phases)).T.unsqueeze(0).contiguous()

    qk = features(channels // 8)
    return qk, qk.clone(), features(channels)


def memory_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def run_case(case: Case, repeats: int, slow_s: float) -> dict:
    """Time one case in this (fresh) process; peak RSS counts from after imports and inputs."""
    attend = variant_function(case.variant, case.channels, case.landmarks)
    if attend is None:
        return {"status": "not installed"}
    inputs = random_inputs(case.batch, case.tokens, case.channels, seed=0)
    backward = case.mode == "forward+backward"
    baseline_kib = memory_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS

    def once() -> float:
        leaves = [t.detach().requires_grad_(backward) for t in inputs]
        start = time.perf_counter()
        with torch.set_grad_enabled(backward):
            out = attend(*(model_layout(t) for t in leaves))
            if backward:
                out.sum().backward()
        return time.perf_counter() - start

    first = once()
    times = [first] if first > slow_s else [once() for _ in range(repeats)]
    return {
        "status": "ok",
        "runs": len(times),
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "peak_mb": (memory_kib("VmHWM") - baseline_kib) / 1024,
    }


def relative_errors(frames: int, side: int, channels: int, variants: list[str], landmarks: int) -> dict:
    """Relative Frobenius error of each variant against exact (flash) attention, batch 1."""
    tokens = frames * side * side
    cases = {"random": random_inputs(1, tokens, channels, seed=1), "smooth": smooth_inputs(frames, side, channels, seed=2)}
    errors: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for input_name, channels_first in cases.items():
            q, k, v = (model_layout(t) for t in channels_first)
            exact = flash_attention(q, k, v)
            for name in variants:
                attend = variant_function(name, channels, landmarks)
                if attend is None:
                    continue
                torch.manual_seed(3)  # the same landmark draw for nystrom and nystrom-ref
                error = ((attend(q, k, v) - exact).norm() / exact.norm()).item()
                errors.setdefault(name, {})[input_name] = error
    return errors


def child(command: list[str]) -> dict:
    """Run this script on one job in a fresh interpreter; its last stdout line is JSON."""
    done = subprocess.run([sys.executable, __file__, *command], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"status": f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> dict:
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.machine())
    try:
        from importlib.metadata import version

        package = version("nystrom-attention")
    except Exception:
        package = "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "nystrom_attention": package,
        "python": platform.python_version(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def parse_shape(text: str) -> tuple[int, int, int]:
    """'16x32x32:32' -> (frames 16, side 32, channels 32)."""
    grid, channels = text.split(":")
    frames, side, _ = (int(n) for n in grid.split("x"))
    return frames, side, int(channels)


def print_table(rows: list[dict]) -> None:
    print(f"{'N':>6} {'C':>3} {'B':>2} {'mode':16} {'variant':12} {'median s':>9} {'min-max s':>15} {'n':>2} "
          f"{'peak MB':>8} {'x flash':>8} {'err rand':>9} {'err smooth':>10}")
    for r in rows:
        head = f"{r['tokens']:6d} {r['channels']:3d} {r['batch']:2d} {r['mode']:16} {r['variant']:12}"
        errors = f"{r['error_random']:9.2e} {r['error_smooth']:10.2e}" if "error_random" in r else f"{'':9} {'':10}"
        if r["status"] != "ok":
            print(f"{head} {r['status']:>45} {errors}")
            continue
        speed = f"{r['speedup_vs_flash']:8.2f}" if "speedup_vs_flash" in r else f"{'':8}"
        print(f"{head} {r['median_s']:9.3f} {r['min_s']:7.3f}-{r['max_s']:<7.3f} {r['runs']:2d} "
              f"{r['peak_mb']:8.0f} {speed} {errors}")


def check_targets(rows: list[dict], tokens: int, batch: int) -> list[str]:
    """The issue's targets at N = 16384, batch 4, forward+backward."""
    at = {r["variant"]: r for r in rows if r["tokens"] == tokens and r["batch"] == batch
          and r["mode"] == "forward+backward" and r["status"] == "ok"}
    if "nystrom" not in at or "exact-flash" not in at:
        return []
    ours, flash = at["nystrom"], at["exact-flash"]
    lines = [f"nystrom vs exact-flash: {flash['median_s'] / ours['median_s']:.2f}x faster (target >= 3)",
             f"nystrom peak {ours['peak_mb']:.0f} MB (target <= 1024)"]
    if "nystrom-pkg" in at:
        lines.append(f"nystrom vs nystrom-attention: {at['nystrom-pkg']['median_s'] / ours['median_s']:.2f}x faster (target > 1)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["8x16x16:64", "16x32x32:32"], help="TxHxW:C")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--landmarks", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-s", type=float, default=1.5, help="a case whose first run takes longer is timed once")
    parser.add_argument("--max-gb", type=float, default=17.0, help="cases predicted to need more are not run")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attention.json")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--errors", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(Case(**json.loads(args.case)), args.repeats, args.slow_s)))
        return
    if args.errors:
        frames, side, channels = parse_shape(args.errors)
        print(json.dumps(relative_errors(frames, side, channels, args.variants, args.landmarks)))
        return
    rows = []
    for shape in args.shapes:
        frames, side, channels = parse_shape(shape)
        errors = child(["--errors", shape, "--landmarks", str(args.landmarks), "--variants", *args.variants])
        for batch in args.batches:
            for mode in args.modes:
                for variant in args.variants:
                    case = Case(variant, frames, side, channels, batch, mode, args.landmarks)
                    if case.predicted_gb() > args.max_gb:
                        result = {"status": f"not run: needs ~{case.predicted_gb():.0f} GB"}
                    else:
                        options = ["--repeats", str(args.repeats), "--slow-s", str(args.slow_s)]
                        result = child(["--case", json.dumps(asdict(case)), *options])
                    row = {**asdict(case), "tokens": case.tokens, **result}
                    if variant in errors:
                        row.update({f"error_{name}": value for name, value in errors[variant].items()})
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    for row in rows:
        flash = next((r for r in rows if r["status"] == "ok" and r["variant"] == "exact-flash"
                      and all(r[key] == row[key] for key in ("tokens", "channels", "batch", "mode"))), None)
        if row["status"] == "ok" and flash is not None:
            row["speedup_vs_flash"] = flash["median_s"] / row["median_s"]
    meta = machine()
    print(f"{meta['cpu']}, {meta['cores']} cores, torch {meta['torch']} ({meta['threads']} threads), "
          f"nystrom-attention {meta['nystrom_attention']}, {meta['date']}; m = {args.landmarks}")
    print_table(rows)
    targets = check_targets(rows, tokens=16384, batch=4)
    for line in targets:
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "landmarks": args.landmarks, "rows": rows, "targets": targets}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
