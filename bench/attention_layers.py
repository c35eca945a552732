"""Which attention each generator layer should use: exact flash SDPA or Nystrom, side by side.

Times forward+backward of the attention maths alone at the token counts and widths of
the generator's attention layers (paper and CPU presets), in one process so the ratios
compare like with like. Prints a table and writes bench/results/attention_layers.json.

    python bench/attention_layers.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from savgan.model.attention import exact_attention, flash_attention, nystrom_attention

# (preset, layer, frames, side, channels, batch)
LAYERS = [
    ("paper", "G stage 3", 8, 16, 64, 4),
    ("paper", "G stage 4", 16, 32, 32, 4),
    ("cpu", "G stage 2", 4, 8, 64, 8),
    ("cpu", "G stage 3", 8, 16, 32, 8),
]
LANDMARKS = (512, 128)


def timed(fn, q, k, v, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats + 1):
        qq, kk, vv = (t.detach().requires_grad_(True) for t in (q, k, v))
        start = time.perf_counter()
        fn(qq, kk, vv).sum().backward()
        times.append(time.perf_counter() - start)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attention_layers.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for preset_name, layer, frames, side, channels, batch in LAYERS:
        tokens = frames * side * side
        q, k = (torch.randn(batch, tokens, channels // 8) for _ in range(2))
        v = torch.randn(batch, tokens, channels)
        reference = exact_attention(q[:1], k[:1], v[:1]) if tokens <= 4096 else None
        variants = {"flash": flash_attention}
        for m in LANDMARKS:
            if m < tokens:
                variants[f"nystrom-{m}"] = lambda q, k, v, m=m: nystrom_attention(q, k, v, m)
        for name, fn in variants.items():
            times = timed(fn, q, k, v, args.repeats)
            error = None
            if reference is not None:
                with torch.no_grad():
                    error = ((fn(q[:1], k[:1], v[:1]) - reference).norm() / reference.norm()).item()
            rows.append(
                {
                    "preset": preset_name,
                    "layer": layer,
                    "tokens": tokens,
                    "channels": channels,
                    "batch": batch,
                    "variant": name,
                    "median_s": statistics.median(times),
                    "min_s": min(times),
                    "max_s": max(times),
                    "rel_error_random_inputs": error,
                }
            )
    for row in rows:
        flash = next(r for r in rows if r["layer"] == row["layer"] and r["preset"] == row["preset"] and r["variant"] == "flash")
        row["speed_vs_flash"] = flash["median_s"] / row["median_s"]
    header = f"{'preset':7} {'layer':10} {'N':>6} {'C':>3} {'B':>2} {'variant':12} {'median s':>9} {'min-max s':>17} {'x flash':>8}"
    print(header)
    for r in rows:
        print(
            f"{r['preset']:7} {r['layer']:10} {r['tokens']:6d} {r['channels']:3d} {r['batch']:2d} {r['variant']:12} "
            f"{r['median_s']:9.4f} {r['min_s']:8.4f}-{r['max_s']:<8.4f} {r['speed_vs_flash']:8.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine()}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
