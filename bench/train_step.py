"""Seconds per generator iteration and peak memory of a training step, ours against a plain one.

One iteration = ``n_critic`` (5) critic updates of D_V and D_I with gradient penalty, then
one generator update. Each case runs in a fresh subprocess (so its peak RSS is its own):
one warm-up iteration, then ``--iterations`` timed ones. "plain" is
bench/plain_reference.py: the reference code's structure (N x N attention, separate
backward passes, fakes made with G's graph) on copies of our networks. "CPU s" is the
process's CPU time per iteration over all threads: on a free machine it approaches
threads x wall time; near 1 x wall time with 2 threads, only one core was available.
Ratios against plain are taken within one run. Prints a table and writes
bench/results/train_step-<date>.json (one file per run). All cases take about half an hour: run them in groups,

    /tmp/quiet-bench python bench/train_step.py --cases plain-paper-full-b1 ours-paper-full-b1
    /tmp/quiet-bench python bench/train_step.py --cases plain-paper-b1 ours-paper-b1
    /tmp/quiet-bench python bench/train_step.py --cases ours-paper-b1 ours-paper-b8 ours-cpu-b8 --threads 1 2 --iterations 1
    /tmp/quiet-bench python bench/train_step.py --profile ours-paper-b8
    python bench/train_step.py --cases ours-cpu-b8 ours-cpu-b8-coherent --threads 1 --iterations 10   # the recipe's cost
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from plain_reference import PlainReferenceTrainer
from torch.profiler import ProfilerActivity, profile

from savgan.model.config import preset, train_config_for, with_recipe
from savgan.model.train import Trainer

RESULTS = Path(__file__).parent / "results"
# The authors' code at the paper size on this kind of machine (seconds, GB), from the issue.
REFERENCE = {
    ("exact", 1): (25.0, 4.8),
    ("nystrom", 1): (43.0, 3.0),
    ("nystrom", 8): (448.0, 19.8),
}


@dataclass(frozen=True)
class Case:
    impl: str  # "ours" or "plain"
    preset: str
    batch: int
    recipe: str = "paper"  # model/config.py RECIPES; "coherent" adds identity negatives and the shared seed

    @property
    def name(self) -> str:
        suffix = "" if self.recipe == "paper" else f"-{self.recipe}"
        return f"{self.impl}-{self.preset}-b{self.batch}{suffix}"

    @property
    def g_attention(self) -> str:
        return "nystrom" if self.preset == "paper" else "exact"


CASES = {
    c.name: c
    for c in (
        Case("plain", "paper-full", 1),
        Case("plain", "paper", 1),
        Case("ours", "paper-full", 1),
        Case("ours", "paper", 1),
        Case("ours", "paper", 2),
        Case("ours", "paper", 8),
        Case("ours", "paper-full", 8),
        Case("ours", "cpu", 8),
        Case("ours", "cpu", 8, "coherent"),
    )
}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def build_trainer(case: Case, run_dir: Path) -> Trainer | PlainReferenceTrainer:
    """Our trainer, or the plain one on copies of its networks, on random clips of exactly the trained length."""
    config = with_recipe(preset(case.preset), case.recipe)
    bank = torch.rand(4 * case.batch, config.channels, config.frames, config.size, config.size) * 2 - 1
    train_config = train_config_for(config.arch, case.recipe, batch_size=case.batch)
    swaps = torch.rand_like(bank) * 2 - 1 if train_config.identity_weight > 0 else None
    trainer = Trainer(config, train_config, bank, run_dir, "bench", swaps=swaps)
    return PlainReferenceTrainer(trainer) if case.impl == "plain" else trainer


def code_state() -> dict[str, str]:
    """Hashes of the files that decide the speed: the working tree changes under a benchmark's feet."""
    root = Path(__file__).resolve().parents[1]
    files = [
        "model/attention.py", "model/networks.py", "model/losses.py", "model/identity.py", "model/train.py",
        "bench/plain_reference.py",
    ]
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest()[:12] for name in files}


def run_case(case: Case, iterations: int, threads: int | None) -> dict:
    """Runs in the child process: build, warm up, time ``iterations`` iterations."""
    if threads:
        torch.set_num_threads(threads)
    state = code_state()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = build_trainer(case, Path(run_dir))
        setup_gb = peak_rss_gb()
        times, cpu_times = [], []
        for _ in range(iterations + 1):
            start, cpu_start = time.perf_counter(), time.process_time()
            trainer.iteration()
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    return {
        "setup_rss_gb": setup_gb,
        "peak_rss_gb": peak_rss_gb(),
        "warmup_s": times[0],
        "times_s": times[1:],
        "cpu_s": statistics.median(cpu_times[1:]),
        "threads": torch.get_num_threads(),
        "code": state,
    }


