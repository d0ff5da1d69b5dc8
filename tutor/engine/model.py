"""The Gemma-1 transformer that CodeGemma uses, with a preallocated KV cache.

Two entry points share the weights:
- :meth:`Transformer.prefill` runs a block of new tokens (the prompt, or the part of it that is
  not cached yet) and writes their keys and values into the cache;
- :meth:`Transformer.decode_step` runs one token per sequence against the whole fixed-size cache
  with a mask, so every step has the same shapes and can be captured in a CUDA graph.
Numerics follow the reference: RMSNorm in float32 with (1 + w), the embedding scaled by
sqrt(hidden) cast to the activation dtype, GELU in its tanh form, rotary cos/sin computed in
float32 and cast to the activation dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))  # stored as the offset from 1
        self.register_buffer("scale", None, persistent=False)  # 1 + weight in float32, set by prepare()

    def prepare(self) -> None:
        """Precompute the float32 scale once the weights are loaded (saves two kernels per call)."""
        self.scale = 1.0 + self.weight.detach().float()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.scale if self.scale is not None else 1.0 + self.weight.float()
        return F.rms_norm(x.float(), (x.shape[-1],), weight=scale, eps=self.eps).type_as(x)


class KVCache:
    """Keys and values, one [batch, kv_heads, max_len, head_dim] tensor per layer, allocated once.

    One tensor per layer (not one for all layers): a compiled step then writes each layer's new
    entry in place; slices of one shared tensor made torch.compile copy the whole cache per step.
    """

    def __init__(self, config: ModelConfig, batch: int, max_len: int, dtype: torch.dtype, device: torch.device,
                 zeroed: bool = True):
        # zeroed=False leaves the memory as allocated: on the CPU, pages then count only once written
        # (a cache shared by many sequences, tutor.engine.batching, zeroes each slot on first use).
        shape = (batch, config.num_kv_heads, max_len, config.head_dim)
        new = torch.zeros if zeroed else torch.empty
        self.k = [new(shape, dtype=dtype, device=device) for _ in range(config.num_layers)]
        self.v = [new(shape, dtype=dtype, device=device) for _ in range(config.num_layers)]
        # Slot numbers, compared with positions to build the attention masks (made once, not per token).
        self.slots = torch.arange(max_len, device=device)

    @property
    def batch(self) -> int:
        return self.k[0].shape[0]

    @property
    def max_len(self) -> int:
        return self.k[0].shape[2]

    @property
    def device(self) -> torch.device:
        return self.slots.device

    def slot(self, row: int) -> CacheTensors:
        """One batch row of the cache as a cache of batch 1 (views: writes land in this cache)."""
        return CacheTensors([k[row:row + 1] for k in self.k], [v[row:row + 1] for v in self.v], self.slots)

    def copy_prefix(self, other: KVCache, length: int) -> None:
        """Copy the first ``length`` positions of ``other`` (same model, any max_len) into this cache."""
        for mine, theirs in zip(self.k + self.v, other.k + other.v, strict=True):
            mine[:, :, :length].copy_(theirs[:, :, :length])


class CacheTensors(NamedTuple):
    """What the model reads of a cache; a compiled step is given these instead of the KVCache."""

    k: list[Tensor]
    v: list[Tensor]
    slots: Tensor


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = config.num_heads, config.num_kv_heads, config.head_dim
        h = config.hidden_size
        self.q_proj = nn.Linear(h, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(h, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(h, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, h, bias=False)
        self.qkv_proj: nn.Linear | None = None  # q, k and v in one matrix, after fuse()
        # One token's attention over the cache on a GPU (tutor.engine.decode_attention), once
        # Transformer.use_decode_kernel() has set it; else scaled_dot_product_attention under the mask.
        self.decode_kernel: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor] | None = None

    def fuse(self) -> None:
        """Replace q/k/v_proj by one matrix: one matmul (one read of x, one launch) instead of three."""
        self.qkv_proj = _concatenated(self.q_proj, self.k_proj, self.v_proj)
        del self.q_proj, self.k_proj, self.v_proj

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.qkv_proj is None:
            return self.q_proj(x), self.k_proj(x), self.v_proj(x)
        kv = self.n_kv * self.head_dim
        return self.qkv_proj(x).split((self.n_heads * self.head_dim, kv, kv), dim=-1)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache | CacheTensors | None, layer: int,
                positions: Tensor, mask: Tensor | None, rows: Tensor | None = None) -> Tensor:
        b, t, _ = x.shape
        q, k, v = self._qkv(x)
        q = q.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if rows is not None:
            assert cache is not None
            return self.o_proj(self._slot_attention(q, k, v, cache, layer, positions, rows))
        if cache is not None:
            cache.k[layer][:, :, positions] = k
            cache.v[layer][:, :, positions] = v
            if mask is not None and t == 1 and self.decode_kernel is not None:  # reads up to the position
                out = self.decode_kernel(q, cache.k[layer], cache.v[layer], positions)
                return self.o_proj(out.view(b, t, self.n_heads * self.head_dim))
            if mask is not None:  # attend over the cache; the mask hides what is not written yet
                k, v = cache.k[layer], cache.v[layer]
        gqa = self.n_kv != self.n_heads
        if mask is None:
            out = attention(q, k, v, is_causal=t > 1, enable_gqa=gqa)
        elif x.device.type == "cpu":
            out = grouped_attention(q, k, v, mask)
        else:
            out = attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))

    def _slot_attention(self, q: Tensor, k: Tensor, v: Tensor, cache: KVCache | CacheTensors, layer: int,
                        positions: Tensor, rows: Tensor) -> Tensor:
        """Attention for sequences that share one cache, each in its own slot (tutor.engine.batching).

        q/k/v are [b, heads, 1, d]: batch row i is one token in cache slot rows[i] at positions[i].
        Every row's key and value go into its slot first, then each row attends to its slot up to
        its own position, so rows of one prompt in one pass see each other causally. Returns
        [b, 1, heads * d].
        """
        b, _, _, d = q.shape
        cache.k[layer][rows, :, positions] = k.reshape(b, self.n_kv, d)
        cache.v[layer][rows, :, positions] = v.reshape(b, self.n_kv, d)
        if self.decode_kernel is not None:  # reads each slot only up to its row's position
            return self.decode_kernel(q, cache.k[layer], cache.v[layer], positions, rows).view(b, 1, -1)
        # Without the kernels, each row's slot is gathered (a copy: on the CPU only as far as the
        # furthest row has written) and attended under its own mask.
        length = int(positions.max()) + 1 if q.device.type == "cpu" else cache.k[layer].shape[2]
        keys, values = cache.k[layer][rows, :, :length], cache.v[layer][rows, :, :length]
        written = cache.slots[None, :length] <= positions[:, None]  # [b, length]
        # Past a row's position its slot holds another sequence's stale entries, or never-written
        # memory; zeroed, so that a weight of 0 can never meet a NaN.
        values = values.masked_fill(~written[:, None, :, None], 0)
        if q.device.type == "cpu":
            out = grouped_attention(q, keys, values, written[:, None, None, None, :])
        else:
            out = attention(q, keys, values, attn_mask=written[:, None, None, :],
                                                 enable_gqa=self.n_kv != self.n_heads)
        return out.transpose(1, 2).reshape(b, 1, self.n_heads * d)


def grouped_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Attention of a few queries over the cache, written out: q [b, H, t, d], k/v [b, Hkv, S, d], mask [t, S].

    The CPU's fused attention kernels are made for long query blocks and run several times slower
    for one query over a long cache. Query heads are grouped by the key/value head they share
    (head h uses kv head h // group, as in the reference), so keys and values are never copied.
    """
    b, n_heads, t, d = q.shape
    n_kv, length = k.shape[1], k.shape[2]
    group = n_heads // n_kv
    scores = (q.reshape(b, n_kv, group * t, d) @ k.transpose(-1, -2)) * d ** -0.5
    scores = scores.view(b, n_kv, group, t, length).masked_fill(~mask, float("-inf"))
    probs = scores.float().softmax(dim=-1).to(q.dtype)
    return (probs.view(b, n_kv, group * t, length) @ v).view(b, n_heads, t, d)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.gate_up_proj: nn.Linear | None = None  # gate and up in one matrix, after fuse()

    def fuse(self) -> None:
        self.gate_up_proj = _concatenated(self.gate_proj, self.up_proj)
        del self.gate_proj, self.up_proj

    def forward(self, x: Tensor) -> Tensor:
        if self.gate_up_proj is None:
            gate, up = self.gate_proj(x), self.up_proj(x)
        else:
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        # Always the tanh form, whatever config.json calls the activation.
        return self.down_proj(F.gelu(gate, approximate="tanh") * up)


