"""The model's hyper-parameters, read from a Hugging Face config.json of either dialect.

transformers has written two dialects over time: older files carry ``rope_theta``,
``hidden_act``/``hidden_activation`` and ``torch_dtype``; newer ones ``rope_parameters`` and
``dtype``. Both describe the same Gemma-1 architecture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .names import IT_NAME

_DTYPES = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}

# Activation names that mean "GELU" in some form. Gemma is always the tanh approximation: the
# released codegemma-2b says "gelu", which some transformers versions ran as exact GELU by mistake.
_GELU_NAMES = {"gelu", "gelu_pytorch_tanh", "gelu_new", "gelu_fast", "gelu_tanh", "gelu_python"}

# What each size may be, checked before anything is built from it: a config.json that asks for a
# million layers or a two-billion-token context is refused here, not after gigabytes are allocated.
# CodeGemma's own values (2B / 7B) sit far inside: 256000, 2048/3072, 16384/24576, 18/28, 8/16, 256, 8192.
RANGES: dict[str, tuple[int, int]] = {
    "vocab_size": (1, 1 << 20),
    "hidden_size": (1, 1 << 16),
    "intermediate_size": (1, 1 << 18),
    "num_hidden_layers": (1, 512),
    "num_attention_heads": (1, 1024),
    "num_key_value_heads": (1, 1024),
    "head_dim": (1, 1024),
    "max_position_embeddings": (1, 1 << 16),
}


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int = 8192
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    dtype: torch.dtype = torch.bfloat16
    instruction_tuned: bool = False
    name: str = ""

    @property
    def variant(self) -> str:
        """The CodeGemma family this checkpoint belongs to: "2b", "7b" or "7b-it".

        Decided by attention layout (2B is multi-query, 7B multi-head), so tiny test
        checkpoints shaped like one of them report that family too.
        """
        size = "2b" if self.num_kv_heads == 1 else "7b"
        return f"{size}-it" if self.instruction_tuned else size

    def to_json_dict(self, dialect: str = "old") -> dict[str, Any]:
        """The config.json that transformers would write for this model ("old" or "new" dialect)."""
        dtype_name = next(k for k, v in _DTYPES.items() if v == self.dtype)
        data: dict[str, Any] = {
            "architectures": ["GemmaForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 2,
            "eos_token_id": 1,
            "head_dim": self.head_dim,
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "model_type": "gemma",
            "num_attention_heads": self.num_heads,
            "num_hidden_layers": self.num_layers,
            "num_key_value_heads": self.num_kv_heads,
            "pad_token_id": 0,
            "rms_norm_eps": self.rms_norm_eps,
            "use_cache": True,
            "vocab_size": self.vocab_size,
        }
        if self.name:
            data["_name_or_path"] = self.name
        if dialect == "old":
            data.update(hidden_act="gelu", rope_theta=self.rope_theta, torch_dtype=dtype_name,
                        rope_scaling=None, transformers_version="4.38.0")
        elif dialect == "new":
            data.update(hidden_act="gelu_pytorch_tanh", dtype=dtype_name,
                        rope_parameters={"rope_theta": self.rope_theta, "rope_type": "default"},
                        tie_word_embeddings=True, transformers_version="5.0.0")
        else:
            raise ValueError(f"unknown config.json dialect {dialect!r}: use 'old' or 'new'")
        return data


def read_config(path: Path, *, folder_name: str = "") -> ModelConfig:
    """Parse config.json at ``path``; ``folder_name`` helps tell instruction-tuned checkpoints apart."""
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no config.json in the model folder. Copy the whole checkpoint folder "
            "(config.json, *.safetensors, tokenizer.model), not only the weights."
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc}); re-download config.json.") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object; re-download config.json.")
    return parse_config(raw, source=str(path), folder_name=folder_name)


def parse_config(raw: dict[str, Any], *, source: str = "config.json", folder_name: str = "") -> ModelConfig:
    model_type = raw.get("model_type")
    archs = raw.get("architectures") or []
    if model_type != "gemma" or (archs and "GemmaForCausalLM" not in archs):
        found = model_type or (archs[0] if archs else "unknown")
        raise CheckpointError(
            f"{source}: this is a {found!r} model, not CodeGemma (model_type 'gemma', "
            "GemmaForCausalLM). Point the tutor at a codegemma-2b, codegemma-7b or "
            "codegemma-7b-it folder."
        )

    def need(key: str, default: int | None = None) -> int:
        value = raw.get(key)
        value = default if value is None else value
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise CheckpointError(f"{source}: {key!r} must be a positive integer, found {value!r}.")
        low, high = RANGES[key]
        if not low <= value <= high:
            raise CheckpointError(f"{source}: {key!r} is {value}, outside what a CodeGemma-shaped model has "
                                  f"({low} to {high}); this config.json is damaged or not CodeGemma's.")
        return value

    def real(key: str, default: float, low: float, high: float) -> float:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
            raise CheckpointError(f"{source}: {key!r} must be a number between {low:g} and {high:g}, "
                                  f"found {value!r}.")
        return float(value)

    act = raw.get("hidden_activation") or raw.get("hidden_act") or "gelu_pytorch_tanh"
    if act not in _GELU_NAMES:
        raise CheckpointError(
            f"{source}: activation {act!r} is not GELU; Gemma models use GELU (tanh form). "
            "This folder does not hold a CodeGemma checkpoint."
        )

    rope = raw.get("rope_parameters") or {}
    if not isinstance(rope, dict):
        raise CheckpointError(f"{source}: 'rope_parameters' must be an object, found {rope!r}.")
    rope_theta = rope.get("rope_theta", raw.get("rope_theta", 10000.0))
    if (rope.get("rope_type") or "default") != "default" or raw.get("rope_scaling"):
        raise CheckpointError(f"{source}: rope scaling is not part of CodeGemma; remove it from config.json.")

    dtype_name = raw.get("dtype") or raw.get("torch_dtype") or "bfloat16"
    if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
        raise CheckpointError(f"{source}: unsupported dtype {dtype_name!r} ('torch_dtype' or 'dtype'); "
                              f"expected one of {sorted(_DTYPES)}.")

    num_heads = need("num_attention_heads")
    num_kv_heads = need("num_key_value_heads", num_heads)
    if num_heads % num_kv_heads:
        raise CheckpointError(
            f"{source}: num_key_value_heads={num_kv_heads!r} must divide num_attention_heads={num_heads}."
        )

    name = str(raw.get("_name_or_path") or "")
    return ModelConfig(
        vocab_size=need("vocab_size"),
        hidden_size=need("hidden_size"),
        intermediate_size=need("intermediate_size"),
        num_layers=need("num_hidden_layers"),
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        # Gemma's head_dim is its own number (256), never hidden_size / heads.
        head_dim=need("head_dim", max(1, need("hidden_size") // num_heads)),
        max_position_embeddings=need("max_position_embeddings", 8192),
        rms_norm_eps=real("rms_norm_eps", 1e-6, 0.0, 1.0),
        rope_theta=_rope_theta(rope_theta, source),
        dtype=_DTYPES[dtype_name],
        instruction_tuned=bool(IT_NAME.search(name) or IT_NAME.search(folder_name)),
        name=name,
    )


def _rope_theta(value: Any, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1.0 <= value <= 1e12:
        raise CheckpointError(f"{source}: 'rope_theta' must be a number from 1 to 1e12 (CodeGemma: 10000), "
                              f"found {value!r}.")
    return float(value)


def dtype_from_name(name: str | torch.dtype | None) -> torch.dtype | None:
    if name is None or isinstance(name, torch.dtype):
        return name
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    key = aliases.get(name, name)
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}: use one of bfloat16, float16, float32")
    return _DTYPES[key]