def profile_case(case: Case, out: Path) -> None:
    """One warm-up, then one iteration under torch.profiler: top operators (with shapes) by self CPU time."""
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = build_trainer(case, Path(run_dir))
        trainer.iteration()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            trainer.iteration()
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=30, max_shapes_column_width=70
    )
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(f".{case.name}.profile.txt").write_text(table)


def measure(case: Case, iterations: int, threads: int | None) -> dict:
    """Runs ``case`` in a fresh interpreter and returns its row."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", case.name, "--iterations", str(iterations), "--threads", str(threads or 0)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    times = result.pop("times_s")
    return {
        "case": case.name,
        "impl": case.impl,
        "preset": case.preset,
        "g_attention": case.g_attention,
        "batch": case.batch,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
        **result,
    }


def add_ratios(rows: list[dict]) -> None:
    """Speed-up against the plain implementation measured in this run, and against the authors' code."""
    plain = {(r["g_attention"], r["batch"], r["threads"]): r for r in rows if r["impl"] == "plain"}
    for row in rows:
        key = (row["g_attention"], row["batch"])
        twin = plain.get((*key, row["threads"]))
        if row["impl"] == "ours" and twin:
            row["x_vs_plain"] = twin["median_s"] / row["median_s"]
            row["memory_vs_plain"] = twin["peak_rss_gb"] / row["peak_rss_gb"]
        if key in REFERENCE and row["preset"] != "cpu":
            row["reference_s"], row["reference_gb"] = REFERENCE[key]
            row["x_vs_reference"] = row["reference_s"] / row["median_s"]


def plain_batch8_predictions(rows: list[dict]) -> list[dict]:
    """Plain batch 8 is not run when it would not fit: scale its batch-1 run (time and per-video memory by 8)."""
    predicted = []
    for row in rows:
        if row["impl"] == "plain" and row["batch"] == 1:
            per_video = row["peak_rss_gb"] - row["setup_rss_gb"]
            predicted.append(
                {
                    "case": row["case"].replace("-b1", "-b8"),
                    "g_attention": row["g_attention"],
                    "predicted_s": 8 * row["median_s"],
                    "predicted_peak_gb": row["setup_rss_gb"] + 8 * per_video,
                    "reference": REFERENCE.get((row["g_attention"], 8)),
                    "run": False,
                }
            )
    return predicted


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "default_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def print_table(rows: list[dict], predictions: list[dict]) -> None:
    print(f"{'case':22} {'G attn':8} {'B':>2} {'thr':>3} {'median s/it':>11} {'min-max s':>15} {'CPU s':>6} {'peak GB':>8} {'x plain':>8} {'x authors':>9}")
    for r in rows:
        x_plain = f"{r['x_vs_plain']:.1f}" if "x_vs_plain" in r else "-"
        x_ref = f"{r['x_vs_reference']:.1f}" if "x_vs_reference" in r else "-"
        print(
            f"{r['case']:22} {r['g_attention']:8} {r['batch']:2d} {r['threads']:3d} {r['median_s']:11.2f} "
            f"{r['min_s']:7.2f}-{r['max_s']:<7.2f} {r['cpu_s']:6.1f} {r['peak_rss_gb']:8.2f} {x_plain:>8} {x_ref:>9}"
        )
    for p in predictions:
        print(f"{p['case']:22} {p['g_attention']:8}  8 not run: predicted ~{p['predicted_s']:.0f} s/it, ~{p['predicted_peak_gb']:.1f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2, help="timed iterations after one warm-up")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--threads", type=int, nargs="+", default=[0], help="torch threads per case (0: torch's default)")
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--profile", choices=sorted(CASES), help="profile one iteration of this case instead")
    parser.add_argument("--out", type=Path, default=RESULTS / f"train_step-{time.strftime('%Y%m%d-%H%M%S')}.json")
    args = parser.parse_args()
    if args.profile:
        profile_case(CASES[args.profile], args.out)
        return
    if args.child:
        print(json.dumps(run_case(CASES[args.child], args.iterations, args.threads[0])))
        return
    rows = []
    for name in args.cases:
        for threads in args.threads:
            rows.append(measure(CASES[name], args.iterations, threads))
            row = rows[-1]
            print(f"  {name} x{row['threads']}: {row['median_s']:.2f} s/it ({row['cpu_s']:.1f} CPU s), {row['peak_rss_gb']:.2f} GB", flush=True)
    add_ratios(rows)
    predictions = plain_batch8_predictions(rows)
    print_table(rows, predictions)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "rows": rows, "plain_batch8": predictions}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
