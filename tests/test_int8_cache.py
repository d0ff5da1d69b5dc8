"""The int8 weights are cached on disk after the first load, keyed by the checkpoint files' identity."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from tutor.engine import load, quant


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(quant, "CACHE_MIN_BYTES", 0)  # tiny checkpoints are not cached otherwise
    return tmp_path / "cache" / "tutor" / "int8"


def _no_quantizing(*_):
    raise AssertionError("quantized again although the cache was valid")


def test_the_second_load_reads_the_cache_and_gives_the_same_model(tiny_2b_dir, cache_home, monkeypatch):
    first = load(tiny_2b_dir, device="cpu", dtype="bfloat16", quantize="int8")
    cached = list(cache_home.glob("*.safetensors"))
    assert len(cached) == 1
    monkeypatch.setattr("tutor.engine.codegemma.quantize_int8", _no_quantizing)
    second = load(tiny_2b_dir, device="cpu", dtype="bfloat16", quantize="int8")
    for (name, a), (_, b) in zip(first.model.state_dict().items(), second.model.state_dict().items(), strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), name
    ids = first.tokenizer.encode("for item in items:\n")
    assert first.generate(ids, max_new_tokens=8, stop_token_ids=[]).token_ids == \
        second.generate(ids, max_new_tokens=8, stop_token_ids=[]).token_ids


def test_a_changed_checkpoint_is_quantized_again_and_replaces_the_old_cache(tmp_path, tiny_2b_dir, cache_home,
                                                                            monkeypatch):
    folder = tmp_path / "codegemma-2b"
    shutil.copytree(tiny_2b_dir, folder)
    load(folder, device="cpu", dtype="bfloat16", quantize="int8")
    (old,) = cache_home.glob("*.safetensors")
    weights = folder / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten: same size, newer
    calls = []
    real = quant.quantize_int8
    monkeypatch.setattr("tutor.engine.codegemma.quantize_int8", lambda w: calls.append(1) or real(w))
    load(folder, device="cpu", dtype="bfloat16", quantize="int8")
    assert calls  # not the stale cache
    (new,) = cache_home.glob("*.safetensors")  # and the stale one is gone
    assert new != old


def test_a_broken_cache_is_ignored_and_rewritten(tiny_2b_dir, cache_home):
    load(tiny_2b_dir, device="cpu", dtype="bfloat16", quantize="int8")
    (path,) = cache_home.glob("*.safetensors")
    path.write_bytes(b"not a safetensors file")
    model = load(tiny_2b_dir, device="cpu", dtype="bfloat16", quantize="int8")
    assert model.generate(model.tokenizer.encode("x = "), max_new_tokens=2).finish_reason in ("stop", "length")
    assert path.stat().st_size > 1000  # written again


def test_small_checkpoints_are_not_cached(tiny_2b_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    load(tiny_2b_dir, device="cpu", dtype="bfloat16", quantize="int8")
    assert not (tmp_path / "cache").exists()


def test_the_cache_can_be_turned_off(tiny_2b_dir, cache_home, monkeypatch):
    monkeypatch.setenv("TUTOR_INT8_CACHE", "0")
    load(tiny_2b_dir, device="cpu", dtype="bfloat16", quantize="int8")
    assert not cache_home.exists()