class TransposedLinear(nn.Module):
    """A bias-free linear layer whose weight is stored transposed, [in, out] contiguous.

    At batch 1 on an H100, x @ W read in this layout ran 2-9% faster than F.linear on the usual
    [out, in] layout for every CodeGemma matrix (the large ones gained most).
    """

    def __init__(self, weight_t: Tensor):
        super().__init__()
        self.weight_t = nn.Parameter(weight_t, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight_t


class TransposedEmbedding(nn.Module):
    """The tied embedding stored transposed, [hidden, vocab]: rows are looked up as columns, and as
    the output head it is a plain x @ W. One copy serves both, as in the checkpoint."""

    def __init__(self, weight_t: Tensor):
        super().__init__()
        self.weight_t = nn.Parameter(weight_t, requires_grad=False)

    def forward(self, ids: Tensor) -> Tensor:
        return self.weight_t[:, ids].movedim(0, -1)

    def head(self, h: Tensor) -> Tensor:
        return h @ self.weight_t


def _transposed(module: nn.Module) -> nn.Module:
    if type(module) is nn.Linear:
        return TransposedLinear(module.weight.t().contiguous())
    if type(module) is nn.Embedding:
        return TransposedEmbedding(module.weight.t().contiguous())
    return module  # already transposed, or int8


def _concatenated(*linears: nn.Linear) -> nn.Linear:
    """One bias-free Linear whose output is the given ones' outputs side by side."""
    weight = torch.cat([m.weight for m in linears])
    fused = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
    fused.weight = nn.Parameter(weight, requires_grad=False)
    return fused


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache | CacheTensors | None, layer: int,
                positions: Tensor, mask: Tensor | None, rows: Tensor | None = None) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer, positions, mask, rows)
        return x + self.mlp(self.post_attention_layernorm(x))


class GemmaModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


def rotary_table(config: ModelConfig, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """cos and signed sin for every position, [max_positions, head_dim], float32.

    Gemma rotates the two halves of each head ("rotate_half"): with sin's first half negated,
    x * cos + roll(x, half) * signed_sin gives exactly the reference's x * cos + rotate_half(x) * sin.
    """
    dim = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim))
    pos = torch.arange(config.max_position_embeddings, device=device, dtype=torch.float32)
    freqs = torch.outer(pos, inv_freq)
    return torch.cat((freqs, freqs), dim=-1).cos(), torch.cat((-freqs.sin(), freqs.sin()), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, signed_sin: Tensor) -> Tensor:
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


# cuDNN's fused attention builds an execution plan for every new shape it meets (over a second on an
# H200): in a server each new prompt length would stall every student's decoding that long. Flash and
# memory-efficient attention have no such cost, so cuDNN is left out of the fused kernels' choice.
_GPU_ATTENTION = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def attention(q: Tensor, k: Tensor, v: Tensor, **options: Any) -> Tensor:
    """``F.scaled_dot_product_attention`` without the cuDNN backend on a GPU (see above)."""
    if q.device.type != "cuda":
        return F.scaled_dot_product_attention(q, k, v, **options)
    with sdpa_kernel(_GPU_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, **options)


