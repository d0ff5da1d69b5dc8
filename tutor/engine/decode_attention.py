"""One new token's attention over the KV cache, split along the cache (flash-decoding), in Triton.

At batch 1 a fused attention kernel runs one thread block per head: 8 (2B) or 16 (7B) of an
H100's 132 multiprocessors read the cache while the rest idle, so each layer's attention waits on
latency, not bandwidth. Here each program reads one slice of the cache for one key/value head
and all the query heads that share it, keeping a partial softmax (its output and its log-sum-exp);
a second kernel combines the slices. Slices past the current position are skipped,
so only the written part of the cache is read, where the masked fused kernel reads all of it.

The position is read on the GPU, so a captured graph replays correctly at every step. A batch of
sequences served together (tutor.engine.batching) gives each row its own position and its own
slot in a shared cache, so rows of different lengths share one launch. Triton
comes with PyTorch's CUDA builds; without it (or with TUTOR_DECODE_KERNEL=0) the model keeps
PyTorch's scaled_dot_product_attention. Tests run the kernels on the CPU in Triton's interpreter.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.library import triton_op, wrap_triton

# Cache positions per program, and per block loaded at once. The slice length depends only on how
# many key/value heads there are (not on the cache length), so a compiled step whose cache length
# is dynamic does not recompile per length. Measured on an H100 (benchmarks/bench_decode_attention.py:
# bfloat16, one layer at 1100 of 1152 positions, caches not in L2; masked scaled_dot_product_attention
# in brackets): one key/value head (2B) with slices of 64: 8.5 us (19.9); 16 heads (7B) with slices
# of 256: 12.6 us (24.6), the next best being slices of 128 at 13.3.
SPLIT_FEW_HEADS = 64
SPLIT_MANY_HEADS = 256
MANY_HEADS = 8  # batch x key/value heads from which the longer slices keep the GPU busy enough
# Keys (and values) loaded at once, in bytes: 64 positions of a 256-wide bfloat16 head. The pipeline
# keeps a few such blocks in shared memory (227 KiB on an H100), so float32 gets 32 positions.
BLOCK_BYTES = 32768
NUM_WARPS = 4
COMBINE_CHUNK = 16


@triton.jit
def _split_attention(q, k, v, position, slots, part_out, part_lse, position_stride,
                     q_stride_b, q_stride_h, k_stride_b, k_stride_h, k_stride_s,
                     v_stride_b, v_stride_h, v_stride_s, n_kv, n_splits, scale,
                     GROUP: tl.constexpr, GROUP_PAD: tl.constexpr, D: tl.constexpr,
                     SPLIT: tl.constexpr, BLOCK: tl.constexpr, HAS_SLOTS: tl.constexpr):
    kv_row = tl.program_id(0)  # batch * n_kv + key/value head
    split = tl.program_id(1)
    b = kv_row // n_kv
    kv_head = kv_row % n_kv
    length = tl.load(position + b * position_stride) + 1
    if HAS_SLOTS:  # the cache row this batch row reads
        slot = tl.load(slots + b)
    else:
        slot = b
    start = split * SPLIT
    if start < length:  # slices wholly past the position have nothing to read
        g = tl.arange(0, GROUP_PAD)
        d = tl.arange(0, D)
        head = kv_head * GROUP + g  # query heads sharing this key/value head, padded for tl.dot
        real = g < GROUP
        query = tl.load(q + b * q_stride_b + head[:, None] * q_stride_h + d[None, :], mask=real[:, None], other=0.0)
        best = tl.full([GROUP_PAD], float("-inf"), tl.float32)
        total = tl.zeros([GROUP_PAD], tl.float32)
        acc = tl.zeros([GROUP_PAD, D], tl.float32)
        keys = k + slot * k_stride_b + kv_head * k_stride_h
        values = v + slot * v_stride_b + kv_head * v_stride_h
        for block in tl.range(start, start + SPLIT, BLOCK):
            n = block + tl.arange(0, BLOCK)
            written = n < length
            key = tl.load(keys + n[:, None] * k_stride_s + d[None, :], mask=written[:, None], other=0.0)
            scores = tl.dot(query, tl.trans(key), input_precision="ieee")  # no TF32 for float32
            scores = (scores * scale).to(tl.float32)  # inductor may pass the scale as a float64 constant
            scores = tl.where(written[None, :], scores, float("-inf"))
            # The slice's first block always holds a written position, so `best` is finite from there on.
            new_best = tl.maximum(best, tl.max(scores, 1))
            p = tl.exp(scores - new_best[:, None])
            rescale = tl.exp(best - new_best)
            total = total * rescale + tl.sum(p, 1)
            value = tl.load(values + n[:, None] * v_stride_s + d[None, :], mask=written[:, None], other=0.0)
            acc = acc * rescale[:, None] + tl.dot(p.to(value.dtype), value, input_precision="ieee")
            best = new_best
        row = (b * n_kv * GROUP + head) * n_splits + split
        tl.store(part_out + row[:, None] * D + d[None, :], acc / total[:, None], mask=real[:, None])
        tl.store(part_lse + row, best + tl.log(total), mask=real)


@triton.jit
def _combine(part_out, part_lse, position, out, n_splits, heads, position_stride,
             D: tl.constexpr, SPLIT: tl.constexpr, CHUNK: tl.constexpr):
    row = tl.program_id(0)  # batch * heads + head
    # slices that ran: ceil((position + 1) / SPLIT)
    used = (tl.load(position + (row // heads) * position_stride) + SPLIT) // SPLIT
    d = tl.arange(0, D)
    best = float("-inf")
    total = 0.0
    acc = tl.zeros([D], tl.float32)
    for first in tl.range(0, used, CHUNK):  # a loop, not one padded load: n_splits varies with the cache
        s = first + tl.arange(0, CHUNK)
        ran = s < used
        lse = tl.load(part_lse + row * n_splits + s, mask=ran, other=float("-inf"))
        new_best = tl.maximum(best, tl.max(lse, 0))
        w = tl.exp(lse - new_best)
        rescale = tl.exp(best - new_best)
        part = tl.load(part_out + (row * n_splits + s[:, None]) * D + d[None, :], mask=ran[:, None], other=0.0)
        acc = acc * rescale + tl.sum(part * w[:, None], 0)
        total = total * rescale + tl.sum(w, 0)
        best = new_best
    tl.store(out + row * D + d, (acc / total).to(out.dtype.element_ty))


def block_length(head_dim: int, dtype: torch.dtype) -> int:
    """Cache positions loaded at once: BLOCK_BYTES of keys, at least 16 (tl.dot's smallest size)."""
    return max(16, min(64, triton.next_power_of_2(BLOCK_BYTES // (head_dim * dtype.itemsize) + 1) // 2))


def slice_length(batch: int, kv_heads: int) -> int:
    """Cache positions per program: short slices when few heads would leave most of the GPU idle."""
    return SPLIT_MANY_HEADS if batch * kv_heads >= MANY_HEADS else SPLIT_FEW_HEADS


@triton_op("tutor::decode_attention", mutates_args=())
def decode_attention(q: Tensor, k: Tensor, v: Tensor, position: Tensor, slots: Tensor | None = None) -> Tensor:
    """Attention of one query per sequence over the cache up to ``position`` (inclusive).

    q [batch, heads, 1, head_dim]; k, v [cache_rows, kv_heads, cache_len, head_dim] (head h uses
    key/value head h // (heads // kv_heads)); ``position`` an integer tensor of 1 element (every row
    at the same position) or ``batch`` (one per row); ``slots`` (optional, [batch]) the cache row
    each batch row reads, else row b reads cache row b. Returns [batch, 1, heads, head_dim], ready
    for the output projection.
    """
    batch, heads, _, dim = q.shape
    n_kv, length = k.shape[1], k.shape[2]
    group = heads // n_kv
    split = slice_length(batch, n_kv)
    n_splits = triton.cdiv(length, split)
    part_out = torch.empty((batch, heads, n_splits, dim), dtype=torch.float32, device=q.device)
    part_lse = torch.empty((batch, heads, n_splits), dtype=torch.float32, device=q.device)
    out = torch.empty((batch, 1, heads, dim), dtype=q.dtype, device=q.device)
    position_stride = 0 if position.numel() == 1 else 1
    wrap_triton(_split_attention)[(batch * n_kv, n_splits)](
        q, k, v, position, slots if slots is not None else position, part_out, part_lse, position_stride,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), n_kv, n_splits, dim ** -0.5,
        GROUP=group, GROUP_PAD=max(16, triton.next_power_of_2(group)), D=dim, SPLIT=split,
        BLOCK=block_length(dim, k.dtype), HAS_SLOTS=slots is not None, num_warps=NUM_WARPS)
    wrap_triton(_combine)[(batch * heads,)](part_out, part_lse, position, out, n_splits, heads, position_stride,
                                           D=dim, SPLIT=split, CHUNK=COMBINE_CHUNK)
    return out
