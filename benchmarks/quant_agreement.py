"""How far int8 weights move the logits, at a real shape (random weights, CPU).

Loads the random checkpoint written by bench_engine.py twice, dense (--reference dtype) and int8
(bfloat16 activations), runs the same random prompt through both and prints the largest logit
difference, top-1 agreement over every prompt position, and how many greedy tokens agree.

    python benchmarks/quant_agreement.py --shape 2b --prompt 256 --new 32

Random weights give nearly flat logits (many near-ties), so this is a harsher test than a trained
model; it shows the size of the error, not the quality of real completions.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_engine import ensure_checkpoint  # noqa: E402


def run(folder: Path, dtype: str, quantize: str, prompt: list[int], new: int):
    from tutor.engine import load
    from tutor.engine.quant import weight_bytes

    model = load(folder, device="cpu", dtype=dtype, quantize=quantize)
    logits = model.logits(prompt)[0]
    tokens = model.generate(prompt, max_new_tokens=new, stop_token_ids=[]).token_ids
    return logits, tokens, weight_bytes(model.model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="2b", choices=["2b", "7b"])
    ap.add_argument("--reference", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    args = ap.parse_args()

    import torch

    folder = ensure_checkpoint(args.workdir, args.shape)
    prompt = torch.randint(4, 1000, (args.prompt,), generator=torch.Generator().manual_seed(0)).tolist()
    want, want_tokens, dense_bytes = run(folder, args.reference, "none", prompt, args.new)
    gc.collect()
    got, got_tokens, int8_bytes = run(folder, "bfloat16", "int8", prompt, args.new)
    diff = (got - want).abs()
    same = next((i for i, (a, b) in enumerate(zip(got_tokens, want_tokens, strict=True)) if a != b), args.new)
    print(f"{args.shape}, random weights, prompt {args.prompt} tokens, int8 (bfloat16 activations) "
          f"against {args.reference}, torch {torch.__version__}")
    print("| weights GiB (dense / int8) | max abs logit diff | max abs logit | mean abs diff | "
          "top-1 agreement | greedy tokens equal |")
    print("|---|---|---|---|---|---|")
    print(f"| {dense_bytes / 2**30:.2f} / {int8_bytes / 2**30:.2f} | {diff.max():.3f} | {want.abs().max():.2f} | "
          f"{diff.mean():.4f} | {(got.argmax(-1) == want.argmax(-1)).float().mean():.4f} | "
          f"first {same} of {args.new} |")


if __name__ == "__main__":
    main()
