"""A CodeGemma checkpoint folder (Hugging Face layout) written as GGUF, for llama.cpp.

What llama.cpp's own convert_hf_to_gguf.py does for Gemma (it is in the llama.cpp repository, not
on PyPI), with the `gguf` package's writer: architecture "gemma"; the RMSNorm weights stored as
1 + w (llama.cpp multiplies by the weight itself); the embedding as token_embd (llama.cpp ties the
output head to it when there is no output tensor); the SentencePiece vocabulary as a "llama"
tokenizer with each piece's score and type, <bos> added, no space prefix; the FIM and turn tokens
named; Gemma's chat template. Used by tests/test_llamacpp_server.py (tiny checkpoints) and
benchmarks/bench_llamacpp.py (random ones at the real 2B shape).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import torch

from tutor.engine.checkpoint import inspect_checkpoint, iter_tensors
from tutor.engine.tokenizer import (
    BOS,
    END_OF_TURN,
    EOS,
    FILE_SEPARATOR,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    PAD,
    UNK,
    Tokenizer,
)

# The chat template of Gemma's instruction-tuned releases (tokenizer_config.json), which the
# converter copies into the GGUF: no system role.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

OUTTYPES = {"f32": gguf.GGMLQuantizationType.F32, "bf16": gguf.GGMLQuantizationType.BF16,
            "q8_0": gguf.GGMLQuantizationType.Q8_0}
_FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
               "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
_LAYER = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
          "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
          "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
          "mlp.down_proj": "ffn_down"}


def gguf_name(name: str) -> str:
    """llama.cpp's tensor name for a checkpoint tensor name."""
    if name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if name == "model.norm.weight":
        return "output_norm.weight"
    _, _, layer, rest = name.split(".", 3)  # model.layers.{i}.{rest}
    return f"blk.{layer}.{_LAYER[rest.removesuffix('.weight')]}.weight"


def piece_types(model_proto: bytes) -> list[int]:
    """Each piece's type in a SentencePiece model file (1 normal, 2 unknown, 3 control, 4 user-defined,
    5 unused, 6 byte: GGUF numbers them the same), read from its protobuf without the protobuf package."""

    def varint(buf: bytes, at: int) -> tuple[int, int]:
        value, shift = 0, 0
        while True:
            byte = buf[at]
            value |= (byte & 0x7F) << shift
            at, shift = at + 1, shift + 7
            if not byte & 0x80:
                return value, at

    def fields(buf: bytes):
        at = 0
        while at < len(buf):
            tag, at = varint(buf, at)
            number, wire = tag >> 3, tag & 7
            if wire == 0:
                value, at = varint(buf, at)
            elif wire == 2:
                size, at = varint(buf, at)
                value, at = buf[at:at + size], at + size
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
                value, at = buf[at:at + size], at + size
            else:
                raise ValueError(f"unexpected protobuf wire type {wire}")
            yield number, value

    types = []
    for number, piece in fields(model_proto):
        if number == 1:  # ModelProto.pieces
            types.append(next((v for n, v in fields(piece) if n == 3), 1))  # SentencePiece.type, default NORMAL
    return types


def write_gguf(folder: str | Path, out: str | Path, outtype: str = "f32") -> Path:
    """Write the checkpoint in ``folder`` as the GGUF file ``out`` with weights in ``outtype``
    ("f32", "bf16" or "q8_0"; norms stay float32, as the converter keeps them)."""
    checkpoint = inspect_checkpoint(Path(folder))
    config, out = checkpoint.config, Path(out)
    tokenizer = Tokenizer(checkpoint.tokenizer_path)
    proto = checkpoint.tokenizer_path.read_bytes()
    sp = tokenizer._sp

    writer = gguf.GGUFWriter(str(out), "gemma")
    writer.add_name(Path(folder).name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_heads)
    writer.add_head_count_kv(config.num_kv_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_file_type(_FILE_TYPES[outtype])

    size = sp.GetPieceSize()
    types = piece_types(proto)
    assert len(types) == size, "the tokenizer's protobuf and SentencePiece disagree on the number of pieces"
    tokens = [sp.IdToPiece(i).encode() for i in range(size)]
    scores = [sp.GetScore(i) for i in range(size)]
    pad = config.vocab_size - size  # a model may have more embeddings than pieces
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens + [f"[PAD{i}]".encode() for i in range(size, config.vocab_size)])
    writer.add_token_scores(scores + [-10000.0] * pad)
    writer.add_token_types(types + [int(gguf.TokenType.UNUSED)] * pad)
    special = tokenizer.special
    writer.add_bos_token_id(special[BOS])
    writer.add_eos_token_id(special[EOS])
    writer.add_unk_token_id(special[UNK])
    writer.add_pad_token_id(special[PAD])
    writer.add_eot_token_id(special[END_OF_TURN])
    for key, piece in ((gguf.Keys.Tokenizer.FIM_PRE_ID, FIM_PREFIX), (gguf.Keys.Tokenizer.FIM_SUF_ID, FIM_SUFFIX),
                       (gguf.Keys.Tokenizer.FIM_MID_ID, FIM_MIDDLE), (gguf.Keys.Tokenizer.FIM_SEP_ID, FILE_SEPARATOR)):
        writer.add_uint32(key, special[piece])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    if config.instruction_tuned:
        writer.add_chat_template(GEMMA_CHAT_TEMPLATE)

    for name, tensor in iter_tensors(checkpoint):
        if name.endswith("norm.weight"):
            writer.add_tensor(gguf_name(name), (tensor.float() + 1.0).numpy())
        elif outtype == "bf16":
            data = tensor.to(torch.bfloat16).contiguous().view(torch.int16).numpy()  # no copy if already bf16
            writer.add_tensor(gguf_name(name), data, raw_shape=data.shape, raw_dtype=OUTTYPES["bf16"])
        elif outtype == "q8_0":
            data = gguf.quants.quantize(tensor.float().numpy(), OUTTYPES["q8_0"])
            writer.add_tensor(gguf_name(name), data, raw_dtype=OUTTYPES["q8_0"])
        else:
            writer.add_tensor(gguf_name(name), np.ascontiguousarray(tensor.float().numpy()))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
