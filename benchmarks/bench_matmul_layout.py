"""Batch-1 matmul time for every CodeGemma matrix, weight stored [out, in] (F.linear) or [in, out].

The reason the GPU keeps its weights transposed (tutor.engine.model.Transformer.transpose_weights).
Each timing is a CUDA-graph replay over enough copies of the matrix to exceed the L2 cache, so the
weights come from memory as they do while decoding.

    python benchmarks/bench_matmul_layout.py          # needs a CUDA GPU and triton
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton.testing

SHAPES = {"2b qkv": (2560, 2048), "2b o": (2048, 2048), "2b gate_up": (32768, 2048), "2b down": (2048, 16384),
          "2b head": (256000, 2048), "7b qkv": (12288, 3072), "7b o": (3072, 4096), "7b gate_up": (49152, 3072),
          "7b down": (3072, 24576), "7b head": (256000, 3072)}


def main() -> None:
    torch.manual_seed(0)
    print(f"{torch.cuda.get_device_name()}, bfloat16, one row of activations")
    print("| matrix | [out, in] us | GB/s read | [in, out] us | GB/s read |")
    print("|---|---|---|---|---|")
    for name, (n, k) in SHAPES.items():
        copies = max(2, int(200e6 // (n * k * 2)) + 1)  # more bytes than the L2 holds
        weights = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        transposed = [w.t().contiguous() for w in weights]
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        a, b = F.linear(x, weights[0]).float(), (x @ transposed[0]).float()
        assert (a - b).norm() / a.norm() < 1e-2, "the two layouts must compute the same product"

        def usual(weights=weights, x=x) -> None:
            for w in weights:
                F.linear(x, w)

        def stored_transposed(transposed=transposed, x=x) -> None:
            for w in transposed:
                x @ w

        a = triton.testing.do_bench_cudagraph(usual, rep=100, return_mode="median") / copies
        b = triton.testing.do_bench_cudagraph(stored_transposed, rep=100, return_mode="median") / copies
        gb = n * k * 2 / 1e9
        print(f"| {name} | {a * 1e3:.2f} | {gb / a * 1e3:.0f} | {b * 1e3:.2f} | {gb / b * 1e3:.0f} |")
        del weights, transposed


if __name__ == "__main__":
    main()
