"""On a GPU: the captured decode step gives the same tokens as the plain one (skipped without CUDA).

CI has no GPU; these run in the device runs that docs/engine.md quotes.
"""

from __future__ import annotations

import pytest
import torch

from tutor.engine import CompletionSession, load

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

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
