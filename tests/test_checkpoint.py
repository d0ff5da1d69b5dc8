"""Loading real-layout folders, and every kind of bad folder a user could point the tutor at.

Each bad input must raise CheckpointError with one line that names the file and what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from tutor.engine import CheckpointError, inspect_checkpoint, load, resolve_source
from tutor.engine.tiny import make_tiny

IDS = [[2, 40, 41, 42, 43, 44, 45, 46]]


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ layouts that load

def test_sharded_checkpoint_loads_like_the_single_file(tmp_path, tiny_2b):
    folder = make_tiny(tmp_path / "sharded", "2b", shards=3)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 3
    assert index["metadata"]["total_size"] == sum(p.stat().st_size - 8 - struct.unpack(
        "<Q", p.read_bytes()[:8])[0] for p in folder.glob("model-*.safetensors"))
    assert not (folder / "model.safetensors").exists()
    sharded = load(folder, device="cpu", dtype="float32")
    torch.testing.assert_close(sharded.logits(IDS), tiny_2b.logits(IDS), atol=0, rtol=0)


def test_new_config_dialect_loads_the_same_model(tmp_path, tiny_2b):
    folder = make_tiny(tmp_path / "new", "2b", dialect="new")
    raw = json.loads((folder / "config.json").read_text())
    assert "rope_parameters" in raw and "dtype" in raw and "rope_theta" not in raw
    model = load(folder, device="cpu", dtype="float32")
    assert model.config == tiny_2b.config
    torch.testing.assert_close(model.logits(IDS), tiny_2b.logits(IDS), atol=0, rtol=0)


def mapped_ranges(file: os.PathLike[str]) -> list[tuple[int, int]]:
    """The address ranges of this process that map ``file`` (from /proc/self/maps)."""
    inode = os.stat(file).st_ino
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and int(fields[4]) == inode and os.path.samefile(fields[5].strip(), file):
                start, end = (int(a, 16) for a in fields[0].split("-"))
                if ranges and ranges[-1][1] == start:  # one mapping can show as several lines
                    start = ranges.pop()[0]
                ranges.append((start, end))
    return ranges


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads the mappings from Linux's /proc")
def test_tensors_in_the_checkpoint_dtype_are_used_in_place(tiny_2b_dir):
    """bfloat16 on the CPU: parameters are views of the memory-mapped file, not copies. The
    property itself is checked: every parameter's storage lies inside a mapping of the file."""
    file = tiny_2b_dir / "model.safetensors"
    model = load(tiny_2b_dir, device="cpu")
    reference = load_file(str(file))
    for name, param in model.model.state_dict().items():
        torch.testing.assert_close(param, reference[name], atol=0, rtol=0)
    assert model.config.variant == "2b"
    ranges = mapped_ranges(file)
    assert ranges, f"{file} is not memory-mapped by this process"
    copied = []
    for name, param in model.model.named_parameters():
        storage = param.untyped_storage()
        first, last = storage.data_ptr(), storage.data_ptr() + storage.nbytes()
        if not any(start <= first and last <= end for start, end in ranges):
            copied.append(name)
    assert not copied, f"parameters copied out of the memory-mapped file: {copied}"


def test_the_embedding_is_uploaded_transposed_in_blocks():
    """What the GPU load does with the embedding (here on the CPU): the checkpoint's values and
    shape, stored [hidden, vocab] so that transposing it for the GPU layout copies nothing."""
    from tutor.engine.codegemma import _upload_transposed

    weight = torch.randn(10, 4, dtype=torch.bfloat16)
    uploaded = _upload_transposed(weight, torch.device("cpu"), torch.float32, rows=3)
    assert uploaded.shape == (10, 4) and uploaded.dtype == torch.float32
    torch.testing.assert_close(uploaded, weight.float(), atol=0, rtol=0)
    assert uploaded.t().is_contiguous()


def test_lm_head_copy_is_ignored(tiny_copy, tiny_2b):
    weights = load_file(str(tiny_copy / "model.safetensors"))
    weights["lm_head.weight"] = weights["model.embed_tokens.weight"].clone()
    save_file(weights, str(tiny_copy / "model.safetensors"))
    torch.testing.assert_close(load(tiny_copy, device="cpu", dtype="float32").logits(IDS), tiny_2b.logits(IDS))


