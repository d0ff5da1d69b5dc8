"""The CodeGemma inference engine: torch + safetensors + sentencepiece, no transformers.

    from tutor.engine import load
    model = load("path/to/codegemma-2b")            # or "google/codegemma-2b" from the local HF cache
    ids = model.tokenizer.encode("def add(a, b):")
    print(model.generate([model.tokenizer.bos_id, *ids], max_new_tokens=32).text)

The names below are imported on first use (PEP 562), not with the package: the torch-free modules
(errors, names, tokenizer, generation's streams) are what the backends and the Jupyter surfaces need
when the model runs on a shared server, and importing this package must not import torch for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module (in this package) that defines it
_EXPORTS = {
    "Checkpoint": "checkpoint", "hub_cache_dir": "checkpoint", "inspect_checkpoint": "checkpoint",
    "resolve_source": "checkpoint",
    "CodeGemma": "codegemma", "default_device": "codegemma", "load": "codegemma",
    "ModelConfig": "config",
    "CheckpointError": "errors", "PromptError": "errors", "SettingError": "errors", "TokenizerError": "errors",
    "TutorError": "errors",
    "GenerationResult": "generation", "GenerationStream": "generation", "SamplingParams": "generation",
    "CompletionSession": "session",
    "StreamDecoder": "tokenizer", "Tokenizer": "tokenizer",
}

if TYPE_CHECKING:
    from .checkpoint import Checkpoint, hub_cache_dir, inspect_checkpoint, resolve_source
    from .codegemma import CodeGemma, default_device, load
    from .config import ModelConfig
    from .errors import CheckpointError, PromptError, SettingError, TokenizerError, TutorError
    from .generation import GenerationResult, GenerationStream, SamplingParams
    from .session import CompletionSession
    from .tokenizer import StreamDecoder, Tokenizer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:  # not ours: `from tutor.engine import quant` then imports the submodule
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CodeGemma",
    "CompletionSession",
    "GenerationResult",
    "GenerationStream",
    "ModelConfig",
    "PromptError",
    "SamplingParams",
    "SettingError",
    "StreamDecoder",
    "Tokenizer",
    "TokenizerError",
    "TutorError",
    "default_device",
    "hub_cache_dir",
    "inspect_checkpoint",
    "load",
    "resolve_source",
]
