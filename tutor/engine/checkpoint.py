"""Finding a checkpoint folder and reading its safetensors, checked before anything is built.

Everything that can be wrong with a folder is found by :func:`inspect_checkpoint` from the
headers alone (config, tokenizer, index, tensor names, shapes and dtypes), so a bad folder never
leaves a half-built model behind. Weights are then read through safetensors' memory map, one
tensor at a time, so loading needs about the model's size in memory, not twice that.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .config import ModelConfig, read_config
from .errors import CheckpointError

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
ALLOWED_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
# Tensors some exporters add that the model does not need: the tied output head, rotary caches.
IGNORED_TENSORS = ("lm_head.weight",)
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a Gemma checkpoint holds, with its shape. The output head is tied: none."""
    h, q, kv, ff = config.hidden_size, config.num_heads * config.head_dim, \
        config.num_kv_heads * config.head_dim, config.intermediate_size
    shapes = {"model.embed_tokens.weight": (config.vocab_size, h), "model.norm.weight": (h,)}
    for i in range(config.num_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (q, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, q),
            p + "mlp.gate_proj.weight": (ff, h),
            p + "mlp.up_proj.weight": (ff, h),
            p + "mlp.down_proj.weight": (h, ff),
        })
    return shapes


@dataclass(frozen=True)
class Checkpoint:
    """A checked model folder: its config, tokenizer path, and which file holds each tensor."""

    folder: Path
    config: ModelConfig
    tokenizer_path: Path
    tensor_files: dict[str, Path]
    tensor_bytes: int = 0  # of the tensors the model reads, as stored (from the headers): a load's total

    @property
    def files(self) -> list[Path]:
        return sorted(set(self.tensor_files.values()))

    def weight_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


# --------------------------------------------------------------------------- finding the folder

def hub_cache_dir() -> Path:
    """The local Hugging Face hub cache, honouring HF_HUB_CACHE and HF_HOME like huggingface_hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return Path(hf_home).expanduser() / "hub"


def resolve_source(source: str | os.PathLike[str]) -> Path:
    """The folder for ``source``: a path, or a hub name looked up in the local cache only."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        raise CheckpointError(
            f"{path}: is a file; pass the folder that holds config.json, the .safetensors "
            "files and tokenizer.model."
        )
    name = str(source)
    if name.count("/") > 1 or name.startswith((".", "/", "~")) or not name:
        raise CheckpointError(f"{name}: no such folder. Check the path to the model folder.")
    repo = name if "/" in name else f"google/{name}"
    cache = hub_cache_dir()
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snapshot = _snapshot(repo_dir)
    if snapshot is None:
        raise CheckpointError(
            f"{name}: not a folder, and {repo} is not in the local Hugging Face cache ({cache}). "
            "Nothing is downloaded at run time: download the model once "
            f"(e.g. `huggingface-cli download {repo}`, after accepting its licence) "
            "or pass the path of a folder that holds it."
        )
    return snapshot


def _snapshot(repo_dir: Path) -> Path | None:
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text().strip()
        if candidate.is_dir():
            return candidate
    found = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


# --------------------------------------------------------------------------- checking it

def inspect_checkpoint(folder: Path) -> Checkpoint:
    """Check ``folder`` completely from headers alone; raise CheckpointError on the first problem."""
    folder_name = folder.name
    if folder.parent.name == "snapshots":  # a hub cache snapshot: the repo name says more
        folder_name = folder.parent.parent.name
    config = read_config(folder / "config.json", folder_name=folder_name)
    tokenizer_path = folder / "tokenizer.model"
    if not tokenizer_path.is_file():
        raise CheckpointError(
            f"{tokenizer_path}: missing. Copy tokenizer.model from the CodeGemma release into "
            "this folder (it is in every codegemma repository)."
        )
    files = _weight_files(folder)
    tensor_files, tensor_bytes = _check_tensors(config, files)
    return Checkpoint(folder=folder, config=config, tokenizer_path=tokenizer_path, tensor_files=tensor_files,
                      tensor_bytes=tensor_bytes)


