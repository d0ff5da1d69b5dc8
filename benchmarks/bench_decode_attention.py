"""One layer's one-token attention at the real CodeGemma head shapes: the Triton kernels
(tutor/engine/decode_attention.py) over a sweep of slice length, block length and warps, against
PyTorch's masked scaled_dot_product_attention. Needs a CUDA GPU.

    python benchmarks/bench_decode_attention.py [--cache 1152 --position 1100]

Each variant is timed replayed in a CUDA graph (triton.testing.do_bench_cudagraph), over enough
copies of the cache that they do not fit in the GPU's L2 cache: in a decode step, a layer's cache
was last read a whole pass over the weights ago.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import triton.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tutor.engine.decode_attention as kernels  # noqa: E402

SHAPES = {"2b": (8, 1), "7b": (16, 16)}  # query heads, key/value heads; head_dim 256 for both


def graph_time_us(fn, calls: int) -> float:
    """Median time of one of the ``calls`` that ``fn`` makes, replayed in a CUDA graph."""
    return triton.testing.do_bench_cudagraph(fn, rep=100, return_mode="median") * 1000 / calls


def sweep(name: str, heads: int, kv_heads: int, length: int, at: int, top: int) -> None:
    q = torch.randn(1, 1, heads, 256, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    copies = max(2, int(200e6 // (2 * kv_heads * length * 256 * 2)) + 1)  # more bytes than the L2 holds
    caches = [[torch.randn(1, kv_heads, length, 256, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
              for _ in range(copies)]
    position = torch.tensor([at], device="cuda")
    slots = torch.arange(length, device="cuda")

    def sdpa(k, v):
        mask = (slots <= position)[None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=heads != kv_heads)

    def ours(k, v):
        return kernels.decode_attention(q, k, v, position)

    def every_cache(attention):
        return lambda: [attention(k, v) for k, v in caches]

    expected = sdpa(*caches[0]).transpose(1, 2).float()
    print(f"{name}: masked SDPA {graph_time_us(every_cache(sdpa), copies):.1f} us; "
          f"chosen {graph_time_us(every_cache(ours), copies):.1f} us (slice {kernels.slice_length(1, kv_heads)}, "
          f"block {kernels.block_length(256, torch.bfloat16)}, warps {kernels.NUM_WARPS})")
    chosen = (kernels.slice_length, kernels.block_length, kernels.NUM_WARPS)
    rows = []
    for split, block, warps in itertools.product((32, 64, 128, 256), (16, 32, 64), (2, 4, 8)):
        if block > split:
            continue
        kernels.slice_length = lambda batch, n_kv, split=split: split
        kernels.block_length = lambda head_dim, dtype, block=block: block
        kernels.NUM_WARPS = warps
        err = (ours(*caches[0]).float() - expected).abs().max().item()
        rows.append((graph_time_us(every_cache(ours), copies), split, block, warps, err))
    kernels.slice_length, kernels.block_length, kernels.NUM_WARPS = chosen
    for us, split, block, warps, err in sorted(rows)[:top]:
        print(f"  slice {split:3d} block {block:2d} warps {warps}: {us:5.1f} us  max|diff| {err:.2g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=int, default=1152, help="cache positions (a 1024-token prompt + 128)")
    ap.add_argument("--position", type=int, default=1100)
    ap.add_argument("--top", type=int, default=5, help="variants shown per shape")
    args = ap.parse_args()
    print(f"{torch.cuda.get_device_name()}, bfloat16, cache {args.cache}, position {args.position}")
    for name, (heads, kv_heads) in SHAPES.items():
        sweep(name, heads, kv_heads, args.cache, args.position, args.top)


if __name__ == "__main__":
    main()
