"""On a GPU: continuous batching through captured (and compiled) batched steps and the per-row
attention kernels gives single-sequence greedy tokens in float32 (skipped without CUDA, failed
instead with TUTOR_REQUIRE_GPU=1)."""

from __future__ import annotations

import pytest
from conftest import skip_without_gpu
from waiting import wait_until

from tests.test_batching import greedy, prompts, results
from tutor.engine import load
from tutor.engine.batching import BatchScheduler

skip_without_gpu()


def run_mixed(model, batch, n=12):
    ids = prompts(model.tokenizer, n)
    lengths = [(5 * i) % 23 + 1 for i in range(n)]
    expected = [greedy(model, p, k) for p, k in zip(ids, lengths, strict=True)]
    streams = []
    for i, (p, k) in enumerate(zip(ids, lengths, strict=True)):
        streams.append(batch.generate(p, max_new_tokens=k, stop_token_ids=[], stream=True, user=f"u{i % 4}"))
        if i % 4 == 3:  # later arrivals join a batch that is already decoding
            decoded = batch.stats.steps
            wait_until(lambda: batch.stats.steps > decoded, 120, "the batch to decode a step")  # noqa: B023
    assert [r.token_ids for r in results(streams)] == expected


@pytest.mark.parametrize("compiled", ["0", "1"])
@pytest.mark.parametrize("variant", ["2b", "7b"])
def test_batched_captured_steps_give_single_sequence_tokens(tiny_dirs, monkeypatch, variant, compiled):
    monkeypatch.setenv("TUTOR_COMPILE", compiled)
    model = load(tiny_dirs[variant], device="cuda", dtype="float32")
    batch = BatchScheduler(model, slots=8, prefill_tokens=48)
    try:
        batch.warm_up()
        assert batch.step.path == ("captured+compiled" if compiled == "1" else "captured")
        run_mixed(model, batch)
        assert batch.step.path == ("captured+compiled" if compiled == "1" else "captured")  # no fallback
    finally:
        batch.close()


def test_without_the_kernels_the_gathered_attention_agrees(tiny_dirs, monkeypatch):
    monkeypatch.setenv("TUTOR_DECODE_KERNEL", "0")
    model = load(tiny_dirs["2b"], device="cuda", dtype="float32")
    assert model.model.model.layers[0].self_attn.decode_kernel is None
    batch = BatchScheduler(model, slots=4)
    try:
        run_mixed(model, batch, n=6)
    finally:
        batch.close()


def test_sessions_sampling_and_lone_requests_on_the_gpu(tiny_dirs):
    model = load(tiny_dirs["2b"], device="cuda", dtype="float32")
    batch = BatchScheduler(model, slots=4, max_len=256)
    try:
        base = prompts(model.tokenizer, 3)[2]
        first = batch.generate(base, max_new_tokens=8, stop_token_ids=[], session="e")
        typed = base + first.token_ids[:3]
        again = batch.generate(typed, max_new_tokens=8, stop_token_ids=[], session="e")
        assert again.cached_tokens >= len(base) and again.token_ids == greedy(model, typed, 8)
        seeded = [batch.generate(base, max_new_tokens=10, temperature=1.0, seed=3, stop_token_ids=[]).token_ids
                  for _ in range(2)]
        assert seeded[0] == seeded[1]
        long = batch.generate(base, max_new_tokens=300, stop_token_ids=[])  # past a slot: on its own cache
        assert long.token_ids == greedy(model, base, 300)
    finally:
        batch.close()
