"""The CPU decoding kernels (tutor.engine.cpu_kernels): the products torch computes, and the same
tokens from a whole model, with the kernels and without."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tutor.engine import cpu_kernels, load
from tutor.engine.cpu_kernels import KernelEmbedding, KernelLinear
from tutor.engine.model import grouped_attention
from tutor.engine.quant import quantize_int8

pytestmark = pytest.mark.skipif(cpu_kernels.kernels() is None,
                                reason="no C compiler or no AVX2/FMA here: the kernels are off")


@pytest.mark.parametrize("shape", [(16384, 2048), (2048, 16384), (7, 48), (256000 // 64, 2048)])
@pytest.mark.parametrize("x_dtype", [torch.bfloat16, torch.float32])
def test_bf16_matrix_vector_product_is_torchs(shape, x_dtype):
    n, k = shape
    gen = torch.Generator().manual_seed(n + k)
    w = (torch.randn(n, k, generator=gen) * 0.02).to(torch.bfloat16)
    x = torch.randn(1, 1, k, generator=gen).to(x_dtype)
    with torch.inference_mode():
        assert cpu_kernels.fits(x, w)
        got = cpu_kernels.linear_bf16(x, w)
    want = F.linear(x.double(), w.double())
    assert got.dtype == x_dtype and got.shape == (1, 1, n)
    # float32 sums in another order, then rounded to x's dtype: within that dtype's rounding.
    tol = (2 ** -8 if x_dtype == torch.bfloat16 else 1e-5) * float(want.abs().max())
    assert float((got.double() - want).abs().max()) <= tol
    assert float((got.double() - want).abs().max()) > 0 or x_dtype == torch.float32  # it computed something


@pytest.mark.parametrize("shape", [(16384, 2048), (2048, 16384), (9, 32)])
def test_int8_matrix_vector_product_is_the_dequantized_one(shape):
    n, k = shape
    gen = torch.Generator().manual_seed(n * k)
    q, scales = quantize_int8(torch.randn(n, k, generator=gen) * 0.02)
    scales = scales.to(torch.bfloat16)
    x = torch.randn(1, k, generator=gen).to(torch.bfloat16)
    x[0, 3] = 40.0  # an outlier: the activations' int16 step follows the largest one
    with torch.inference_mode():
        got = cpu_kernels.linear_int8(x, q, scales)
    want = F.linear(x.double(), q.double() * scales.double()[:, None])
    assert got.dtype == torch.bfloat16 and got.shape == (1, n)
    assert float((got.double() - want).abs().max()) <= 2 ** -8 * float(want.abs().max())
    zero = cpu_kernels.linear_int8(torch.zeros_like(x), q, scales)
    assert torch.equal(zero, torch.zeros_like(zero))


def test_what_the_kernels_do_not_take():
    w = torch.zeros(8, 32, dtype=torch.bfloat16)
    with torch.inference_mode():
        assert not cpu_kernels.fits(torch.zeros(2, 32, dtype=torch.bfloat16), w)  # two rows: a prefill
        assert not cpu_kernels.fits(torch.zeros(1, 24), torch.zeros(8, 24, dtype=torch.bfloat16))  # 24 % 16
        assert not cpu_kernels.fits(torch.zeros(1, 32, dtype=torch.float16), w)
        assert not cpu_kernels.fits(torch.zeros(1, 32, dtype=torch.bfloat16), w.t().contiguous().t()[:, :32])
    assert not cpu_kernels.fits(torch.zeros(1, 32, dtype=torch.bfloat16, requires_grad=True), w)  # autograd


def attention_in_float64(q, k, v, positions, slots=None):
    """One query per row over its cache row up to its position, in float64, by the model's masked attention."""
    if slots is not None:
        k, v = k[slots], v[slots]
    written = torch.arange(k.shape[2])[None, :] <= positions.view(-1, 1)
    v = v.double().masked_fill(~written[:, None, :, None], 0)
    return grouped_attention(q.double(), k.double(), v, written[:, None, None, None, :]).transpose(1, 2)


@pytest.mark.parametrize(("heads", "kv_heads", "dim"), [(8, 1, 256), (16, 16, 256), (4, 1, 32), (4, 4, 32),
                                                           (6, 2, 64)])