class Transformer(nn.Module):
    """Weights named as in the Hugging Face checkpoint (``model.layers.0.mlp.up_proj.weight``...)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model = GemmaModel(config)
        cos, sin = rotary_table(config)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.register_buffer("embed_scale", torch.tensor(config.hidden_size ** 0.5), persistent=False)

    def prepare(self) -> None:
        """Derive the constants that depend on the loaded weights' dtype and device."""
        self.rope_cos, self.rope_sin = rotary_table(self.config, device=self.device)
        # The reference casts sqrt(hidden) to the activation dtype first (55.5 in bf16 for 7B).
        self.embed_scale = torch.tensor(self.config.hidden_size ** 0.5, dtype=self.dtype, device=self.device)
        for module in self.modules():
            if isinstance(module, RMSNorm):
                module.prepare()

    def fuse_projections(self) -> None:
        """Concatenate q/k/v and gate/up weights (dense weights only): fewer, larger matmuls.

        Each output column is the same dot product as before, so results differ at most by the
        matmul kernel's rounding. Worth it on a GPU, where each small matmul is a launch and the
        k/v matrices of the 2B model are too small to reach full bandwidth; the concatenation
        copies the weights, which the GPU load does anyway.
        """
        for layer in self.model.layers:
            if layer.self_attn.qkv_proj is not None:
                continue  # already fused
            if type(layer.self_attn.q_proj) is not nn.Linear or type(layer.mlp.gate_proj) is not nn.Linear:
                raise ValueError("only dense nn.Linear weights can be fused, not int8 or transposed ones")
            layer.self_attn.fuse()
            layer.mlp.fuse()

    def transpose_weights(self) -> None:
        """Store every dense matrix transposed (TransposedLinear, TransposedEmbedding): the same
        products, read in the layout the GPU's batch-1 matmuls read fastest. One matrix at a time,
        so loading needs room for the largest one twice. Fuse first, if at all."""
        for parent in [self.model, *self.model.layers, *(m for layer in self.model.layers
                                                         for m in (layer.self_attn, layer.mlp))]:
            for name in [n for n, _ in parent.named_children()]:  # names only: old weights go as soon as replaced
                setattr(parent, name, _transposed(getattr(parent, name)))

    def use_decode_kernel(self) -> None:
        """One-token attention by the split-cache Triton kernels (CUDA, Triton installed). They run
        once first, so that a GPU they do not fit (too little shared memory, say) raises here, before
        anything is changed, rather than in the middle of a generation."""
        from .decode_attention import decode_attention  # imports triton

        c = self.config
        query = torch.zeros((1, c.num_heads, 1, c.head_dim), dtype=self.dtype, device=self.device)
        keys = torch.zeros((1, c.num_kv_heads, 1, c.head_dim), dtype=self.dtype, device=self.device)
        decode_attention(query, keys, keys, torch.zeros(1, dtype=torch.long, device=self.device))
        for layer in self.model.layers:
            layer.self_attn.decode_kernel = decode_attention

    @property
    def bounded_slot_reads(self) -> bool:
        """Whether a batch row's attention reads its slot only up to its position (the decode
        kernels, or the CPU's gather), rather than the whole slot (a GPU without the kernels)."""
        return self.device.type == "cpu" or self.model.layers[0].self_attn.decode_kernel is not None

    @property
    def dtype(self) -> torch.dtype:
        """The activation dtype (the norms are never quantized)."""
        return self.model.norm.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.norm.weight.device

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        return KVCache(self.config, batch, max_len, self.dtype, self.device)

    def _embed(self, ids: Tensor) -> Tensor:
        h = self.model.embed_tokens(ids)
        return h * self.embed_scale.to(h.dtype)

    def _run(self, ids: Tensor, positions: Tensor, cache: KVCache | CacheTensors | None, mask: Tensor | None,
             rows: Tensor | None = None) -> Tensor:
        h = self._embed(ids)
        cos = self.rope_cos[positions].to(h.dtype)
        sin = self.rope_sin[positions].to(h.dtype)
        if rows is not None:  # a position per batch row: [b, 1, 1, d] against [b, heads, 1, d]
            cos, sin = cos[:, None, None], sin[:, None, None]
        for i, layer in enumerate(self.model.layers):
            h = layer(h, cos, sin, cache, i, positions, mask, rows)
        return self.model.norm(h)

    def head(self, h: Tensor) -> Tensor:
        """Logits from final hidden states; the output head is the (unscaled) embedding."""
        embed = self.model.embed_tokens
        if hasattr(embed, "head"):  # int8, transposed, or with the CPU kernels (tutor.engine.cpu_kernels)
            return embed.head(h)
        return F.linear(h, embed.weight)

    def forward(self, ids: Tensor) -> Tensor:
        """Hidden states after the final norm for a whole sequence, no cache: [batch, seq, hidden]."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self._run(ids, positions, None, None)

    def prefill(self, ids: Tensor, cache: KVCache, start: int = 0) -> Tensor:
        """Run ``ids`` [batch, t] at positions start..start+t-1, filling the cache. Returns hidden states.

        With start > 0 the new tokens attend to the cached ones before them, which lets a caller
        reuse the cache of a shared prefix.
        """
        t = ids.shape[1]
        positions = torch.arange(start, start + t, device=ids.device)
        if start == 0:
            return self._run(ids, positions, cache, None)
        mask = cache.slots[None, :] <= positions[:, None]  # [t, max_len]: causal over cache + new block
        return self._run(ids, positions, cache, mask)

    def decode_block(self, ids: Tensor, position: Tensor, cache: KVCache | CacheTensors) -> Tensor:
        """``ids`` [batch, t] at positions ``position`` .. + t - 1 (a 1-element tensor): float logits
        [batch, t, vocab], one row per token. Like decode_step, shapes depend only on t (a block of
        drafted tokens is verified so); each token attends to the cache and the block up to itself.
        """
        positions = position + torch.arange(ids.shape[1], device=ids.device)
        mask = cache.slots[None, :] <= positions[:, None]  # [t, max_len]
        return self.head(self._run(ids, positions, cache, mask)).float()

    def decode_rows(self, ids: Tensor, slots: Tensor, positions: Tensor, cache: KVCache | CacheTensors,
                    picks: Tensor | None = None) -> Tensor:
        """One token per batch row, each row at its own cache slot and position: ``ids`` [n, 1] at
        ``positions`` [n] in slots ``slots`` [n] of a cache shared by many sequences. Several rows may
        share a slot (a prompt's tokens): all keys and values are written before any row attends, so
        each row sees its slot up to its own position. Returns float logits of the rows ``picks``
        (default: all), [len(picks), vocab]. Shapes depend only on n, so each size can be captured once."""
        h = self._run(ids, positions, cache, None, rows=slots)[:, -1]
        return self.head(h if picks is None else h[picks]).float()

    def decode_step(self, ids: Tensor, position: Tensor, cache: KVCache | CacheTensors) -> Tensor:
        """One token per sequence at ``position`` (a 1-element tensor). Returns float logits [batch, vocab].

        Shapes never change between steps: the attention spans the whole cache under a mask.
        """
        mask = (cache.slots <= position)[None, :]  # [1, max_len]
        h = self._run(ids, position, cache, mask)
        return self.head(h[:, -1]).float()
