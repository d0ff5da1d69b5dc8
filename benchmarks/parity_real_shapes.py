"""Parity with transformers at the real CodeGemma shapes, on the device of your choice (a GPU, say).

The CPU tests check parity on tiny shapes; this script checks the same thing where the fused GPU
kernels and the real sizes (head_dim 256, 256000-token vocabulary, multi-query 2B, multi-head
7B) are in play. It reads the random-weight checkpoints that bench_engine.py writes.

    python benchmarks/parity_real_shapes.py --shapes 2b 7b --device cuda
    python benchmarks/parity_real_shapes.py --shapes 2b --dtypes float32 --varied   # outputs that vary
    python benchmarks/parity_real_shapes.py --shapes 2b --dtypes bfloat16 --compile  # TUTOR_COMPILE=1

The usual random weights make greedy decoding repeat the last token, which any two engines agree
on; --varied uses the checkpoint with a small embedding, whose greedy output keeps changing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import ensure_checkpoint  # noqa: E402


def compare(folder: Path, device: str, dtype: torch.dtype, prompt_len: int, new: int) -> dict:
    from transformers import GemmaForCausalLM

    from tutor.engine import load

    ours = load(folder, device=device, dtype=dtype, quantize="none")  # parity is about full precision
    ref = GemmaForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(4, 1000, (1, prompt_len), generator=gen)
    with torch.inference_mode():
        expected = ref(prompt.to(device)).logits.float()
        got = ours.logits(prompt)
        greedy_ref = ref.generate(prompt.to(device), max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                  pad_token_id=0)[0, prompt_len:].tolist()
    greedy_ours = ours.generate(prompt[0].tolist(), max_new_tokens=new, stop_token_ids=[]).token_ids
    same_prefix = next((i for i, (a, b) in enumerate(zip(greedy_ours, greedy_ref, strict=True)) if a != b), new)
    diff = (got - expected).abs()
    result = {
        "max_abs_diff": diff.max().item(),
        "max_abs_logit": expected.abs().max().item(),
        "top1_agreement": (got.argmax(-1) == expected.argmax(-1)).float().mean().item(),
        "greedy_same_prefix": same_prefix,
        "greedy_equal": greedy_ours == greedy_ref,
    }
    del ours, ref
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["2b"], choices=["2b", "7b"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    ap.add_argument("--varied", action="store_true", help="the random checkpoint whose greedy output varies")
    ap.add_argument("--compile", action="store_true", help="TUTOR_COMPILE=1 for this engine")
    args = ap.parse_args()
    os.environ["TUTOR_COMPILE"] = "1" if args.compile else "0"
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{where}, torch {torch.__version__}, prompt {args.prompt}, greedy {args.new} tokens"
          f"{', varied checkpoint' if args.varied else ''}{', TUTOR_COMPILE=1' if args.compile else ''}")
    print("| shape | dtype | max abs logit diff | max abs logit | top-1 agreement | greedy tokens equal |")
    print("|---|---|---|---|---|---|")
    for shape in args.shapes:
        folder = ensure_checkpoint(args.workdir, shape, varied=args.varied)
        for name in args.dtypes:
            r = compare(folder, args.device, getattr(torch, name), args.prompt, args.new)
            equal = "all" if r["greedy_equal"] else f"first {r['greedy_same_prefix']} of {args.new}"
            print(f"| {shape} | {name} | {r['max_abs_diff']:.2e} | {r['max_abs_logit']:.2f} | "
                  f"{r['top1_agreement']:.4f} | {equal} |", flush=True)


if __name__ == "__main__":
    main()