def test_one_token_attention_is_float64s(heads, kv_heads, dim):
    """The real 2B (8 query heads on 1 key/value head) and 7B (16 on 16) shapes at 768 cached positions,
    the tiny models' ones, and groups of 3 (not a multiple of the kernel's blocks of heads)."""
    gen = torch.Generator().manual_seed(heads * dim + kv_heads)
    length = 768 if dim == 256 else 50
    q = torch.randn(2, 1, heads, dim, generator=gen).to(torch.bfloat16).transpose(1, 2)  # as the model passes it
    k, v = (torch.randn(2, kv_heads, length, dim, generator=gen).to(torch.bfloat16) for _ in range(2))
    with torch.inference_mode():
        assert cpu_kernels.attention_fits(q, k, v)
        for position in (0, 1, length // 2 + 3, length - 1):
            got = cpu_kernels.decode_attention(q, k, v, torch.tensor([position]))
            want = attention_in_float64(q, k, v, torch.tensor([position]))
            assert got.shape == (2, 1, heads, dim) and got.dtype == torch.bfloat16
            # computed in float32 and rounded once to bfloat16 (the values are within a few units)
            assert float((got.double() - want).abs().max()) <= 2 ** -8 * float(want.abs().max()) + 1e-6
        # a row per sequence, each in its own slot of a shared cache, at its own position
        positions, slots = torch.tensor([length - 1, 5]), torch.tensor([1, 0])
        got = cpu_kernels.decode_attention(q, k, v, positions, slots)
        want = attention_in_float64(q, k, v, positions, slots)
        assert float((got.double() - want).abs().max()) <= 2 ** -8 * float(want.abs().max()) + 1e-6


def test_attention_ignores_what_lies_past_the_position():
    """Slots after the position hold stale entries or never-written memory: never read."""
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(1, 8, 1, 256, generator=gen).to(torch.bfloat16)
    k, v = (torch.randn(1, 1, 64, 256, generator=gen).to(torch.bfloat16) for _ in range(2))
    with torch.inference_mode():
        before = cpu_kernels.decode_attention(q, k, v, torch.tensor([20]))
        k[:, :, 21:], v[:, :, 21:] = 1e4, float("nan")
        assert torch.equal(cpu_kernels.decode_attention(q, k, v, torch.tensor([20])), before)
        # what the kernel does not take goes to the masked attention, which computes the same
        assert not cpu_kernels.attention_fits(q.float(), k.float(), v.float())
        plain = cpu_kernels.decode_attention(q.float(), k.float(), v.float(), torch.tensor([20]))
        assert plain.dtype == torch.float32
        assert float((plain - before.float()).abs().max()) <= 2 ** -7 * float(plain.abs().max())


@pytest.mark.parametrize("variant", ["2b", "7b"])
@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_bf16_models_decode_the_same_tokens_with_the_kernels(tiny_dirs, monkeypatch, variant, quantize):
    fast = load(tiny_dirs[variant], device="cpu", dtype="bfloat16", quantize=quantize)
    if quantize == "none":
        modules = list(fast.model.modules())
        assert sum(isinstance(m, KernelLinear) for m in modules) == 7 * fast.config.num_layers
        assert isinstance(fast.model.model.embed_tokens, KernelEmbedding)
    assert all(layer.self_attn.decode_kernel is cpu_kernels.decode_attention for layer in fast.model.model.layers)
    calls, masked = [], []
    for name in ("linear_bf16", "linear_int8"):
        real = getattr(cpu_kernels, name)
        monkeypatch.setattr(cpu_kernels, name, lambda *a, real=real: calls.append(a[0].shape) or real(*a))
    real_masked = cpu_kernels._masked_attention
    monkeypatch.setattr(cpu_kernels, "_masked_attention", lambda *a: masked.append(1) or real_masked(*a))
    ids = fast.tokenizer.encode("def total(items):\n    return sum(items)\n")
    got = fast.generate(ids, max_new_tokens=16, stop_token_ids=[]).token_ids
    assert len(calls) >= 15 * 8  # every decoded token's matmuls and head went through them
    assert not masked  # and its attention through the attention kernel
    monkeypatch.setattr(cpu_kernels, "kernels", lambda: None)
    assert fast.generate(ids, max_new_tokens=16, stop_token_ids=[]).token_ids == got
    assert len(masked) >= 15 * fast.config.num_layers  # torch's masked attention this time


def test_blocks_without_native_bf16_are_multiplied_in_float32(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "NATIVE_BF16", False)
    gen = torch.Generator().manual_seed(3)
    w = (torch.randn(5000, 64, generator=gen) * 0.1).to(torch.bfloat16)  # more than one block of rows
    x = torch.randn(1, 40, 64, generator=gen).to(torch.bfloat16)
    converted = []
    real = cpu_kernels.linear_in_float32
    monkeypatch.setattr(cpu_kernels, "linear_in_float32", lambda *a: converted.append(1) or real(*a))
    with torch.inference_mode():
        got = cpu_kernels.dense_linear(x, w)
        few = cpu_kernels.dense_linear(x[:, :4], w)  # a draft block: torch's bfloat16 product
    assert converted == [1]
    want = F.linear(x.float(), w.float()).to(torch.bfloat16)
    assert got.dtype == torch.bfloat16 and torch.equal(got, want)
    assert float((few.float() - want[:, :4].float()).abs().max()) <= 2 ** -7 * float(want.abs().max())
