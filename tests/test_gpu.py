"""On a GPU: the captured decode step gives the same tokens as the plain one (skipped without CUDA).

CI has no GPU; these run in the device runs that docs/engine.md quotes. There, set
TUTOR_REQUIRE_GPU=1: a missing GPU (or a CPU build of torch) then fails instead of skipping.
"""

from __future__ import annotations

import pytest
import torch
from conftest import skip_without_gpu

from tutor.engine import CompletionSession, load

skip_without_gpu()

PROMPTS = ([2, 40, 41, 42, 43, 44], [2, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("variant", ["2b", "7b"])
def test_captured_decoding_gives_the_plain_tokens(tiny_dirs, monkeypatch, variant, dtype):
    model = load(tiny_dirs[variant], device="cuda", dtype=dtype)
    monkeypatch.setenv("TUTOR_CUDA_GRAPHS", "0")
    plain = [model.generate(p, max_new_tokens=60, stop_token_ids=[]).token_ids for p in PROMPTS]
    monkeypatch.setenv("TUTOR_CUDA_GRAPHS", "1")
    for _ in range(2):  # the second round reuses the spare caches and their captured steps
        assert [model.generate(p, max_new_tokens=60, stop_token_ids=[]).token_ids for p in PROMPTS] == plain
    assert model._spare_caches  # noqa: SLF001 - the pool was used


def test_sessions_are_captured_too(tiny_dirs):
    model = load(tiny_dirs["2b"], device="cuda", dtype="float32")
    session = CompletionSession(model)
    for prompt in (PROMPTS[1], PROMPTS[1][:-2] + [70, 71]):
        expected = model.generate(prompt, max_new_tokens=30, stop_token_ids=[]).token_ids
        assert session.generate(prompt, max_new_tokens=30, stop_token_ids=[]).token_ids == expected


@pytest.mark.parametrize("variant", ["2b", "7b"])
def test_compiled_decoding_gives_the_plain_tokens(tiny_dirs, monkeypatch, variant):
    """TUTOR_COMPILE=1: the compiled, captured step (fused projections) decodes what the plain step
    does in float32, for two cache lengths (the second makes the length dynamic: one recompile)."""
    model = load(tiny_dirs[variant], device="cuda", dtype="float32")
    assert "model.layers.0.self_attn.qkv_proj.weight_t" in model.model.state_dict()  # fused and transposed on a GPU
    cases = [(PROMPTS[0], 60), (PROMPTS[1], 300)]  # caches of 256 and 512 positions
    monkeypatch.setenv("TUTOR_CUDA_GRAPHS", "0")
    plain = [model.generate(p, max_new_tokens=n, stop_token_ids=[]).token_ids for p, n in cases]
    monkeypatch.setenv("TUTOR_CUDA_GRAPHS", "1")
    monkeypatch.setenv("TUTOR_COMPILE", "1")
    assert [model.generate(p, max_new_tokens=n, stop_token_ids=[]).token_ids for p, n in cases] == plain
    assert model._compiled is not None  # noqa: SLF001 - the compiled step was used


def test_chained_greedy_stops_and_sampling_match_the_plain_step(tiny_dirs, monkeypatch):
    """Stopping early in the chained loop (one step too many has run) and host-side sampling on the
    captured step both give what the plain step gives; a session after an early stop stays right."""
    model = load(tiny_dirs["2b"], device="cuda", dtype="float32")
    prompt = PROMPTS[1]
    monkeypatch.setenv("TUTOR_CUDA_GRAPHS", "0")
    full = model.generate(prompt, max_new_tokens=40, stop_token_ids=[]).token_ids
    stop = full[9]
    first_stop = full.index(stop)
    plain_sampled = model.generate(prompt, max_new_tokens=40, temperature=0.8, seed=3, stop_token_ids=[]).token_ids
    monkeypatch.setenv("TUTOR_CUDA_GRAPHS", "1")
    stopped = model.generate(prompt, max_new_tokens=40, stop_token_ids=[stop])
    assert stopped.token_ids == full[:first_stop + 1] and stopped.finish_reason == "stop"
    assert model.generate(prompt, max_new_tokens=40, temperature=0.8, seed=3,
                          stop_token_ids=[]).token_ids == plain_sampled
    session = CompletionSession(model)
    session.generate(prompt, max_new_tokens=40, stop_token_ids=[stop])
    assert session.cached_ids[:len(prompt) + first_stop] == prompt + full[:first_stop]
    longer = prompt + full[:first_stop + 1]
    again = session.generate(longer, max_new_tokens=20, stop_token_ids=[])
    assert again.cached_tokens >= len(prompt) + first_stop
    assert again.token_ids == full[first_stop + 1:first_stop + 21]


def test_prompt_lookup_on_captured_blocks_gives_the_greedy_tokens(tiny_dirs, monkeypatch):
    """Verifying drafts with the captured, padded block: all-right and all-wrong drafts both give
    plain greedy's tokens, also when the context's end leaves fewer spare positions than drafts."""
    import tutor.engine.decoding as decoding

    model = load(tiny_dirs["2b"], device="cuda", dtype="float32")
    prompt = [2] + list(range(40, 52)) * 2
    plain = model.generate(prompt, max_new_tokens=40, stop_token_ids=[])
    truth = prompt + plain.token_ids
    monkeypatch.setattr(decoding.Drafter, "draft", lambda self, k: truth[len(self.context):len(self.context) + k])
    fast = model.generate(prompt, max_new_tokens=40, stop_token_ids=[], draft_tokens=4)
    assert fast.token_ids == plain.token_ids and fast.forward_passes == 8
    monkeypatch.setattr(decoding.Drafter, "draft", lambda self, k: [7] * k)
    assert model.generate(prompt, max_new_tokens=40, stop_token_ids=[], draft_tokens=4).token_ids == plain.token_ids
    near_end = [2] + [40 + i % 50 for i in range(model.context_length - 12)]
    expected = model.generate(near_end, max_new_tokens=50, stop_token_ids=[]).token_ids
    assert len(expected) == 11
    assert model.generate(near_end, max_new_tokens=50, stop_token_ids=[], draft_tokens=8).token_ids == expected


def test_warm_up_captures_the_steps_a_server_will_use(tiny_dirs, monkeypatch):
    monkeypatch.setenv("TUTOR_COMPILE", "1")
    model = load(tiny_dirs["7b"], device="cuda", dtype="float32")
    model.warm_up()
    assert sorted(model._spare_caches) == [256, 512]  # noqa: SLF001 - captured caches wait in the pool
    monkeypatch.setenv("TUTOR_CUDA_GRAPHS", "0")
    plain = model.generate(PROMPTS[0], max_new_tokens=30, stop_token_ids=[]).token_ids
    monkeypatch.setenv("TUTOR_CUDA_GRAPHS", "1")
    assert model.generate(PROMPTS[0], max_new_tokens=30, stop_token_ids=[]).token_ids == plain


def test_a_standalone_server_compiles_and_a_worker_does_not(tiny_dirs, monkeypatch):
    """`tutor serve` alone compiles its decode step by default; as a worker (--parent-pid) it does not."""
    import os

    import httpx
    from conftest import start_server

    monkeypatch.delenv("TUTOR_COMPILE", raising=False)
    for extra, expected in (((), "captured+compiled"), (("--parent-pid", str(os.getpid())), "captured")):
        proc, url = start_server("--model", str(tiny_dirs["2b"]), "--device", "cuda", *extra, timeout=300)
        try:
            model = httpx.get(f"{url}/health").json()["models"][str(tiny_dirs["2b"])]
            assert model["decode"].endswith(expected)
            assert model["scheduler"] == ("fifo" if extra else "batched")
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def test_a_compiler_failure_falls_back_to_the_captured_step(tiny_dirs, monkeypatch):
    import tutor.engine.codegemma as codegemma

    def broken(model):
        def step(*args):
            raise RuntimeError("no C compiler found")
        return step

    model = load(tiny_dirs["2b"], device="cuda", dtype="float32")
    monkeypatch.setenv("TUTOR_CUDA_GRAPHS", "0")
    plain = model.generate(PROMPTS[0], max_new_tokens=20, stop_token_ids=[]).token_ids
    monkeypatch.setenv("TUTOR_CUDA_GRAPHS", "1")
    monkeypatch.setenv("TUTOR_COMPILE", "1")
    monkeypatch.setattr(codegemma, "compiled_step", broken)
    assert model.decode_path == "captured+compiled"
    with pytest.warns(RuntimeWarning, match="no C compiler found"):
        assert model.generate(PROMPTS[0], max_new_tokens=20, stop_token_ids=[]).token_ids == plain
    assert model.decode_path == "captured"  # and it is not tried again
    assert model.generate(PROMPTS[1], max_new_tokens=20, stop_token_ids=[]).finish_reason == "length"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(("heads", "kv_heads"), [(8, 1), (16, 16)])  # the 2B's and the 7B's attention
def test_the_decode_kernel_matches_masked_attention(heads, kv_heads, dtype):
    """The Triton kernels at the real head shapes (whose float32 blocks must fit in shared memory),
    replayed in a graph as the position moves."""
    import torch.nn.functional as F

    from tutor.engine.decode_attention import decode_attention, slice_length

    gen = torch.Generator(device="cuda").manual_seed(0)
    length, dim = 1152, 256
    q = torch.randn(1, 1, heads, dim, device="cuda", generator=gen).to(dtype).transpose(1, 2)
    k, v = (torch.randn(1, kv_heads, length, dim, device="cuda", generator=gen).to(dtype) for _ in range(2))
    position = torch.zeros(1, dtype=torch.long, device="cuda")
    decode_attention(q, k, v, position)  # compile the kernels outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = decode_attention(q, k, v, position)
    split = slice_length(1, kv_heads)
    for p in (0, split - 1, split, 700, length - 1):
        position.fill_(p)
        graph.replay()
        mask = (torch.arange(length, device="cuda") <= p)[None, :]
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=heads != kv_heads)
        tolerance = 2e-2 if dtype == torch.bfloat16 else 1e-4
        torch.testing.assert_close(out, expected.transpose(1, 2), atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("variant", ["2b", "7b"])
def test_the_decode_kernel_gives_the_tokens_of_masked_attention(tiny_dirs, monkeypatch, variant):
    """Loaded on a GPU, one-token attention runs in the Triton kernels (captured and compiled too);
    TUTOR_DECODE_KERNEL=0 keeps scaled_dot_product_attention. Same float32 tokens either way."""
    from tutor.engine.decode_attention import decode_attention

    monkeypatch.setenv("TUTOR_DECODE_KERNEL", "0")
    masked = load(tiny_dirs[variant], device="cuda", dtype="float32")
    assert masked.model.model.layers[0].self_attn.decode_kernel is None
    expected = [masked.generate(p, max_new_tokens=300, stop_token_ids=[]).token_ids for p in PROMPTS]
    monkeypatch.delenv("TUTOR_DECODE_KERNEL")
    model = load(tiny_dirs[variant], device="cuda", dtype="float32")
    assert model.model.model.layers[0].self_attn.decode_kernel is decode_attention
    # the embedding went up transposed a block at a time, never in both layouts
    assert model.model.model.embed_tokens.weight_t.is_contiguous()
    for compiled in ("0", "1"):
        monkeypatch.setenv("TUTOR_COMPILE", compiled)
        assert [model.generate(p, max_new_tokens=300, stop_token_ids=[]).token_ids for p in PROMPTS] == expected
        assert model.decode_path == ("captured+compiled" if compiled == "1" else "captured")  # compiling worked

