"""The CPU decoding kernels (tutor.engine.cpu_kernels): the products torch computes, and the same
tokens from a whole model, with the kernels and without."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tutor.engine import cpu_kernels, load
from tutor.engine.cpu_kernels import KernelEmbedding, KernelLinear
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


@pytest.mark.parametrize("variant", ["2b", "7b"])
@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_bf16_models_decode_the_same_tokens_with_the_kernels(tiny_dirs, monkeypatch, variant, quantize):
    fast = load(tiny_dirs[variant], device="cpu", dtype="bfloat16", quantize=quantize)
    if quantize == "none":
        modules = list(fast.model.modules())
        assert sum(isinstance(m, KernelLinear) for m in modules) == 7 * fast.config.num_layers
        assert isinstance(fast.model.model.embed_tokens, KernelEmbedding)
    calls = []
    for name in ("linear_bf16", "linear_int8"):
        real = getattr(cpu_kernels, name)
        monkeypatch.setattr(cpu_kernels, name, lambda *a, real=real: calls.append(a[0].shape) or real(*a))
    ids = fast.tokenizer.encode("def total(items):\n    return sum(items)\n")
    got = fast.generate(ids, max_new_tokens=16, stop_token_ids=[]).token_ids
    assert len(calls) >= 15 * 8  # every decoded token's matmuls and head went through them
    monkeypatch.setattr(cpu_kernels, "kernels", lambda: None)
    assert fast.generate(ids, max_new_tokens=16, stop_token_ids=[]).token_ids == got


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