def test_hub_name_found_in_the_local_cache(tmp_path, tiny_2b_dir, monkeypatch):
    """README's order: HF_HUB_CACHE, else HF_HOME/hub, else the default ~/.cache/huggingface/hub
    (where XDG_CACHE_HOME moves ~/.cache, as for huggingface_hub)."""
    home = tmp_path / "home"
    for env, value, cache in (("HF_HUB_CACHE", tmp_path / "hubcache", tmp_path / "hubcache"),
                              ("HF_HOME", tmp_path / "hfhome", tmp_path / "hfhome" / "hub"),
                              ("XDG_CACHE_HOME", tmp_path / "xdg", tmp_path / "xdg" / "huggingface" / "hub"),
                              ("HOME", home, home / ".cache" / "huggingface" / "hub")):
        repo = cache / "models--google--codegemma-7b-it"
        snap = repo / "snapshots" / "0123abcd"
        shutil.copytree(tiny_2b_dir, snap)
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("0123abcd")
        for name in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))  # the real home's cache is never consulted
        monkeypatch.setenv(env, str(value))
        assert resolve_source("google/codegemma-7b-it") == snap, env
        assert resolve_source("codegemma-7b-it") == snap
        model = load("google/codegemma-7b-it", device="cpu")
        assert model.config.instruction_tuned  # the repo name says -it


def test_hub_name_missing_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache") as exc:
        load("google/codegemma-2b")
    assert "Nothing is downloaded" in one_line(exc)


# ------------------------------------------------------------------ bad folders

def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such folder") as exc:
        load(tmp_path / "nowhere" / "model")
    one_line(exc)


def test_a_file_instead_of_a_folder(tiny_copy):
    with pytest.raises(CheckpointError, match="is a file; pass the folder"):
        load(tiny_copy / "model.safetensors")


