"""Where one decode step's GPU time goes, kernel by kernel (torch.profiler), at a real shape.

    python benchmarks/profile_decode_step.py --shape 2b [--plain]

Uses the random-weight checkpoint that bench_engine.py writes (written here if missing), a cache
of 1280 positions and the token at position 1100. Profiles the step as the engine builds it on a
GPU (fused, transposed weights, the Triton attention kernels unless TUTOR_DECODE_KERNEL=0),
compiled with torch.compile (add --plain for the eager step too). Kernel times are what the GPU
spent in each kernel; a captured step adds the gaps between them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import ensure_checkpoint  # noqa: E402

from tutor.engine import load  # noqa: E402
from tutor.engine.graphs import compiled_step  # noqa: E402


def profile_step(name: str, step, model, steps: int = 5, top: int = 14) -> None:
    cache = model.model.new_cache(1, 1280)
    token = torch.zeros((1, 1), dtype=torch.long, device="cuda")
    position = torch.tensor([1100], device="cuda")
    with torch.inference_mode():
        for _ in range(3):  # compile, choose algorithms
            step(token, position, cache)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(steps):
                step(token, position, cache)
            torch.cuda.synchronize()
    kernels = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    total_ms = sum(e.self_device_time_total for e in kernels) / steps / 1e3
    count = sum(e.count for e in kernels) / steps
    print(f"== {name}: {count:.0f} kernels a step, {total_ms:.3f} ms of GPU time a step")
    for e in sorted(kernels, key=lambda e: -e.self_device_time_total)[:top]:
        print(f"  {e.self_device_time_total / steps / 1e3:7.3f} ms  x{e.count / steps:4.0f}  {e.key[:100]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="2b", choices=["2b", "7b"])
    ap.add_argument("--plain", action="store_true", help="also profile the eager (uncompiled) step")
    ap.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    args = ap.parse_args()
    model = load(ensure_checkpoint(args.workdir, args.shape), device="cuda", dtype="bfloat16")
    print(f"{torch.cuda.get_device_name()}, {args.shape}, bfloat16, torch {torch.__version__}")
    if args.plain:
        profile_step("eager", model.model.decode_step, model)
    profile_step("compiled", compiled_step(model.model), model)


if __name__ == "__main__":
    main()
