"""Our engine against the reference implementation (Hugging Face transformers) on the same weights.

transformers builds GemmaForCausalLM with random weights (norm weights randomised too, so the
(1 + w) convention is exercised) and saves it; our loader reads that folder.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import GemmaConfig, GemmaForCausalLM

from tutor.engine import load

SHAPES = {
    # multi-query like 2B; head_dim 32 while hidden / heads = 16
    "multi-query": dict(hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=1,
                        head_dim=32),
    # multi-head like 7B; heads * head_dim = 128 != hidden 48
    "multi-head": dict(hidden_size=48, intermediate_size=96, num_attention_heads=4, num_key_value_heads=4, head_dim=32),
    # grouped: 2 query heads per key/value head
    "grouped": dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=24),
}


def reference_folder(tmp_path, tokenizer_path, shape: str, dtype=torch.float32, seed=0):
    vocab = 1000
    config = GemmaConfig(vocab_size=vocab, num_hidden_layers=3, max_position_embeddings=512,
                         hidden_activation="gelu_pytorch_tanh", pad_token_id=0, eos_token_id=1, bos_token_id=2,
                         **SHAPES[shape])
    torch.manual_seed(seed)
    model = GemmaForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.3 if "norm" in name else 0.15)
    model = model.to(dtype).eval()
    folder = tmp_path / f"ref-{shape}-{str(dtype).split('.')[-1]}"
    model.save_pretrained(folder)
    shutil.copy(tokenizer_path, folder / "tokenizer.model")
    return model, folder


@pytest.fixture(scope="module")
def token_batch():
    gen = torch.Generator().manual_seed(1)
    return torch.randint(4, 1000, (2, 48), generator=gen)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_float32_logits_match_reference(tmp_path, tiny_2b_dir, token_batch, shape):
    ref, folder = reference_folder(tmp_path, tiny_2b_dir / "tokenizer.model", shape)
    ours = load(folder, device="cpu", dtype="float32")
    with torch.no_grad():
        expected = ref(token_batch).logits.float()
    got = ours.logits(token_batch)
    assert got.shape == expected.shape == (2, 48, 1000)
    assert got.dtype == torch.float32
    assert (got - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("shape", ["multi-query", "multi-head"])
def test_greedy_generation_with_cache_matches_reference(tmp_path, tiny_2b_dir, token_batch, shape):
    ref, folder = reference_folder(tmp_path, tiny_2b_dir / "tokenizer.model", shape)
    ours = load(folder, device="cpu", dtype="float32")
    prompt = token_batch[:1, :20]
    with torch.no_grad():
        expected = ref.generate(prompt, max_new_tokens=40, do_sample=False, eos_token_id=None,
                                pad_token_id=0)[0, 20:].tolist()
    result = ours.generate(prompt[0].tolist(), max_new_tokens=40, stop_token_ids=[])
    assert len(expected) == 40
    assert result.token_ids == expected


def test_old_config_dialect_with_plain_gelu_still_uses_tanh(tmp_path, tiny_2b_dir, token_batch):
    """codegemma-2b 1.0 ships "hidden_act": "gelu"; the model is still the tanh form."""
    ref, folder = reference_folder(tmp_path, tiny_2b_dir / "tokenizer.model", "multi-query")
    raw = json.loads((folder / "config.json").read_text())
    rope = raw.pop("rope_parameters")
    raw.pop("dtype", None)
    raw.pop("hidden_activation", None)
    raw.update(hidden_act="gelu", rope_theta=rope["rope_theta"], torch_dtype="float32")
    (folder / "config.json").write_text(json.dumps(raw))
    ours = load(folder, device="cpu")
    assert ours.dtype == torch.float32  # from torch_dtype
    with torch.no_grad():
        expected = ref(token_batch).logits.float()
    assert (ours.logits(token_batch) - expected).abs().max().item() < 1e-4


# bfloat16: both sides round at different points (fused attention, matmul accumulation order),
# so logits differ by a few bf16 ulps of the logit scale. Bound: max |diff| <= 2% of the largest
# |logit|, and the top-1 token agrees at >= 95% of positions.
def test_bfloat16_logits_close_to_reference(tmp_path, tiny_2b_dir, token_batch):
    ref, folder = reference_folder(tmp_path, tiny_2b_dir / "tokenizer.model", "multi-query", dtype=torch.bfloat16)
    ours = load(folder, device="cpu")
    assert ours.dtype == torch.bfloat16
    with torch.no_grad():
        expected = ref(token_batch).logits.float()
    got = ours.logits(token_batch)
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 0.02 * scale
    agree = (got.argmax(-1) == expected.argmax(-1)).float().mean().item()
    assert agree >= 0.95
