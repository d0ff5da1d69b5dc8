"""Where one CPU decode step's time goes (torch.profiler), at a real shape, with and without the
CPU kernels (tutor.engine.cpu_kernels).

    python benchmarks/profile_cpu_decode.py --shape 2b [--quantize none int8]

Uses the random-weight checkpoint that bench_engine.py writes (written here if missing), a cache of
768 positions (a 512-token prompt and 32 new tokens, rounded as the engine rounds) and the token at
position 540. For each weight format, with torch's kernels and with ours: the step's wall time
(median of --steps), then the operators that took the most of it (self CPU time; ours appear as
cpu_kernels.*), and what share the matrix products and the attention take.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import ensure_checkpoint  # noqa: E402

from tutor.engine import cpu_kernels, load  # noqa: E402

MATMULS = ("aten::mm", "aten::addmm", "aten::linear", "aten::matmul", "aten::_weight_int8pack_mm",
           "cpu_kernels.linear")
ATTENTION = ("aten::bmm", "aten::_softmax", "cpu_kernels.decode_attention")


def labelled(fn, name):
    def call(*args):
        with record_function(name):
            return fn(*args)
    return call


def profile_step(label: str, model, steps: int, top: int) -> float:
    cache = model.model.new_cache(1, 768)
    token = torch.zeros((1, 1), dtype=torch.long)
    position = torch.tensor([540])
    with torch.inference_mode():
        for _ in range(2):
            model.model.decode_step(token, position, cache)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            model.model.decode_step(token, position, cache)
            times.append(time.perf_counter() - start)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                model.model.decode_step(token, position, cache)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key.startswith(MATMULS))
    attention = sum(e.self_cpu_time_total for e in events if e.key.startswith(ATTENTION))
    step = statistics.median(times)
    print(f"== {label}: {step * 1e3:.1f} ms a step ({1 / step:.2f} tok/s; best {min(times) * 1e3:.1f} ms); "
          f"profiled: {total / 3 / 1e3:.1f} ms a step, matrix products {matmul / total:.0%}, "
          f"attention {attention / total:.0%}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"  {e.self_cpu_time_total / 3 / 1e3:8.2f} ms  x{e.count / 3:5.0f}  {e.key[:80]}")
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="2b", choices=["2b", "7b"])
    ap.add_argument("--quantize", nargs="+", default=["none", "int8"], choices=["none", "int8"])
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    args = ap.parse_args()
    folder = ensure_checkpoint(args.workdir, args.shape)
    print(f"CPU ({torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads (interop {torch.get_num_interop_threads()}), "
          f"native bf16 matmul: {cpu_kernels.NATIVE_BF16}")
    for name in ("linear_bf16", "linear_int8"):
        setattr(cpu_kernels, name, labelled(getattr(cpu_kernels, name), f"cpu_kernels.{name}"))
    attention = labelled(cpu_kernels.decode_attention, "cpu_kernels.decode_attention")
    built = cpu_kernels.kernels()
    for mode in args.quantize:
        model = load(folder, device="cpu", dtype="bfloat16", quantize=mode)
        for module in model.model.modules():
            if getattr(module, "decode_kernel", None) is cpu_kernels.decode_attention:
                module.decode_kernel = attention
        ours = profile_step(f"{mode}, our kernels", model, args.steps, args.top) if built else None
        cpu_kernels._loaded = None  # torch's kernels from here on
        theirs = profile_step(f"{mode}, torch's kernels", model, args.steps, args.top)
        cpu_kernels._loaded = built
        if ours:
            print(f"-- {mode}: {theirs / ours:.2f}x faster a step with our kernels")
        del model


if __name__ == "__main__":
    main()
