"""The split-cache decode attention kernels (Triton), run on the CPU by Triton's interpreter.

On a GPU, tests/test_gpu.py runs them compiled. The interpreter computes tl.dot on bfloat16
inputs wrongly (numpy has no bfloat16), so here they run in float32 and float16.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from tutor.engine import load
from tutor.engine.model import grouped_attention

if importlib.util.find_spec("triton") is None:
    pytest.skip("Triton is not installed (it comes with PyTorch's CUDA builds)", allow_module_level=True)
if torch.cuda.is_available():
    pytest.skip("the interpreter's tests; on a GPU tests/test_gpu.py runs the kernels", allow_module_level=True)


@pytest.fixture(scope="module")
def kernels():
    assert os.environ.get("TRITON_INTERPRET") == "1", "tests/conftest.py sets it before triton is imported"
    return importlib.import_module("tutor.engine.decode_attention")


def reference(q, k, v, position):
    mask = (torch.arange(k.shape[2]) <= position)[None, :]
    return grouped_attention(q.float(), k.float(), v.float(), mask).transpose(1, 2)


@pytest.mark.parametrize(("heads", "kv_heads", "dtype"), [(8, 1, torch.float32), (4, 4, torch.float32),
                                                          (4, 2, torch.float16)])
def test_matches_masked_attention_at_split_edges(kernels, heads, kv_heads, dtype):
    gen = torch.Generator().manual_seed(heads * 10 + kv_heads)
    split = kernels.slice_length(2, kv_heads)
    length, dim = 3 * split + 5, 32
    # q as the model passes it: a transposed view of [batch, 1, heads, dim]
    q = torch.randn(2, 1, heads, dim, generator=gen).to(dtype).transpose(1, 2)
    k, v = (torch.randn(2, kv_heads, length, dim, generator=gen).to(dtype) for _ in range(2))
    for position in (0, split - 1, split, 2 * split + 7, length - 1):
        out = kernels.decode_attention(q, k, v, torch.tensor([position]))
        assert out.shape == (2, 1, heads, dim) and out.dtype == dtype
        tolerance = 1e-5 if dtype == torch.float32 else 2e-3
        torch.testing.assert_close(out.float(), reference(q, k, v, position), atol=tolerance, rtol=tolerance)


def test_ignores_what_lies_past_the_position(kernels):
    """Slots after the position hold stale keys from an earlier request; they must not count."""
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(1, 4, 1, 32, generator=gen)
    k, v = (torch.randn(1, 1, 4 * kernels.SPLIT_FEW_HEADS, 32, generator=gen) for _ in range(2))
    position = kernels.SPLIT_FEW_HEADS + 3
    before = kernels.decode_attention(q, k, v, torch.tensor([position]))
    k[:, :, position + 1:], v[:, :, position + 1:] = 1e4, float("nan")
    torch.testing.assert_close(kernels.decode_attention(q, k, v, torch.tensor([position])), before)


@pytest.mark.parametrize("variant", ["2b", "7b"])
def test_greedy_tokens_are_those_of_the_masked_step(kernels, tiny_dirs, variant):
    plain = load(tiny_dirs[variant], device="cpu", dtype="float32")
    fast = load(tiny_dirs[variant], device="cpu", dtype="float32")
    fast.model.use_decode_kernel()
    assert fast.model.model.layers[0].self_attn.decode_kernel is kernels.decode_attention
    # A prompt long enough that decoding crosses from one cache slice into the next.
    ids = [plain.tokenizer.bos_id, *plain.tokenizer.encode("def total(numbers):\n    return sum(numbers)\n" * 8)]
    ids = ids[:kernels.slice_length(1, plain.config.num_kv_heads) * 2 - 6]
    expected = plain.generate(ids, max_new_tokens=12, stop_token_ids=[]).token_ids
    assert fast.generate(ids, max_new_tokens=12, stop_token_ids=[]).token_ids == expected
    with torch.inference_mode():
        caches = plain.model.new_cache(1, 256), fast.model.new_cache(1, 256)
        for model, cache in zip((plain.model, fast.model), caches, strict=True):
            model.prefill(torch.tensor([ids]), cache)
        step = [m.decode_step(torch.tensor([[7]]), torch.tensor([len(ids)]), c)
                for m, c in zip((plain.model, fast.model), caches, strict=True)]
    # 1e-4: the two attentions sum in different orders, and a tiny random model's layers magnify
    # that (2.9e-5 seen with triton 3.9); a wrong mask or position moves logits by far more.
    torch.testing.assert_close(step[1], step[0], atol=1e-4, rtol=1e-4)


def test_kernels_that_do_not_run_leave_the_masked_attention(kernels, tiny_dirs, monkeypatch):
    """On a GPU whose shared memory the blocks do not fit, the kernels' first run (at load) raises
    Triton's OutOfResources; loading warns and keeps scaled_dot_product_attention."""
    import triton

    import tutor.engine.codegemma as codegemma

    expected = load(tiny_dirs["2b"], device="cpu", dtype="float32").generate([2, 40, 41], max_new_tokens=8).token_ids

    def too_big(*args):
        raise triton.runtime.errors.OutOfResources(282688, 232448, "shared memory")

    monkeypatch.setattr(codegemma, "decode_kernel_enabled", lambda device: True)  # as on a GPU
    monkeypatch.setattr(kernels, "decode_attention", too_big)
    with pytest.warns(RuntimeWarning, match="shared memory.*TUTOR_DECODE_KERNEL=0"):
        model = load(tiny_dirs["2b"], device="cpu", dtype="float32")
    assert all(layer.self_attn.decode_kernel is None for layer in model.model.model.layers)
    assert model.generate([2, 40, 41], max_new_tokens=8).token_ids == expected


