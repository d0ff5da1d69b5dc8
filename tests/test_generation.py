"""Generation on tiny models: the KV cache paths against plain forward passes, streaming, stops, cancel."""

from __future__ import annotations

import threading

import pytest
import torch

from tutor.engine import GenerationStream, PromptError, load
from tutor.engine.decoding import Drafter, find_draft
from tutor.prompts import chat_prompt, fim_prompt

PROMPT_TEXT = "def total(numbers):\n    result = 0\n    for value in numbers:\n"


def prompt_ids(model):
    return [model.tokenizer.bos_id, *model.tokenizer.encode(PROMPT_TEXT)]


def greedy_without_cache(model, ids, n):
    ids = list(ids)
    for _ in range(n):
        ids.append(int(model.logits(ids)[0, -1].argmax()))
    return ids[-n:]


@pytest.mark.parametrize("name", ["tiny_2b", "tiny_7b"])
def test_cached_greedy_equals_full_recompute(request, name):
    model = request.getfixturevalue(name)
    ids = prompt_ids(model)
    result = model.generate(ids, max_new_tokens=24, stop_token_ids=[])
    assert result.token_ids == greedy_without_cache(model, ids, 24)
    assert (result.finish_reason, result.prompt_tokens, result.completion_tokens) == ("length", len(ids), 24)


def test_prefill_after_a_cached_prefix_equals_one_prefill(tiny_2b):
    """prefill(start>0) is the path that reuses a shared prefix's cache."""
    m = tiny_2b.model
    ids = torch.tensor([prompt_ids(tiny_2b)])
    with torch.inference_mode():
        whole = m.prefill(ids, m.new_cache(1, 256))
        cache = m.new_cache(1, 256)
        first = m.prefill(ids[:, :10], cache)
        rest = m.prefill(ids[:, 10:], cache, start=10)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole, atol=1e-4, rtol=1e-4)


def test_batched_decode_matches_single_rows(tiny_7b):
    m = tiny_7b.model
    gen = torch.Generator().manual_seed(0)
    batch = torch.randint(4, tiny_7b.config.vocab_size, (3, 12), generator=gen)
    nxt = torch.randint(4, tiny_7b.config.vocab_size, (3, 1), generator=gen)
    with torch.inference_mode():
        cache = m.new_cache(3, 64)
        m.prefill(batch, cache)
        step = m.decode_step(nxt, torch.tensor([12]), cache)
    full = tiny_7b.logits(torch.cat([batch, nxt], dim=1))[:, -1]
    torch.testing.assert_close(step, full, atol=1e-4, rtol=1e-4)


def test_stream_pieces_add_up_to_the_result(tiny_2b):
    stream = tiny_2b.generate(prompt_ids(tiny_2b), max_new_tokens=30, stream=True, stop_token_ids=[])
    assert isinstance(stream, GenerationStream)
    pieces = list(stream)
    assert stream.result is not None
    assert "".join(pieces) == stream.result.text
    assert stream.result.text == tiny_2b.tokenizer.decode(stream.result.token_ids)


