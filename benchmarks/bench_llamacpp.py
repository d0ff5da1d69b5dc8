"""CPU decoding of this engine next to llama.cpp (through llama-cpp-python), same weights, same run.

A random checkpoint at the real 2B shape (written once into --workdir, as bench_engine.py does) is
also written as GGUF in BF16 and in Q8_0 (tests/gguf_tiny.py, the layout of llama.cpp's own
converter). Then, for --rounds rounds, each engine runs once in its own process, in an order that
rotates every round, so that load from other processes on the shared machine falls on all of them
alike:

    tutor-bf16   load(quantize="none"), bfloat16            vs  llama.cpp BF16
    tutor-int8   load(quantize="int8"), bfloat16 activations vs  llama.cpp Q8_0

Each process loads its model (load s: the int8 one from its cache after the first round), runs one
short warm-up generation (16-token prompt), then times a --prompt-token prompt (random ids) with --new new tokens:
prefill = time to the first token; decode = 1 / the median time between two streamed tokens
(tutor: each streamed text piece; llama.cpp: each token that Llama.generate yields, greedy,
repeat penalty 1). Both use every core (torch's default threads; n_threads = os.cpu_count()).
The table gives per-engine medians over the rounds and the decode ratios of each round's pair.

    python benchmarks/bench_llamacpp.py                     # 2b, 512-token prompt, 32 new tokens, 5 rounds
    python benchmarks/bench_llamacpp.py --rounds 3 --engines tutor-bf16 llama-bf16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ENGINES = ("tutor-bf16", "llama-bf16", "tutor-int8", "llama-q8_0")
PAIRS = (("tutor-bf16", "llama-bf16"), ("tutor-int8", "llama-q8_0"))


def ensure_gguf(folder: Path, outtype: str) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from gguf_tiny import write_gguf

    out = folder.parent / f"{folder.name}-{outtype.upper()}.gguf"
    if not out.is_file():
        print(f"writing {out} ...", file=sys.stderr, flush=True)
        partial = out.with_suffix(".partial")
        write_gguf(folder, partial, outtype)
        partial.rename(out)
    return out


# ------------------------------------------------------------------ worker side (one engine, one process)

def worker(engine: str, folder: Path, gguf_path: Path | None, prompt_len: int, new: int) -> dict:
    import torch

    prompt = torch.randint(4, 1000, (prompt_len,), generator=torch.Generator().manual_seed(0)).tolist()
    stamps: list[float] = []
    start = time.perf_counter()
    if engine.startswith("tutor"):
        from tutor.engine import load

        model = load(folder, device="cpu", dtype="bfloat16", quantize="int8" if engine == "tutor-int8" else "none")

        def run(n: int, prompt: list[int] = prompt) -> None:
            for _ in model.generate(prompt, max_new_tokens=n, stop_token_ids=[], stream=True):
                stamps.append(time.perf_counter())
        threads = torch.get_num_threads()
    else:
        import llama_cpp

        threads = os.cpu_count() or 1
        llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=prompt_len + new + 64, n_batch=prompt_len,
                              n_threads=threads, n_threads_batch=threads, verbose=False)

        def run(n: int, prompt: list[int] = prompt) -> None:
            llm.reset()  # no reuse of the previous run's prompt
            for i, _ in enumerate(llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True)):
                stamps.append(time.perf_counter())
                if i + 1 == n:
                    break
    load_s = time.perf_counter() - start
    run(4, prompt[:16])  # warm-up (pages of the weights, kernels), with a short prompt: prefill is slow here
    stamps.clear()
    begin = time.perf_counter()
    run(new)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return {"engine": engine, "load_s": load_s, "threads": threads, "prefill_s": stamps[0] - begin,
            "prefill_tok_s": prompt_len / (stamps[0] - begin), "decode_tok_s": 1 / statistics.median(gaps),
            "tokens": len(stamps)}


# ------------------------------------------------------------------ driver

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="2b", choices=["2b", "7b"])
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    ap.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    ap.add_argument("--json", type=Path, help="also write every round's results here")
    ap.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--gguf", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.folder, args.gguf, args.prompt, args.new)))
        return
    try:
        import llama_cpp
    except ImportError:
        llama_cpp = None
        args.engines = [e for e in args.engines if e.startswith("tutor")]
        print("llama-cpp-python is not installed: timing this engine only "
              "(pip install 'llama-cpp-python[server]' gguf for the comparison)", file=sys.stderr)
    from bench_engine import ensure_checkpoint

    folder = ensure_checkpoint(args.workdir, args.shape)
    ggufs = {e: ensure_gguf(folder, e.split("-")[1]) for e in args.engines if e.startswith("llama")}
    rows = []
    for r in range(args.rounds):
        order = args.engines[r % len(args.engines):] + args.engines[:r % len(args.engines)]
        for engine in order:
            cmd = [sys.executable, __file__, "--worker", engine, "--folder", str(folder), "--prompt", str(args.prompt),
                   "--new", str(args.new)] + (["--gguf", str(ggufs[engine])] if engine in ggufs else [])
            print(f"round {r + 1}/{args.rounds}: {engine} ...", file=sys.stderr, flush=True)
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{engine} failed")
            rows.append({"round": r, **json.loads(done.stdout.strip().splitlines()[-1])})
            print(f"  {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
            if args.json:  # as it goes: a long run stopped early keeps what it measured
                args.json.write_text(json.dumps(rows, indent=2))
    print_table(rows, args, llama_cpp.__version__ if llama_cpp else None)


def print_table(rows: list[dict], args: argparse.Namespace, llama_version: str | None) -> None:
    import platform

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"\n{cpu}, {os.cpu_count()} cores ({torch.backends.cpu.get_cpu_capability()}), {args.shape} shape, random "
          f"weights, prompt {args.prompt} tokens, {args.new} new tokens, {args.rounds} interleaved rounds; "
          f"torch {torch.__version__}, llama-cpp-python {llama_version or '-'}")
    print("| engine | decode tok/s (median; each round) | prefill tok/s | load s (first; median) | threads |")
    print("|---|---|---|---|---|")
    for engine in args.engines:
        mine = [r for r in rows if r["engine"] == engine]
        decode = [r["decode_tok_s"] for r in mine]
        print(f"| {engine} | {statistics.median(decode):.2f} ({', '.join(f'{d:.2f}' for d in decode)}) | "
              f"{statistics.median(r['prefill_tok_s'] for r in mine):.1f} | "
              f"{mine[0]['load_s']:.1f}; {statistics.median(r['load_s'] for r in mine):.1f} | {mine[0]['threads']} |")
    for ours, theirs in PAIRS:
        if ours in args.engines and theirs in args.engines:
            by_round = {(r["round"], r["engine"]): r for r in rows}
            ratios = [by_round[(i, ours)]["decode_tok_s"] / by_round[(i, theirs)]["decode_tok_s"]
                      for i in range(args.rounds)]
            prefill = [by_round[(i, ours)]["prefill_tok_s"] / by_round[(i, theirs)]["prefill_tok_s"]
                       for i in range(args.rounds)]
            print(f"{ours} / {theirs}: decode {statistics.median(ratios):.2f}x (rounds: "
                  f"{', '.join(f'{x:.2f}' for x in ratios)}), prefill {statistics.median(prefill):.2f}x")


if __name__ == "__main__":
    main()
