"""Generation speed: videos per second before and after the generation optimisations, side by side.

Runs ``generate_videos`` for the paper and CPU presets (float32, untrained weights: speed
does not depend on their values) at 1 and 16 videos per call, and one 1024-frame paper
video. Each case runs in a fresh subprocess, so its peak memory is that process's max
RSS. "before" is the model code of a git revision (``--baseline``, default HEAD) exported
to a temporary folder; "after" is the working tree. Also measured in the same run: this
machine's fp32 matmul throughput (a 2048^3 sgemm into a preallocated output) and the
FLOPs of one video (FlopCounterMode: convolutions and matmuls), to say what fraction of
the machine generation reaches.

    /tmp/quiet-bench python bench/generate.py [--repeats 3] [--baseline HEAD] [--only paper]

Prints a table and writes bench/results/generate.json.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**32)}
"""glibc settings that keep freed large blocks in the heap instead of unmapping them."""


@dataclass(frozen=True)
class Case:
    """One row of the table: what to generate and with which code and settings."""

    variant: str
    tree: str  # "before" or "after"
    preset: str
    count: int
    frames: int
    threads: int = 2
    batch_clips: int | None = None  # after only; None: generate_videos' default
    env: dict[str, str] = field(default_factory=dict)


def cases(presets: list[str], max_threads: int) -> list[Case]:
    """The variants, each at 1 and 16 videos per call; then paper batch 8 and the 1024-frame paper video."""
    frames_of = {"paper": 32, "cpu": 16}
    rows = []
    for name in presets:
        for count in (1, 16):
            frames = frames_of[name]
            rows += [
                Case("before", "before", name, count, frames, max_threads),
                Case("after, 1 video/forward", "after", name, count, frames, max_threads, batch_clips=1),
                Case("after", "after", name, count, frames, max_threads),
                Case("before, 1 thread", "before", name, count, frames, 1),
                Case("after, 1 thread", "after", name, count, frames, 1),
                Case("after + tuned malloc", "after", name, count, frames, max_threads, env=TUNED_MALLOC),
            ]
    if "paper" in presets:
        rows += [
            Case("before", "before", "paper", 8, 32, max_threads),  # the reference's batch-8 figure
            Case("after", "after", "paper", 8, 32, max_threads),
            Case("before", "before", "paper", 1, 1024, max_threads),
            Case("after", "after", "paper", 1, 1024, max_threads),
            Case("after + tuned malloc", "after", "paper", 1, 1024, max_threads, env=TUNED_MALLOC),
        ]
    return rows


def run_case(case: Case, repeats: int) -> dict:
    """Child process: build the generator, warm up once, time ``repeats`` calls."""
    from savgan.model import registry
    from savgan.model.generate import generate_videos

    torch.set_num_threads(case.threads)
    generator = registry.load_generator(registry.resolve(f"init:{case.preset}"))
    kwargs = {} if case.batch_clips is None else {"batch_clips": case.batch_clips}
    loaded_rss = peak_rss_mb()
    generate_videos(generator, 0, case.frames, case.count, **kwargs)
    seconds = []
    for repeat in range(repeats):
        start = time.perf_counter()
        generate_videos(generator, repeat + 1, case.frames, case.count, **kwargs)
        seconds.append(time.perf_counter() - start)
    return {
        "seconds_per_call": seconds,
        "loaded_rss_mb": loaded_rss,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's over exec)."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def export_tree(revision: str, into: Path) -> Path:
    """``model/`` of ``revision`` as an importable ``savgan.model`` under ``into``."""
    archive = subprocess.run(["git", "archive", revision, "model"], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into / "savgan", filter="data")
    return into


def spawn(case: Case, repeats: int, before_root: Path) -> dict:
    """Run ``case`` in a fresh interpreter; the "before" tree shadows the installed package."""
    env = {**os.environ, **case.env, "OMP_NUM_THREADS": str(case.threads)}
    if case.tree == "before":
        env["PYTHONPATH"] = str(before_root)
    command = [sys.executable, __file__, "--case", json.dumps(asdict(case)), "--repeats", str(repeats)]
    done = subprocess.run(command, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def sgemm_gflops(threads: int, size: int = 2048, repeats: int = 10) -> dict:
    """fp32 matmul throughput into a preallocated output (no page faults in the timing)."""
    torch.set_num_threads(threads)
    a, b, out = torch.randn(size, size), torch.randn(size, size), torch.empty(size, size)
    torch.mm(a, b, out=out)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return {"threads": threads, "size": size, "median_gflops": statistics.median(rates), "max_gflops": max(rates)}


def cpu_flash_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FlopCounterMode knows SDPA's GPU kernels only; the CPU flash kernel does the same two matmuls."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def flops_per_video(preset_name: str, frames: int) -> float:
    """Convolution, matmul and attention FLOPs of one video's forward (softmax and norms not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    from savgan.model import registry
    from savgan.model.generate import latent_steps_for
    from savgan.model.networks import sample_latents

    generator = registry.load_generator(registry.resolve(f"init:{preset_name}"))
    z = sample_latents(generator.config, 1, latent_steps_for(generator.config, frames))
    counter = FlopCounterMode(
        display=False, custom_mapping={torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_flash_flops}
    )
    with torch.no_grad(), counter:
        generator(z, torch.Generator().manual_seed(0))
    return float(counter.get_total_flops())


