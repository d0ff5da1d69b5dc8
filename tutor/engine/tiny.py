"""Tiny CodeGemma checkpoints in exactly the released layout, for tests and demos.

The real weights cannot be downloaded here, so the loading code is exercised on folders made by
this module: config.json (either dialect), model.safetensors or shards with an index,
generation_config.json, and a small SentencePiece tokenizer trained on the fly with every
CodeGemma special piece. The weights are random; the same code writes random checkpoints at the
real 2B and 7B shapes for benchmarks.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import sentencepiece as spm
import torch
from safetensors.torch import save_file

from .checkpoint import INDEX_NAME, SINGLE_NAME, expected_shapes
from .config import ModelConfig
from .tokenizer import BOS, EOS, PAD, SPECIAL_PIECES, UNK, Tokenizer

# Shapes that keep what matters about each family: multi-query (2B) or multi-head (7B) attention,
# and a head_dim that is not hidden_size / heads.
TINY = {
    "2b": ModelConfig(vocab_size=0, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
                      num_kv_heads=1, head_dim=32, max_position_embeddings=2048),
    "7b": ModelConfig(vocab_size=0, hidden_size=48, intermediate_size=96, num_layers=2, num_heads=4,
                      num_kv_heads=4, head_dim=32, max_position_embeddings=2048),
}
REAL = {
    "2b": ModelConfig(vocab_size=256000, hidden_size=2048, intermediate_size=16384, num_layers=18,
                      num_heads=8, num_kv_heads=1, head_dim=256),
    "7b": ModelConfig(vocab_size=256000, hidden_size=3072, intermediate_size=24576, num_layers=28,
                      num_heads=16, num_kv_heads=16, head_dim=256),
}
VARIANTS = ("2b", "7b", "7b-it")


def _corpus() -> Iterator[str]:
    """A small, fixed corpus of code and prose, so the trained tokenizer is the same everywhere."""
    names = ["total", "count", "items", "value", "result", "index", "name", "numbers", "text", "data"]
    ops = ["+", "-", "*", "//", "%", "==", "!=", "<", ">=", "and", "or"]
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            op = ops[(i + j) % len(ops)]
            yield f"def compute_{a}_{b}({a}, {b}):\n    return {a} {op} {b}\n"
            yield f"for {a} in range(len({b})):\n    if {a} {op} {i}:\n        print({a}, {b}[{a}])\n"
            yield f"{a} = [{b} * {j} for {b} in {names[(i + 1) % len(names)]} if {b}]\n"
            yield f"class {a.title()}{b.title()}:\n    def __init__(self, {a}):\n        self.{a} = {a}\n"
    prose = [
        "Explain what this code does, step by step.",
        "The function returns the sum of the numbers in the list.",
        "A syntax error means Python could not read the code.",
        "Use a loop to visit every item, then return the result.",
        "import numpy as np\nimport pandas as pd\nfrom collections import defaultdict\n",
        "while True:\n    line = input()\n    if not line:\n        break\n",
        "try:\n    value = int(text)\nexcept ValueError as error:\n    print(error)\n",
        "public static void main(String[] args) { System.out.println(\"hi\"); }",
        "fn main() { let x: i32 = 5; println!(\"{}\", x); }",
    ]
    for _ in range(20):
        yield from prose


def train_tokenizer(special_kind: str = "user_defined", vocab_size: int = 1000, *, pad_to: int | None = None) -> bytes:
    """A SentencePiece model with CodeGemma's normalisation and special pieces, as bytes.

    ``special_kind`` chooses how the FIM and turn pieces are stored: "user_defined" (matched in
    raw text by SentencePiece, the riskier case) or "control" (never produced from text).
    Like Gemma: BPE, byte fallback, no dummy prefix, whitespace kept as is, digits split.
    ``pad_to`` adds filler pieces ("w0", "w1", ...) up to that many pieces in all, for random
    checkpoints at the real shapes: every id such a model samples then decodes to some text.
    """
    if special_kind not in ("user_defined", "control"):
        raise ValueError("special_kind must be 'user_defined' or 'control'")
    extra = [p for p in SPECIAL_PIECES if p not in (PAD, EOS, BOS, UNK)]
    fillers = []
    if pad_to is not None:
        fillers = [f"w{i}" for i in range(pad_to - vocab_size)]
        vocab_size = pad_to
    symbols = {"user_defined_symbols": fillers, "control_symbols": []}
    symbols[f"{special_kind}_symbols"] = extra + symbols[f"{special_kind}_symbols"]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_corpus(),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        normalization_rule_name="identity",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece=PAD, eos_piece=EOS, bos_piece=BOS, unk_piece=UNK,
        num_threads=1,
        minloglevel=2,
        **symbols,
    )
    return model.getvalue()


def random_state(config: ModelConfig, *, seed: int = 0, std: float = 0.02, norm_std: float = 0.1,
                 embed_std: float | None = None, dtype: torch.dtype = torch.bfloat16
                 ) -> Iterator[tuple[str, torch.Tensor]]:
    """Random weights for every tensor of ``config``, norms included (they are offsets from 1).

    ``embed_std`` (default ``std``) sets the embedding's own: with std 0.02 at the real shapes the
    scaled input embedding outweighs what the layers add, and greedy decoding repeats the last
    token for ever (after a FIM prompt: <|fim_middle|>, a stop token, so nothing is generated).
    """
    gen = torch.Generator().manual_seed(seed)
    for name, shape in expected_shapes(config).items():
        scale = norm_std if name.endswith("norm.weight") else std
        if name.endswith("embed_tokens.weight") and embed_std is not None:
            scale = embed_std
        yield name, (torch.randn(shape, generator=gen) * scale).to(dtype)


def write_checkpoint(folder: str | Path, config: ModelConfig, tokenizer_model: bytes, *, seed: int = 0,
                     std: float = 0.02, norm_std: float = 0.1, embed_std: float | None = None, shards: int = 1,
                     dialect: str = "old") -> Path:
    """Write a checkpoint folder for ``config`` with random weights in the Hugging Face layout."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(tokenizer_model)
    tok = Tokenizer(folder / "tokenizer.model")
    (folder / "config.json").write_text(json.dumps(config.to_json_dict(dialect), indent=2) + "\n")
    (folder / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id, "pad_token_id": tok.pad_id}, indent=2) + "\n")

    shapes = expected_shapes(config)
    total_elems = sum(torch.Size(s).numel() for s in shapes.values())
    per_shard = -(-total_elems // shards)
    weight_map: dict[str, str] = {}
    shard: dict[str, torch.Tensor] = {}
    filled, number, total_bytes = 0, 1, 0

    def flush() -> None:
        nonlocal shard, number
        name = SINGLE_NAME if shards == 1 else f"model-{number:05d}-of-{shards:05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
        shard, number = {}, number + 1

    for name, tensor in random_state(config, seed=seed, std=std, norm_std=norm_std, embed_std=embed_std,
                                     dtype=config.dtype):
        shard[name] = tensor
        filled += tensor.numel()
        total_bytes += tensor.numel() * tensor.element_size()
        if shards > 1 and filled >= per_shard * number and number < shards:
            flush()
    flush()
    if shards > 1:
        index = {"metadata": {"total_size": total_bytes}, "weight_map": weight_map}
        (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return folder


def make_tiny(folder: str | Path, variant: str = "2b", *, seed: int = 0, shards: int = 1, dialect: str = "old",
              special_kind: str = "user_defined", dtype: torch.dtype = torch.bfloat16) -> Path:
    """A tiny checkpoint shaped like ``variant`` ("2b", "7b" or "7b-it"); returns its folder."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")
    tokenizer_model = train_tokenizer(special_kind)
    vocab = spm.SentencePieceProcessor(model_proto=tokenizer_model).GetPieceSize()
    config = replace(TINY[variant.removesuffix("-it")], vocab_size=vocab, dtype=dtype,
                     name=f"tutor/tiny-codegemma-{variant}", instruction_tuned=variant.endswith("-it"))
    # Larger weights than a trained model's give peaked, well-separated logits, so greedy
    # decoding is decided by the model and not by rounding.
    return write_checkpoint(folder, config, tokenizer_model, seed=seed, std=0.5, norm_std=0.5,
                            shards=shards, dialect=dialect)
