"""How long the batch's one pass takes on the GPU, by its size, and where its time goes.

    python benchmarks/profile_batch_pass.py --shape 2b [--rows 32] [--prompts 0 1 2] [--prompt-tokens 64]

Uses the random-weight checkpoint that bench_engine.py writes (written here if missing) and the
batch scheduler's own pass (tutor.engine.batch_passes.BatchedStep) on its cache of slots, captured
and, unless TUTOR_COMPILE=0, compiled as `tutor serve` runs it. For ``--rows`` running sequences
(at positions of about 100) plus 0, 1, 2... new prompts of ``--prompt-tokens`` riding in the
pass, it prints the replay's GPU time (CUDA events, median of 50) beside the time one read of the
weights takes at the GPU's measured copy bandwidth: the floor for a pass bound by memory. Then the
uncaptured pass's kernels by GPU time (torch.profiler), for the largest case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import ensure_checkpoint  # noqa: E402


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.model.parameters())


def copy_bandwidth(nbytes: int = 1 << 30) -> float:
    """Bytes a second that a device-to-device copy reads (and writes): a pass's reading floor."""
    a = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(3):
        b.copy_(a)
    start.record()
    for _ in range(10):
        b.copy_(a)
    end.record()
    torch.cuda.synchronize()
    return 2 * nbytes * 10 / (start.elapsed_time(end) / 1e3)


def stage(step, rows: int, prompts: int, tokens: int, scratch: int) -> int:
    """Rows 0..rows-1 decode in slots 0.. at positions near 100; prompts ride after them, each in a
    slot of its own from position 0; their last tokens are picked. Returns the pass's row count."""
    n = rows + prompts * tokens
    step.token[:n, 0] = torch.randint(4, 1000, (n,), device="cuda")
    step.slots[:rows] = torch.arange(rows, device="cuda")
    step.positions[:rows] = 100 + torch.arange(rows, device="cuda") % 7
    for p in range(prompts):
        at = rows + p * tokens
        step.slots[at:at + tokens] = rows + p
        step.positions[at:at + tokens] = torch.arange(tokens, device="cuda")
        step.picks[rows + p] = at + tokens - 1
    step.slots[n:] = scratch
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="2b", choices=["2b", "7b"])
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--prompts", type=int, nargs="+", default=[0, 1, 2, 4])
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--slots", type=int, default=64)
    ap.add_argument("--slot-tokens", type=int, default=8192,
                    help="positions a slot holds (the server's default: the model's context; the attention's grid "
                         "grows with it)")
    ap.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    args = ap.parse_args()
    os.environ.setdefault("TUTOR_COMPILE", "1")
    from tutor.engine import load
    from tutor.engine.batch_passes import BatchedStep
    from tutor.engine.model import KVCache

    if args.rows + max(args.prompts) > args.slots:
        raise SystemExit("--rows plus the most --prompts must fit --slots (a slot a sequence)")
    model = load(ensure_checkpoint(args.workdir, args.shape), device="cuda")
    floor = weight_bytes(model) / copy_bandwidth() * 1e3
    capacity = args.slots + max(args.prompts) * args.prompt_tokens
    with torch.inference_mode():
        cache = KVCache(model.config, args.slots + 1, args.slot_tokens, model.dtype, model.device, zeroed=True)
        step = BatchedStep(model, cache, args.slots, args.slots, capacity=capacity)
        print(f"{args.shape}: {weight_bytes(model) / 2**30:.2f} GiB of weights, read once in {floor:.2f} ms at the "
              f"copy bandwidth; pass {step.path}")
        print("| rows | new prompts | pass rows (bucket) | GPU ms (median of 50) | vs one read of the weights |")
        print("|---|---|---|---|---|")
        for prompts in args.prompts:
            n = stage(step, args.rows, prompts, args.prompt_tokens, args.slots)
            size = step.bucket(n)
            step.capture(size)
            graph, _ = step._graphs[size]
            times = []
            for _ in range(50):
                stage(step, args.rows, prompts, args.prompt_tokens, args.slots)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                graph.replay()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            ms = statistics.median(times)
            print(f"| {args.rows} | {prompts} x {args.prompt_tokens} | {n} ({size}) | {ms:.2f} | {ms / floor:.2f}x |")
        n = stage(step, args.rows, max(args.prompts), args.prompt_tokens, args.slots)
        plain = model.model.decode_rows
        for _ in range(2):
            plain(step.token[:n], step.slots[:n], step.positions[:n], cache, step.picks[:min(n, args.slots)])
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            plain(step.token[:n], step.slots[:n], step.positions[:n], cache, step.picks[:min(n, args.slots)])
            torch.cuda.synchronize()
    kernels = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    total = sum(e.self_device_time_total for e in kernels) / 1e3
    print(f"\nuncaptured pass of {n} rows: {sum(e.count for e in kernels)} kernels, {total:.3f} ms of GPU time")
    for e in sorted(kernels, key=lambda e: -e.self_device_time_total)[:14]:
        print(f"  {e.self_device_time_total / 1e3:7.3f} ms  x{e.count:4d}  {e.key[:100]}")


if __name__ == "__main__":
    main()
