"""Prefill and decode speed, and peak memory, of this engine next to Hugging Face transformers.

Both read the same random-weight checkpoint at the real CodeGemma shapes (written once into
--workdir in the Hugging Face layout) and run the same prompt; each engine runs in its own
process so that peak memory is its own. Timings are medians of --repeats runs after a warm-up.

    python benchmarks/bench_engine.py --shapes 2b --device cpu --prompt 512 --new 32
    python benchmarks/bench_engine.py --shapes 2b --device cpu --engines tutor-int8 transformers
    python benchmarks/bench_engine.py --shapes 2b 7b --device cuda --prompt 1024 --new 128 --static

Method, the same for every engine: T1 = time of generate(max_new_tokens=1) (prefill plus one
token), prefill tok/s = prompt / T1; decode tok/s = 1 / the median time between two decode
steps (forward passes of one token) over --repeats runs of generate(max_new_tokens=N) with
stopping disabled. Per-step timing keeps a burst of load from other processes out of the result.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENGINES = ("tutor", "tutor-int8", "transformers")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def ensure_checkpoint(workdir: Path, shape: str) -> Path:
    from tutor.engine.tiny import REAL, train_tokenizer, write_checkpoint

    folder = workdir / f"random-codegemma-{shape}"
    if (folder / "config.json").is_file():
        return folder
    print(f"writing a random {shape} checkpoint to {folder} ...", file=sys.stderr, flush=True)
    shards = {"2b": 2, "7b": 4}[shape]
    write_checkpoint(folder, REAL[shape], train_tokenizer(), seed=0, shards=shards)
    return folder


# ------------------------------------------------------------------ worker side (one engine, one process)

def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(engine: str, folder: Path, device: str, prompt_len: int, new: int, repeats: int) -> dict:
    import torch

    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(4, 1000, (1, prompt_len), generator=gen)
    stamps: list[float] = []  # end of each forward pass
    base_rss = peak_rss_gib()
    start = time.perf_counter()
    if engine in ("tutor", "tutor-int8"):
        from tutor.engine import load
        from tutor.engine.quant import weight_bytes

        model = load(folder, device=device, dtype="bfloat16", quantize="int8" if engine == "tutor-int8" else "none")
        ids = prompt[0].tolist()
        read_bytes = weight_bytes(model.model)

        decode_step_for = model._decode_step  # the plain step, or on a GPU the captured one

        def timed_decode_step(cache):
            step = decode_step_for(cache)

            def timed(*a):
                out = step(*a)
                stamps.append(time.perf_counter())
                return out

            return timed

        model._decode_step = timed_decode_step

        def run(n: int) -> None:
            model.generate(ids, max_new_tokens=n, stop_token_ids=[])
    else:
        from transformers import GemmaForCausalLM

        model = GemmaForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to(device).eval()
        ids = prompt.to(device)
        read_bytes = sum(p.numel() * p.element_size() for p in model.parameters())  # the head is tied
        extra = {"cache_implementation": "static"} if engine == "transformers-static" else {}
        model.register_forward_hook(lambda *_: stamps.append(time.perf_counter()))  # prefill, then one per token

        def run(n: int) -> None:
            with torch.inference_mode():
                model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0, **extra)
    _sync(device)
    load_s = time.perf_counter() - start
    load_rss = peak_rss_gib()
    if device.startswith("cuda"):
        load_gpu = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    run(new)  # warm-up: allocator, kernels, any compilation
    t1 = _timed(lambda: run(1), device, repeats)
    steps = []
    for _ in range(repeats):
        stamps.clear()
        run(new)
        decode = stamps[-(new - 1):]  # the N - 1 one-token passes (tutor feeds back all but the last token)
        steps += [b - a for a, b in zip(decode, decode[1:], strict=False)]
    result = {
        "engine": engine,
        "load_s": load_s,
        "prefill_ms": t1 * 1e3,
        "prefill_tok_s": prompt_len / t1,
        "decode_tok_s": 1 / statistics.median(steps),
        "rss_before_gib": base_rss,
        "rss_peak_load_gib": load_rss,
        "rss_peak_gib": peak_rss_gib(),
        "read_gib": read_bytes / 2**30,
    }
    if device.startswith("cuda"):
        result["gpu_peak_load_gib"] = load_gpu
        result["gpu_peak_run_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


# ------------------------------------------------------------------ driver

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["2b"], choices=["2b", "7b"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--static", action="store_true", help="also run transformers with its static cache")
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES), help="default: all")
    ap.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--worker", choices=[*ENGINES, "transformers-static"], help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.folder, args.device, args.prompt, args.new, args.repeats)))
        return

    engines = [*args.engines, *(["transformers-static"] if args.static else [])]
    rows = []
    for shape in args.shapes:
        folder = ensure_checkpoint(args.workdir, shape)
        for engine in engines:
            cmd = [sys.executable, __file__, "--worker", engine, "--folder", str(folder), "--device", args.device,
                   "--prompt", str(args.prompt), "--new", str(args.new), "--repeats", str(args.repeats)]
            print(f"{shape} {engine} ...", file=sys.stderr, flush=True)
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                rows.append({"shape": shape, "engine": engine, "error": done.stderr.strip().splitlines()[-1:]})
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({"shape": shape, **row})
    print_table(rows, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    import torch

    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    print(f"\n{where}, bfloat16, batch 1, prompt {args.prompt} tokens, {args.new} new tokens, "
          f"torch {torch.__version__}")
    mem = "GPU peak GiB (load / run)" if args.device.startswith("cuda") else "peak RSS GiB (load / run)"
    print(f"| shape | engine | prefill ms | prefill tok/s | decode tok/s | decode vs transformers | "
          f"load s | {mem} | weights read per token GiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['shape']} | {r['engine']} | failed: {r['error']} |")
            continue
        ref = next((x for x in rows if x["shape"] == r["shape"] and x["engine"] == "transformers" and "error" not in x),
                   None)
        ratio = f"{r['decode_tok_s'] / ref['decode_tok_s']:.2f}x" if ref else "-"
        if args.device.startswith("cuda"):
            memory = f"{r['gpu_peak_load_gib']:.2f} / {r['gpu_peak_run_gib']:.2f}"
        else:
            memory = f"{r['rss_peak_load_gib']:.2f} / {r['rss_peak_gib']:.2f}"
        print(f"| {r['shape']} | {r['engine']} | {r['prefill_ms']:.1f} | {r['prefill_tok_s']:.0f} | "
              f"{r['decode_tok_s']:.2f} | {ratio} | {r['load_s']:.1f} | {memory} | {r['read_gib']:.2f} |")


if __name__ == "__main__":
    main()