@pytest.mark.parametrize(("heads", "kv_heads"), [(8, 1), (4, 4)])
def test_each_row_reads_its_own_slot_up_to_its_own_position(kernels, heads, kv_heads):
    """Batched decoding (tutor.engine.batching): row i reads cache row slots[i] up to positions[i]."""
    gen = torch.Generator().manual_seed(heads + kv_heads)
    rows, cache_rows, dim = 3, 5, 32
    split = kernels.slice_length(rows, kv_heads)
    length = 2 * split + 9
    q = torch.randn(rows, 1, heads, dim, generator=gen).transpose(1, 2)
    k, v = (torch.randn(cache_rows, kv_heads, length, dim, generator=gen) for _ in range(2))
    slots, positions = torch.tensor([4, 0, 2]), torch.tensor([split + 1, 0, length - 1])
    out = kernels.decode_attention(q, k, v, positions, slots)
    for i in range(rows):
        s, p = int(slots[i]), int(positions[i])
        torch.testing.assert_close(out[i:i + 1], reference(q[i:i + 1], k[s:s + 1], v[s:s + 1], p),
                                   atol=1e-5, rtol=1e-5)


def test_batched_rows_with_the_kernels_match_the_gathered_attention(kernels, tiny_dirs):
    plain = load(tiny_dirs["2b"], device="cpu", dtype="float32")
    fast = load(tiny_dirs["2b"], device="cpu", dtype="float32")
    fast.model.use_decode_kernel()
    ids = torch.tensor([[5], [9], [13]])
    slots, positions = torch.tensor([2, 0, 1]), torch.tensor([3, 70, 0])
    logits = []
    for model in (plain, fast):
        with torch.inference_mode():
            cache = model.model.new_cache(3, 128)
            torch.manual_seed(0)
            for t in cache.k + cache.v:  # stand-in for earlier sequences' entries
                t.normal_()
            logits.append(model.model.decode_rows(ids, slots, positions, cache))
    torch.testing.assert_close(logits[1], logits[0], atol=1e-4, rtol=1e-4)