def test_missing_config(tiny_copy):
    (tiny_copy / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config.json: no config.json") as exc:
        load(tiny_copy)
    one_line(exc)


def test_broken_config(tiny_copy):
    (tiny_copy / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(tiny_copy)


def test_missing_tokenizer(tiny_copy):
    (tiny_copy / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError, match=r"tokenizer.model: missing") as exc:
        load(tiny_copy)
    one_line(exc)


def test_missing_tensor(tiny_copy):
    weights = load_file(str(tiny_copy / "model.safetensors"))
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, str(tiny_copy / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model.layers.1.mlp.up_proj.weight is missing") as exc:
        load(tiny_copy)
    one_line(exc)


def test_tensor_of_the_wrong_shape(tiny_copy):
    weights = load_file(str(tiny_copy / "model.safetensors"))
    weights["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(64, 64, dtype=torch.bfloat16)
    save_file(weights, str(tiny_copy / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"k_proj.weight has shape \[64, 64\].*\[32, 64\]") as exc:
        load(tiny_copy)
    assert "model.safetensors" in one_line(exc)


def test_tensor_of_the_wrong_dtype(tiny_copy):
    weights = load_file(str(tiny_copy / "model.safetensors"))
    weights["model.norm.weight"] = torch.zeros(64, dtype=torch.int8)
    save_file(weights, str(tiny_copy / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model.norm.weight is stored as I8"):
        load(tiny_copy)


def test_truncated_safetensors(tiny_copy):
    path = tiny_copy / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as exc:
        load(tiny_copy)
    assert str(path) in one_line(exc)


def test_corrupt_safetensors_header(tiny_copy):
    path = tiny_copy / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:20] = b"\x00garbage!!\xff\xfe"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load(tiny_copy)


def test_index_naming_a_missing_shard(tmp_path):
    folder = make_tiny(tmp_path / "sharded", "2b", shards=2)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"names shard model-00002-of-00002.safetensors.*incomplete") as exc:
        load(folder)
    one_line(exc)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "consolidated.ckpt"])
def test_pickle_checkpoints_are_refused(tiny_copy, name):
    (tiny_copy / "model.safetensors").unlink()
    (tiny_copy / name).write_bytes(b"\x80\x04pickle that would run code")
    with pytest.raises(CheckpointError, match=r"pickle checkpoints are refused.*safe_serialization=True") as exc:
        load(tiny_copy)
    assert name in one_line(exc)


def test_no_weights_at_all(tiny_copy):
    (tiny_copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load(tiny_copy)


@pytest.mark.parametrize("model_type,arch", [("llama", "LlamaForCausalLM"), ("gemma2", "Gemma2ForCausalLM")])
def test_a_folder_that_is_not_codegemma(tiny_copy, model_type, arch):
    raw = json.loads((tiny_copy / "config.json").read_text())
    raw.update(model_type=model_type, architectures=[arch])
    (tiny_copy / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=rf"'{model_type}' model, not CodeGemma") as exc:
        load(tiny_copy)
    one_line(exc)


def test_config_that_does_not_match_the_weights(tiny_copy):
    raw = json.loads((tiny_copy / "config.json").read_text())
    raw["num_hidden_layers"] = 1
    (tiny_copy / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"unexpected tensor 'model.layers.1"):
        load(tiny_copy)


def test_tokenizer_from_another_model(tiny_copy):
    raw = json.loads((tiny_copy / "config.json").read_text())
    raw["vocab_size"] = 500
    (tiny_copy / "config.json").write_text(json.dumps(raw))
    weights = load_file(str(tiny_copy / "model.safetensors"))
    weights["model.embed_tokens.weight"] = weights["model.embed_tokens.weight"][:500].clone()
    save_file(weights, str(tiny_copy / "model.safetensors"))
    with pytest.raises(CheckpointError, match="belongs to another model"):
        load(tiny_copy)


def test_inspection_reads_headers_only(tiny_copy):
    """The whole folder is checked before weights are read: the checkpoint lists every file."""
    checkpoint = inspect_checkpoint(tiny_copy)
    assert checkpoint.files == [tiny_copy / "model.safetensors"]
    assert checkpoint.weight_bytes() == os.path.getsize(tiny_copy / "model.safetensors")
    assert len(checkpoint.tensor_files) == 2 + 9 * checkpoint.config.num_layers


def test_cuda_requested_without_a_gpu(tiny_2b_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(CheckpointError, match="no GPU"):
        load(tiny_2b_dir, device="cuda")


# ------------------------------------------------------------------ hostile folders (issue 14)

@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "sub/model.safetensors", "..", "",
                                   "..\\model.safetensors"])
def test_an_index_may_name_only_files_beside_it(tmp_path, shard):
    folder = make_tiny(tmp_path / "sharded", "2b", shards=2)
    (tmp_path / "outside.safetensors").write_bytes(b"never opened")
    (folder / "sub").mkdir()
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = shard
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="not a plain file name in the model folder") as exc:
        inspect_checkpoint(folder)
    assert repr(shard) in one_line(exc)


@pytest.mark.parametrize("key,value", [
    ("num_hidden_layers", 10**6), ("max_position_embeddings", 2 * 10**9), ("vocab_size", 10**9),
    ("hidden_size", 10**7), ("intermediate_size", 10**8), ("num_attention_heads", 10**5),
    ("num_key_value_heads", 10**5), ("head_dim", 10**5), ("head_dim", "256"), ("max_position_embeddings", 8192.5),
    ("rms_norm_eps", "tiny"), ("rms_norm_eps", 5), ("rope_theta", -1), ("rope_theta", float("inf")),
    ("torch_dtype", ["bfloat16"]),
])
def test_every_config_value_is_checked_before_anything_is_built(tiny_copy, key, value):
    raw = json.loads((tiny_copy / "config.json").read_text())
    raw[key] = value
    (tiny_copy / "config.json").write_text(json.dumps(raw))
    started = time.monotonic()
    with pytest.raises(CheckpointError) as exc:
        inspect_checkpoint(tiny_copy)
    assert time.monotonic() - started < 2  # refused from the number, not after building a million layers
    message = one_line(exc)
    assert repr(key) in message or key in message
