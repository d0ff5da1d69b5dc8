"""Prefill and decode speed, and peak memory, of this engine next to Hugging Face transformers.

Both read the same random-weight checkpoint at the real CodeGemma shapes (written once into
--workdir in the Hugging Face layout) and run the same prompt; each engine runs in its own
process so that peak memory is its own. Timings are medians of --repeats runs after a warm-up.

    python benchmarks/bench_engine.py --shapes 2b --device cpu --prompt 512 --new 32
    python benchmarks/bench_engine.py --shapes 2b --device cpu --engines tutor-int8 transformers
    python benchmarks/bench_engine.py --shapes 2b 7b --device cuda --prompt 1024 --new 128 --static \
        --engines tutor tutor-compiled transformers

Method, the same for every engine: T1 = time of generate(max_new_tokens=1) (prefill plus one
token), prefill tok/s = prompt / T1; decode tok/s = 1 / the median time between two decoded
tokens over --repeats runs of generate(max_new_tokens=N) with stopping disabled (transformers:
the end of each one-token forward pass; tutor: each streamed token, as a user receives it).
Per-step timing keeps a burst of load from other processes out of the result.
"first run s" is the warm-up generate(N), which includes capturing (and compiling) the decode step.
On a GPU the bandwidth ceiling is the weights' bytes over a measured device-to-device copy
(bytes read plus bytes written, 1 GiB buffers): the fastest batch-1 decoding could go.
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

ENGINES = ("tutor", "tutor-compiled", "tutor-int8", "transformers")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def ensure_checkpoint(workdir: Path, shape: str, *, varied: bool = False) -> Path:
    """A random checkpoint at a real shape, written once. ``varied``: a small embedding, so that
    greedy decoding does not just repeat the prompt's last token (see tutor.engine.tiny.random_state)."""
    from tutor.engine.tiny import REAL, train_tokenizer, write_checkpoint

    config = REAL[shape]
    folder = workdir / f"random-codegemma-{shape}{'-varied' if varied else ''}"
    if (folder / "config.json").is_file():
        return folder
    print(f"writing a random {shape} checkpoint to {folder} ...", file=sys.stderr, flush=True)
    shards = {"2b": 2, "7b": 4}[shape]
    # A tokenizer as large as the real one, so that whatever the random model samples is text.
    tokenizer = train_tokenizer(pad_to=config.vocab_size)
    embed_std = 0.02 / config.hidden_size ** 0.5 if varied else None  # times sqrt(hidden) on the way in
    write_checkpoint(folder, config, tokenizer, seed=0, shards=shards, embed_std=embed_std)
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


def copy_bandwidth(device: str, gib: int = 1, repeats: int = 20) -> float:
    """Device-to-device copy bandwidth in bytes/s, counting bytes read and written (median)."""
    import torch

    src = torch.randn(gib * 2**28, device=device)  # float32: gib GiB
    dst = torch.empty_like(src)
    times = []
    for _ in range(repeats + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * src.numel() * src.element_size() / statistics.median(times[3:])


def worker(engine: str, folder: Path, device: str, prompt_len: int, new: int, repeats: int) -> dict:
    import torch

    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(4, 1000, (1, prompt_len), generator=gen)
    stamps: list[float] = []  # end of each forward pass
    base_rss = peak_rss_gib()
    start = time.perf_counter()
    if engine.startswith("tutor"):
        from tutor.engine import load
        from tutor.engine.quant import weight_bytes

        os.environ["TUTOR_COMPILE"] = "1" if engine == "tutor-compiled" else "0"
        model = load(folder, device=device, dtype="bfloat16", quantize="int8" if engine == "tutor-int8" else "none")
        ids = prompt[0].tolist()
        read_bytes = weight_bytes(model.model)

        def run(n: int) -> None:
            for _ in model.generate(ids, max_new_tokens=n, stop_token_ids=[], stream=True):
                stamps.append(time.perf_counter())  # a text piece per token (the tokenizer has no gaps)
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
    first = time.perf_counter()
    run(new)  # warm-up: allocator, kernels, capturing the decode step, any compilation
    first_run_s = time.perf_counter() - first
    t1 = _timed(lambda: run(1), device, repeats)
    steps = []
    for _ in range(repeats):
        stamps.clear()
        run(new)
        # transformers: the N - 1 one-token passes after the prefill; tutor: the N streamed tokens
        decode = stamps[-(new - 1):] if engine.startswith("transformers") else stamps
        steps += [b - a for a, b in zip(decode, decode[1:], strict=False)]
    result = {
        "engine": engine,
        "load_s": load_s,
        "first_run_s": first_run_s,
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
    ap.add_argument("--worker", choices=[*ENGINES, "transformers-static", "copy"], help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker == "copy":
        print(json.dumps({"copy_bytes_s": copy_bandwidth(args.device)}))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.folder, args.device, args.prompt, args.new, args.repeats)))
        return

    engines = [*args.engines, *(["transformers-static"] if args.static else [])]
    rows = []
    if args.device.startswith("cuda"):
        done = subprocess.run([sys.executable, __file__, "--worker", "copy", "--device", args.device],
                              capture_output=True, text=True, check=True)
        args.copy_bytes_s = json.loads(done.stdout.strip().splitlines()[-1])["copy_bytes_s"]
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

    cuda = args.device.startswith("cuda")
    where = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)"
    print(f"\n{where}, bfloat16, batch 1, prompt {args.prompt} tokens, {args.new} new tokens, "
          f"torch {torch.__version__}")
    if cuda:
        print(f"measured device-to-device copy: {args.copy_bytes_s / 1e12:.2f} TB/s (read + written)")
    mem = "GPU peak GiB (load / run)" if cuda else "peak RSS GiB (load / run)"
    print(f"| shape | engine | prefill ms | prefill tok/s | decode tok/s | vs transformers | vs static cache | "
          f"share of ceiling | load s | first run s | {mem} | weights read per token GiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def ratio(r: dict, engine: str) -> str:
        ref = next((x for x in rows if x["shape"] == r["shape"] and x["engine"] == engine and "error" not in x), None)
        return f"{r['decode_tok_s'] / ref['decode_tok_s']:.2f}x" if ref else "-"

    for r in rows:
        if "error" in r:
            print(f"| {r['shape']} | {r['engine']} | failed: {r['error']} |")
            continue
        ceiling = "-"
        if cuda:
            limit = args.copy_bytes_s / (r["read_gib"] * 2**30)  # tokens/s if only the weights were read
            ceiling = f"{r['decode_tok_s'] / limit:.0%} of {limit:.0f} tok/s"
            memory = f"{r['gpu_peak_load_gib']:.2f} / {r['gpu_peak_run_gib']:.2f}"
        else:
            memory = f"{r['rss_peak_load_gib']:.2f} / {r['rss_peak_gib']:.2f}"
        print(f"| {r['shape']} | {r['engine']} | {r['prefill_ms']:.1f} | {r['prefill_tok_s']:.0f} | "
              f"{r['decode_tok_s']:.2f} | {ratio(r, 'transformers')} | {ratio(r, 'transformers-static')} | {ceiling} | "
              f"{r['load_s']:.1f} | {r['first_run_s']:.1f} | {memory} | {r['read_gib']:.2f} |")


if __name__ == "__main__":
    main()
