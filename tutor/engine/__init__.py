"""The CodeGemma inference engine: torch + safetensors + sentencepiece, no transformers.

    from tutor.engine import load
    model = load("path/to/codegemma-2b")            # or "google/codegemma-2b" from the local HF cache
    ids = model.tokenizer.encode("def add(a, b):")
    print(model.generate([model.tokenizer.bos_id, *ids], max_new_tokens=32).text)
"""

from .checkpoint import Checkpoint, hub_cache_dir, inspect_checkpoint, resolve_source
from .codegemma import CodeGemma, default_device, load
from .config import ModelConfig
from .errors import CheckpointError, PromptError, SettingError, TokenizerError, TutorError
from .generation import GenerationResult, GenerationStream, SamplingParams
from .session import CompletionSession
from .tokenizer import StreamDecoder, Tokenizer

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