def test_stop_strings_cut_the_text(tiny_2b):
    ids = prompt_ids(tiny_2b)
    free = tiny_2b.generate(ids, max_new_tokens=40, stop_token_ids=[])
    stop = free.text[len(free.text) // 2:len(free.text) // 2 + 3]
    assert stop, free.text
    stopped = tiny_2b.generate(ids, max_new_tokens=40, stop_token_ids=[], stop_strings=[stop], stream=True)
    pieces = list(stopped)
    assert stopped.result.finish_reason == "stop"
    assert stopped.result.text == free.text[:free.text.find(stop)]
    assert "".join(pieces) == stopped.result.text


def test_stop_token_ends_generation(tiny_2b):
    ids = prompt_ids(tiny_2b)
    free = tiny_2b.generate(ids, max_new_tokens=30, stop_token_ids=[])
    stop_id = free.token_ids[5]
    first = free.token_ids.index(stop_id)
    result = tiny_2b.generate(ids, max_new_tokens=30, stop_token_ids=[stop_id])
    assert result.finish_reason == "stop"
    assert result.token_ids == free.token_ids[:first + 1]
    assert result.text == tiny_2b.tokenizer.decode(free.token_ids[:first])


def test_sampling_is_repeatable_with_a_seed(tiny_2b):
    ids = prompt_ids(tiny_2b)
    a = tiny_2b.generate(ids, max_new_tokens=20, temperature=1.0, top_p=0.9, seed=7, stop_token_ids=[])
    b = tiny_2b.generate(ids, max_new_tokens=20, temperature=1.0, top_p=0.9, seed=7, stop_token_ids=[])
    others = {tuple(tiny_2b.generate(ids, max_new_tokens=20, temperature=1.5, seed=s, stop_token_ids=[]).token_ids)
              for s in range(4)}
    assert a.token_ids == b.token_ids
    assert len(others) > 1
    greedy = tiny_2b.generate(ids, max_new_tokens=20, stop_token_ids=[])
    top1 = tiny_2b.generate(ids, max_new_tokens=20, temperature=0.8, top_k=1, seed=3, stop_token_ids=[])
    assert top1.token_ids == greedy.token_ids


def test_cancel_from_another_thread(tiny_2b):
    stream = tiny_2b.generate(prompt_ids(tiny_2b), max_new_tokens=1000, stream=True, stop_token_ids=[])
    next(stream)
    threading.Thread(target=stream.cancel).start()
    rest = list(stream)
    assert stream.result.finish_reason == "cancelled"
    assert stream.result.completion_tokens < 1000
    assert len(rest) < 1000


def test_cancel_event_for_blocking_generate(tiny_2b):
    event = threading.Event()
    event.set()
    result = tiny_2b.generate(prompt_ids(tiny_2b), max_new_tokens=50, cancel=event)
    assert (result.finish_reason, result.completion_tokens) == ("cancelled", 0)


def test_generation_stops_at_the_context_end(tiny_2b):
    ctx = tiny_2b.context_length
    ids = [tiny_2b.tokenizer.bos_id] + [tiny_2b.tokenizer.encode("x")[0]] * (ctx - 6)
    result = tiny_2b.generate(ids, max_new_tokens=100, stop_token_ids=[])
    assert (result.finish_reason, result.completion_tokens) == ("length", 5)


def test_prompt_longer_than_the_context_is_refused(tiny_2b):
    ctx = tiny_2b.context_length
    text = "x = 1\n" * ctx
    ids = fim_prompt(tiny_2b.tokenizer, text)
    assert len(ids) > ctx
    with pytest.raises(PromptError, match=rf"{len(ids)} tokens .* context is {ctx}"):
        tiny_2b.generate(ids)
    with pytest.raises(PromptError, match="context"):
        tiny_2b.logits(ids)
    with pytest.raises(PromptError, match="fills the model's context"):
        tiny_2b.generate(ids[:ctx])


@pytest.mark.parametrize("bad", [[], [10**9], [-1]])
def test_bad_prompt_ids(tiny_2b, bad):
    with pytest.raises(PromptError):
        tiny_2b.generate(bad)


def test_instruction_tuned_model_stops_at_end_of_turn(tiny_it, tiny_2b):
    assert tiny_it.config.instruction_tuned and tiny_it.config.variant == "7b-it"
    assert not tiny_2b.config.instruction_tuned and tiny_2b.config.variant == "2b"
    assert tiny_it.tokenizer.special["<end_of_turn>"] in tiny_it.default_stop_ids()
    ids = chat_prompt(tiny_it.tokenizer, [{"role": "user", "content": "Explain a for loop."}])
    result = tiny_it.generate(ids, max_new_tokens=8)
    assert result.finish_reason in ("stop", "length")
    assert result.prompt_tokens == len(ids)


def test_bfloat16_generation_runs(tiny_2b_dir):
    from tutor.engine import load

    model = load(tiny_2b_dir, device="cpu")
    assert model.dtype == torch.bfloat16  # the checkpoint's own dtype by default
    result = model.generate(prompt_ids(model), max_new_tokens=8, stop_token_ids=[])
    assert result.completion_tokens == 8


@pytest.mark.parametrize("variant", ["2b", "7b"])
def test_fused_projections_give_the_same_tokens(tiny_dirs, variant):
    """The GPU's concatenated q/k/v and gate/up matrices compute the same model (float32, on the CPU)."""
    model = load(tiny_dirs[variant], device="cpu", dtype="float32")
    prompt = [2, 40, 41, 42, 43, 44, 45]
    plain_logits = model.logits(prompt)
    plain = model.generate(prompt, max_new_tokens=40, stop_token_ids=[]).token_ids
    model.model.fuse_projections()
    names = set(model.model.state_dict())
    assert "model.layers.0.self_attn.qkv_proj.weight" in names
    assert "model.layers.0.mlp.gate_up_proj.weight" in names
    separate = (".q_proj.weight", ".k_proj.weight", ".v_proj.weight", ".gate_proj.weight", ".up_proj.weight")
    assert not any(n.endswith(separate) for n in names)
    assert torch.allclose(model.logits(prompt), plain_logits, atol=1e-5, rtol=0)
    assert model.generate(prompt, max_new_tokens=40, stop_token_ids=[]).token_ids == plain
    model.model.transpose_weights()  # the GPU's layout: every matrix stored [in, out]
    names = set(model.model.state_dict())
    assert "model.embed_tokens.weight_t" in names and "model.layers.0.mlp.down_proj.weight_t" in names
    assert not any(n.endswith(".weight") and "norm" not in n for n in names)
    # another summation order inside the matmuls: float32 rounding, as in the parity tests
    assert torch.allclose(model.logits(prompt), plain_logits, atol=1e-4, rtol=0)
    assert model.generate(prompt, max_new_tokens=40, stop_token_ids=[]).token_ids == plain
    with pytest.raises(ValueError, match="transposed"):  # fusing comes first
        _fuse_after_transposing(tiny_dirs[variant])


def _fuse_after_transposing(folder):
    model = load(folder, device="cpu", dtype="float32")
    model.model.transpose_weights()
    model.model.fuse_projections()


def test_int8_weights_are_not_fused(tiny_2b_dir):
    model = load(tiny_2b_dir, device="cpu", quantize="int8")
    with pytest.raises(ValueError, match="int8"):
        model.model.fuse_projections()


def test_find_draft_takes_what_followed_the_latest_match():
    assert find_draft([1, 2, 3, 9, 2, 3, 7, 8, 2, 3], 2) == [7, 8]  # latest earlier "2 3"
    assert find_draft([5, 6, 7, 1, 6, 7], 5) == [1, 6, 7]  # up to the end of the context
    assert find_draft([1, 2, 3], 4) == []  # the last token never occurred before
    assert find_draft([4], 3) == []
    import random

    rng = random.Random(0)
    tokens = [rng.randrange(6) for _ in range(300)]
    drafter = Drafter(tokens[:1])
    for i in range(1, len(tokens)):  # the index, grown token by token, agrees with a plain scan
        drafter.extend(tokens[i:i + 1])
        context = tokens[:i + 1]
        for n in (3, 2, 1):
            tail = context[-n:]
            starts = [s for s in range(len(context) - n) if context[s:s + n] == tail]
            if starts:
                assert drafter.draft(4) == context[starts[-1] + n:starts[-1] + n + 4]
                break
        else:
            assert drafter.draft(4) == []


@pytest.mark.parametrize("variant", ["2b", "7b"])
def test_prompt_lookup_gives_the_greedy_tokens_in_fewer_passes(tiny_dirs, monkeypatch, variant):
    """Drafts from an oracle that knows greedy's answer are all accepted (k + 1 tokens a pass);
    wrong drafts are all rejected; either way the tokens are plain greedy's (float32)."""
    import tutor.engine.decoding as decoding

    model = load(tiny_dirs[variant], device="cpu", dtype="float32")
    prompt = [2] + list(range(40, 52)) * 2
    plain = model.generate(prompt, max_new_tokens=40, stop_token_ids=[])
    assert plain.forward_passes == 39
    truth = prompt + plain.token_ids
    oracle = lambda self, k: truth[len(self.context):len(self.context) + k]  # noqa: E731
    monkeypatch.setattr(decoding.Drafter, "draft", oracle)
    fast = model.generate(prompt, max_new_tokens=40, stop_token_ids=[], draft_tokens=4)
    assert fast.token_ids == plain.token_ids
    assert fast.accepted_tokens == fast.drafted_tokens > 0
    assert fast.forward_passes == 8  # 39 tokens after the first, 5 a pass
    wrong = lambda self, k: [(t + 1) % 900 + 10 for t in truth[len(self.context):len(self.context) + k]]  # noqa: E731
    monkeypatch.setattr(decoding.Drafter, "draft", wrong)
    slow = model.generate(prompt, max_new_tokens=40, stop_token_ids=[], draft_tokens=4)
    assert slow.token_ids == plain.token_ids and slow.accepted_tokens == 0 and slow.forward_passes == 39


def test_prompt_lookup_in_a_session_keeps_the_cache_right(tiny_dirs):
    from tutor.engine import CompletionSession

    model = load(tiny_dirs["2b"], device="cpu", dtype="float32")
    prompt = [2] + list(range(40, 50)) * 3
    plain = model.generate(prompt, max_new_tokens=30, stop_token_ids=[])
    session = CompletionSession(model)
    first = session.generate(prompt, max_new_tokens=30, stop_token_ids=[], draft_tokens=6)
    assert first.token_ids == plain.token_ids
    assert session.cached_ids == prompt + plain.token_ids[:-1]
    follow = prompt + plain.token_ids[:10]
    again = session.generate(follow, max_new_tokens=20, stop_token_ids=[], draft_tokens=6)
    assert again.cached_tokens == len(follow) - 1
    assert again.token_ids == model.generate(follow, max_new_tokens=20, stop_token_ids=[]).token_ids


def test_draft_tokens_must_not_be_negative_nor_sampled(tiny_2b):
    with pytest.raises(ValueError, match="draft_tokens"):
        tiny_2b.generate([2, 40], draft_tokens=-1)
    with pytest.raises(ValueError, match="greedy decoding only"):
        tiny_2b.generate([2, 40], draft_tokens=4, temperature=0.7)


def test_warm_up_does_nothing_on_a_cpu(tiny_2b):
    tiny_2b.warm_up()
    assert not tiny_2b._spare_caches  # noqa: SLF001 - no captured steps, so no pool