def machine() -> dict:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }


def summarise(case: Case, result: dict) -> dict:
    per_video = [s / case.count for s in result["seconds_per_call"]]
    median = statistics.median(per_video)
    return {
        **asdict(case),
        "s_per_video_median": median,
        "s_per_video_min": min(per_video),
        "s_per_video_max": max(per_video),
        "videos_per_s": 1 / median,
        "loaded_rss_mb": result["loaded_rss_mb"],
        "peak_rss_mb": result["peak_rss_mb"],
    }


def same_workload(a: dict, b: dict) -> bool:
    return all(a[key] == b[key] for key in ("preset", "frames", "count", "threads"))


def print_table(rows: list[dict]) -> None:
    print(f"{'preset':6} {'frames':>6} {'videos':>6} {'variant':24} {'thr':>3} {'s/video':>8} {'min-max':>15} "
          f"{'video/s':>8} {'peak MB':>8} {'x before':>8} {'%sgemm':>6}")
    for r in rows:
        print(f"{r['preset']:6} {r['frames']:6d} {r['count']:6d} {r['variant']:24} {r['threads']:3d} "
              f"{r['s_per_video_median']:8.4f} {r['s_per_video_min']:7.4f}-{r['s_per_video_max']:<7.4f} "
              f"{r['videos_per_s']:8.2f} {r['peak_rss_mb']:8.0f} {r['speedup_vs_before']:8.2f} "
              f"{100 * r['sgemm_fraction']:6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default="HEAD", help="git revision whose model/ is the 'before' code")
    parser.add_argument("--only", choices=["paper", "cpu"], help="one preset only")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="default bench/results/generate[-<only>].json")
    args = parser.parse_args()
    args.out = args.out or REPO / "bench" / "results" / f"generate{'-' + args.only if args.only else ''}.json"
    if args.case:
        print(json.dumps(run_case(Case(**json.loads(args.case)), args.repeats)))
        return
    max_threads = torch.get_num_threads()
    presets = [args.only] if args.only else ["paper", "cpu"]
    sgemm = [sgemm_gflops(t) for t in sorted({1, max_threads})]
    flops = {f"{p}/{f}": flops_per_video(p, f) for p, f in [("paper", 32), ("cpu", 16), ("paper", 1024)] if p in presets}
    rows = []
    with tempfile.TemporaryDirectory(prefix="savgan-before-") as tmp:
        before_root = export_tree(args.baseline, Path(tmp))
        for case in cases(presets, max_threads):
            rows.append(summarise(case, spawn(case, args.repeats, before_root)))
            print(f"done: {case.preset} {case.frames} frames x{case.count} {case.variant}", file=sys.stderr, flush=True)
    gflops_at = {s["threads"]: s["median_gflops"] for s in sgemm}
    for r in rows:
        before = next(b for b in rows if b["tree"] == "before" and same_workload(b, r))
        r["speedup_vs_before"] = before["s_per_video_median"] / r["s_per_video_median"]
        r["flops_per_video"] = flops[f"{r['preset']}/{r['frames']}"]
        r["sgemm_fraction"] = r["flops_per_video"] * r["videos_per_s"] / 1e9 / gflops_at[r["threads"]]
    print("sgemm 2048^3 fp32: " + ", ".join(f"{s['threads']} thread(s) {s['median_gflops']:.1f} GFLOP/s" for s in sgemm))
    print("FLOPs per video: " + ", ".join(f"{k} {v / 1e9:.2f} G" for k, v in flops.items()))
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {**machine(), "threads_default": max_threads, "baseline": args.baseline, "repeats": args.repeats}
    args.out.write_text(json.dumps({"meta": meta, "sgemm": sgemm, "flops_per_video": flops, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