def _weight_files(folder: Path) -> list[Path]:
    index = folder / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{index}: not a valid safetensors index ({exc}); re-download it.") from exc
        for name in names:
            _check_shard_name(index, name)
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CheckpointError(
                f"{index}: names shard {missing[0]}, which is not in {folder}. The download is "
                f"incomplete: fetch the missing shard{'s' if len(missing) > 1 else ''} "
                f"({', '.join(missing)})."
            )
        return [folder / n for n in names]
    if (folder / SINGLE_NAME).is_file():
        return [folder / SINGLE_NAME]
    loose = sorted(folder.glob("*.safetensors"))
    if loose:
        return loose
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f"{folder / pickles[0]}: pickle checkpoints are refused, because loading one can run "
            "arbitrary code. Use the .safetensors files of the official release, or convert on a "
            "machine you trust: python -c \"from transformers import AutoModelForCausalLM as M; "
            f"M.from_pretrained('{folder}').save_pretrained('OUT', safe_serialization=True)\""
        )
    raise CheckpointError(
        f"{folder}: no weights (no model.safetensors, no {INDEX_NAME}). Copy the .safetensors "
        "files of the checkpoint into this folder."
    )


def _check_shard_name(index: Path, name: object) -> None:
    """A shard is a plain file name in the folder: never a path that leads out of it (``../x``, ``/etc/x``)."""
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name
            or "\0" in name or os.path.isabs(name) or Path(name).name != name):
        raise CheckpointError(
            f"{index}: the shard name {name!r} is not a plain file name in the model folder; an index may only "
            "name files beside it (model-00001-of-00002.safetensors). Re-download the checkpoint from its "
            "official source.")


def _check_tensors(config: ModelConfig, files: list[Path]) -> tuple[dict[str, Path], int]:
    """Which file holds each expected tensor, and their bytes as stored."""
    expected = expected_shapes(config)
    where: dict[str, Path] = {}
    size = 0
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():
                    if name in IGNORED_TENSORS or name.endswith(IGNORED_SUFFIXES):
                        continue
                    if name not in expected:
                        raise CheckpointError(
                            f"{file}: unexpected tensor {name!r}; this is not a Gemma checkpoint "
                            f"with the sizes in config.json ({config.num_layers} layers). "
                            "Check that config.json belongs to these weights."
                        )
                    view = f.get_slice(name)
                    shape, dtype = tuple(view.get_shape()), view.get_dtype()
                    if shape != expected[name]:
                        raise CheckpointError(
                            f"{file}: tensor {name} has shape {list(shape)}, but config.json implies "
                            f"{list(expected[name])}. The weights and config.json come from different "
                            "models: use the config.json of this checkpoint."
                        )
                    if dtype not in ALLOWED_DTYPES:
                        raise CheckpointError(
                            f"{file}: tensor {name} is stored as {dtype}; CodeGemma weights are "
                            "BF16 (F16 and F32 also load). Quantized or integer exports are not "
                            "supported: use the official release."
                        )
                    where[name] = file
                    size += torch.Size(shape).numel() * ALLOWED_DTYPES[dtype].itemsize
        except SafetensorError as exc:
            raise CheckpointError(
                f"{file}: not a readable safetensors file ({exc}). It is probably truncated or "
                "corrupt: download it again and compare its size with the original."
            ) from exc
        except OSError as exc:
            raise CheckpointError(f"{file}: cannot be read ({exc}).") from exc
    missing = [n for n in expected if n not in where]
    if missing:
        raise CheckpointError(
            f"{files[0].parent}: tensor {missing[0]} is missing"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}. "
            "The checkpoint is incomplete or belongs to another config.json: download it again."
        )
    return where, size


# --------------------------------------------------------------------------- reading tensors

def iter_tensors(checkpoint: Checkpoint) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every expected tensor, memory-mapped, one file open at a time."""
    by_file: dict[Path, list[str]] = {}
    for name, file in checkpoint.tensor_files.items():
        by_file.setdefault(file, []).append(name)
    for file, names in by_file.items():
        try:
            with safe_open(str(file), framework="pt") as f:
                for name in names:
                    yield name, f.get_tensor(name)
        except SafetensorError as exc:
            raise CheckpointError(f"{file}: failed while reading ({exc}); download it again.") from exc
