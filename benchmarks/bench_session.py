"""Time to first token with and without prefix reuse (CompletionSession), on the CPU.

A notebook completion resends nearly the same prompt: here a --prompt-token prompt is run cold
(CodeGemma.generate, nothing cached), then through a session that already holds it, edited in its
last --edit tokens, and extended by --edit tokens (typing on). Time = generate(max_new_tokens=1),
median of --repeats runs; each warm run starts from a session holding the original prompt.

    python benchmarks/bench_session.py --shapes tiny 2b --prompt 1000 --edit 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_engine import ensure_checkpoint  # noqa: E402


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(folder: Path, dtype: str, quantize: str, prompt_len: int, edit: int, repeats: int) -> dict:
    import torch

    from tutor.engine import CompletionSession, load

    model = load(folder, device="cpu", dtype=dtype, quantize=quantize)
    gen = torch.Generator().manual_seed(0)
    vocab = min(model.config.vocab_size, 1000)
    prompt = torch.randint(4, vocab, (prompt_len,), generator=gen).tolist()
    other = [4 + (t - 3) % (vocab - 4) for t in prompt[-edit:]]  # differs at every edited position
    edited, extended = prompt[:-edit] + other, prompt + other

    def cold() -> None:
        model.generate(prompt, max_new_tokens=1, stop_token_ids=[])

    def warm(ids: list[int], reused: int) -> float:
        def run() -> None:
            session = CompletionSession(model)
            session.generate(prompt, max_new_tokens=1, stop_token_ids=[])  # not timed: fills the cache
            start = time.perf_counter()
            result = session.generate(ids, max_new_tokens=1, stop_token_ids=[])
            times.append(time.perf_counter() - start)
            assert result.cached_tokens == reused, (result.cached_tokens, reused)

        times: list[float] = []
        for _ in range(repeats):
            run()
        return statistics.median(times)

    cold()  # warm-up
    cold_s = timed(cold, repeats)
    edited_s = warm(edited, prompt_len - edit)
    extended_s = warm(extended, prompt_len)
    return {"cold_ms": cold_s * 1e3, "edited_ms": edited_s * 1e3, "extended_ms": extended_s * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["tiny"], choices=["tiny", "2b", "7b"])
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--quantize", nargs="+", default=["none"], choices=["none", "int8"])
    ap.add_argument("--prompt", type=int, default=1000)
    ap.add_argument("--edit", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    args = ap.parse_args()

    import torch

    from tutor.engine.tiny import make_tiny

    print(f"CPU ({torch.get_num_threads()} threads), {args.dtype}, prompt {args.prompt} tokens, last {args.edit} "
          f"edited or {args.edit} appended, torch {torch.__version__}")
    print("| shape | weights | cold ms | last tokens edited ms | sooner | tokens appended ms | sooner |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            folder = make_tiny(Path(tmp) / "tiny", "2b") if shape == "tiny" else ensure_checkpoint(args.workdir, shape)
            for quantize in args.quantize:
                r = measure(folder, args.dtype, quantize, args.prompt, args.edit, args.repeats)
                weights = "int8" if quantize == "int8" else args.dtype
                print(f"| {shape} | {weights} | {r['cold_ms']:.1f} | {r['edited_ms']:.1f} | "
                      f"{r['cold_ms'] / r['edited_ms']:.1f}x | {r['extended_ms']:.1f} | "
                      f"{r['cold_ms'] / r['extended_ms']:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
