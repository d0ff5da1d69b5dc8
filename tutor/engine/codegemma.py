"""A loaded CodeGemma model: config, tokenizer, weights, and generation on top of them."""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .checkpoint import Checkpoint, expected_shapes, inspect_checkpoint, iter_tensors, resolve_source
from .config import ModelConfig, dtype_from_name
from .cpu_kernels import use_cpu_attention, use_kernel_modules
from .decoding import ChainedGreedyLoop, HostLoop, PromptLookupLoop
from .errors import CheckpointError, PromptError
from .generation import GenerationResult, GenerationStream, SamplingParams, StopStrings
from .graphs import CapturedDecode, DecodeStep, compile_enabled, compiled_step, decode_kernel_enabled, graphs_enabled
from .model import KVCache, Transformer
from .progress import LOADED, PREPARING, QUANTIZING, READING, LoadProgress, ProgressCallback
from .quant import (
    Int8Embedding,
    Int8Linear,
    available_memory,
    check_mode,
    choose_mode,
    int8_cache_path,
    quantize_int8,
    quantize_modules,
    read_int8_cache,
    write_int8_cache,
)
from .tokenizer import END_OF_TURN, EOS, StreamDecoder, Tokenizer

# Caches are sized to the request, rounded up so nearby sizes share one shape.
_CACHE_ROUND = 256
_EMBEDDING = "model.embed_tokens.weight"


def default_device() -> torch.device:
    """TUTOR_DEVICE if set, else CUDA when there is a GPU, else the CPU."""
    name = os.environ.get("TUTOR_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Request:
    """A checked generate() call. ``max_new_tokens`` is already capped at the context's end."""

    prompt: list[int]
    max_new_tokens: int
    params: SamplingParams
    stop_ids: set[int]
    stop_strings: tuple[str, ...]
    cancel: threading.Event
    draft_tokens: int = 0  # > 0: greedy decoding with drafts looked up in the prompt (tutor.engine.decoding)


class CodeGemma:
    """A CodeGemma checkpoint ready to run. Build one with :func:`load`."""

    def __init__(self, checkpoint: Checkpoint, tokenizer: Tokenizer, model: Transformer):
        self.checkpoint = checkpoint
        self.config: ModelConfig = checkpoint.config
        self.tokenizer = tokenizer
        self.model = model
        # On a GPU each cache gets its decode step captured once (tutor.engine.graphs); finished
        # requests leave their cache here for the next request of the same size.
        # Per cache: its captured steps by block length (1, and k + 1 for drafts of k tokens).
        self._captured: weakref.WeakKeyDictionary[KVCache, dict[int, CapturedDecode]] = weakref.WeakKeyDictionary()
        self._spare_caches: dict[int, list[KVCache]] = {}
        self._pool_lock = threading.Lock()
        self._compiled: DecodeStep | None = None
        self._compile_failed = False  # then the plain step is captured instead, for good
        self._capture_lock = threading.Lock()  # torch.compile is not meant to run in two threads at once

    def __repr__(self) -> str:
        return (f"CodeGemma({self.config.variant}, {self.checkpoint.folder}, "
                f"device={self.device}, dtype={self.dtype})")

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def decode_path(self) -> str:
        """How one-token steps run now: "plain", "captured" (a CUDA graph) or "captured+compiled"."""
        if not graphs_enabled(self.device):
            return "plain"
        return "captured+compiled" if self._compiling() else "captured"

    @property
    def context_length(self) -> int:
        return self.config.max_position_embeddings

    def default_stop_ids(self) -> list[int]:
        """<eos>, and <end_of_turn> for instruction-tuned models."""
        stops = [self.tokenizer.special[EOS]]
        if self.config.instruction_tuned:
            stops.append(self.tokenizer.special[END_OF_TURN])
        return stops

    # ------------------------------------------------------------------ forward pass

    def logits(self, input_ids: Tensor | Sequence[int] | Sequence[Sequence[int]]) -> Tensor:
        """A plain forward pass: float32 logits [batch, seq, vocab] for every position."""
        ids = self._as_batch(input_ids)
        with torch.inference_mode():
            return self.model.head(self.model(ids)).float()

    def _as_batch(self, input_ids: Tensor | Sequence[int] | Sequence[Sequence[int]]) -> Tensor:
        ids = input_ids if isinstance(input_ids, Tensor) else torch.tensor(input_ids, dtype=torch.long)
        if ids.dim() == 1:
            ids = ids[None]
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise PromptError(f"input_ids must be [batch, seq] with seq >= 1, got shape {list(ids.shape)}")
        self._check_prompt(ids.shape[1], int(ids.min()), int(ids.max()))
        return ids.to(self.device, torch.long)

    def _check_prompt(self, length: int, low: int, high: int) -> None:
        if length > self.context_length:
            raise PromptError(
                f"the prompt has {length} tokens but the model's context is {self.context_length}; "
                "shorten the prompt (less surrounding code or conversation)."
            )
        if low < 0 or high >= self.config.vocab_size:
            raise PromptError(f"token id out of range [0, {self.config.vocab_size}): got {low}..{high}")

    # ------------------------------------------------------------------ generation

    def generate(
        self,
        prompt_ids: Sequence[int],
        *,
        max_new_tokens: int = 256,
        temperature: float | None = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop_token_ids: Iterable[int] | None = None,
        stop_strings: Sequence[str] = (),
        stream: bool = False,
        cancel: threading.Event | None = None,
        draft_tokens: int = 0,
    ) -> GenerationResult | GenerationStream[GenerationResult]:
        """Continue ``prompt_ids`` (one sequence). Greedy by default.

        Returns a :class:`GenerationResult`, or with ``stream=True`` a :class:`GenerationStream` of
        text pieces. ``cancel`` (an Event set from any thread) stops generation early; the stop
        tokens default to :meth:`default_stop_ids`; the text never includes a stop string.
        ``draft_tokens`` (greedy only) checks up to that many tokens per forward pass, drafted from
        the prompt: the same tokens in fewer passes when the output copies the input (fixes).
        """
        request = self._request(prompt_ids, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                                top_p=top_p, seed=seed, stop_token_ids=stop_token_ids, stop_strings=stop_strings,
                                cancel=cancel, draft_tokens=draft_tokens)
        streamed = GenerationStream(self._pieces(request), request.cancel)
        return streamed if stream else streamed.run()

    def _request(self, prompt_ids: Sequence[int], *, max_new_tokens: int = 256, temperature: float | None = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 stop_token_ids: Iterable[int] | None = None, stop_strings: Sequence[str] = (),
                 cancel: threading.Event | None = None, draft_tokens: int = 0) -> Request:
        """Check the arguments of :meth:`generate` and bundle them; raises PromptError or ValueError."""
        prompt = [int(i) for i in prompt_ids]
        if not prompt:
            raise PromptError("the prompt is empty; give at least one token (usually <bos>).")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if draft_tokens < 0:
            raise ValueError(f"draft_tokens must be >= 0, got {draft_tokens}")
        if draft_tokens and temperature:
            raise ValueError("draft_tokens works with greedy decoding only: pass temperature=0 (or draft_tokens=0 "
                             "to sample).")
        self._check_prompt(len(prompt), min(prompt), max(prompt))
        if len(prompt) >= self.context_length:
            raise PromptError(
                f"the prompt has {len(prompt)} tokens, which fills the model's context of "
                f"{self.context_length}; nothing can be generated. Shorten the prompt."
            )
        budget = min(max_new_tokens, self.context_length - len(prompt))
        stops = set(self.default_stop_ids() if stop_token_ids is None else stop_token_ids)
        return Request(prompt, budget, SamplingParams(temperature, top_k, top_p, seed), stops, tuple(stop_strings),
                       cancel or threading.Event(), draft_tokens)

    def _cache_length(self, tokens: int) -> int:
        """The cache size for ``tokens`` positions: rounded up so nearby sizes share one shape."""
        return min(self.context_length, -(-tokens // _CACHE_ROUND) * _CACHE_ROUND)

    def _take_cache(self, length: int) -> KVCache:
        """A cache of ``length`` positions: on a GPU a spare one, whose decode step is already captured."""
        if graphs_enabled(self.device):
            with self._pool_lock:
                spares = self._spare_caches.get(length)
                if spares:
                    return spares.pop()
        return self.model.new_cache(1, length)

    def _give_back(self, cache: KVCache) -> None:
        if cache in self._captured:
            with self._pool_lock:
                spares = self._spare_caches.setdefault(cache.max_len, [])
                if len(spares) < 2:  # enough for a request and a concurrent one; others are freed
                    spares.append(cache)

    def _decode_step(self, cache: KVCache) -> Callable[[Tensor, Tensor], Tensor]:
        """The decode step for ``cache``: captured in a CUDA graph on a GPU, else the plain one."""
        if not graphs_enabled(self.device):
            return lambda token, position: self.model.decode_step(token, position, cache)
        return self._captured_step(cache, 1)

    def _captured_step(self, cache: KVCache, tokens: int) -> CapturedDecode:
        captured = self._captured.setdefault(cache, {}).get(tokens)
        if captured is None:
            with self._capture_lock:
                captured = None
                if tokens == 1 and self._compiling():
                    try:
                        self._compiled = self._compiled or compiled_step(self.model)
                        captured = CapturedDecode(self.model, cache, self._compiled)
                    except Exception as exc:  # noqa: BLE001 - any compiler failure: decode uncompiled
                        self._compile_failed = True
                        warnings.warn(f"compiling the decode step failed ({type(exc).__name__}: "
                                      f"{str(exc)[:200]}); decoding goes on uncompiled. Set TUTOR_COMPILE=0 "
                                      "to skip the attempt.", RuntimeWarning, stacklevel=2)
                captured = captured or CapturedDecode(self.model, cache, None, tokens)
                self._captured[cache][tokens] = captured
        return captured

    def _compiling(self) -> bool:
        return compile_enabled(self.device) and not self._compile_failed

    def warm_up(self, lengths: Sequence[int] = (256, 512)) -> None:
        """On a GPU, capture (and with TUTOR_COMPILE=1 compile) the decode step for caches of these
        lengths now, so that a server's first requests do not wait for it; the caches go to the pool
        for requests of those sizes. The second length makes a compiled step's length dynamic, so
        later sizes need no recompile. Nothing to do on a CPU."""
        if not graphs_enabled(self.device):
            return
        for length in lengths:
            cache = self._take_cache(self._cache_length(length))
            self._decode_step(cache)
            self._give_back(cache)

    def _verifier(self, cache: KVCache, draft_tokens: int) -> Callable[[Tensor, int], list[int]]:
        """Runs a block of tokens at a position and returns each row's argmax (prompt lookup).

        On a GPU the block is captured at its longest, 1 + draft_tokens, and shorter blocks are
        padded: the padding's predictions are ignored and its cache entries lie past what is kept,
        where the next block writes first. The cache needs draft_tokens spare positions for it.
        """
        if graphs_enabled(self.device):
            captured = self._captured_step(cache, 1 + draft_tokens)

            def verify_captured(block: Tensor, position: int) -> list[int]:
                t = block.shape[1]
                with torch.inference_mode():
                    captured.token[:, :t].copy_(block)
                    captured.token[:, t:].fill_(0)
                    captured.position.fill_(position)
                    captured.graph.replay()
                    return captured.predicted[0, :t].tolist()
            return verify_captured

        def verify(block: Tensor, position: int) -> list[int]:
            with torch.inference_mode():
                where = torch.tensor([position], device=self.device)
                return self.model.decode_block(block, where, cache)[0].argmax(dim=-1).tolist()
        return verify

    def _pieces(self, request: Request, cache: KVCache | None = None, start: int = 0,
                cached_ids: list[int] | None = None) -> Generator[str, None, GenerationResult]:
        """The generation loop: text pieces, then the result.

        Without ``cache`` a new one is made and dropped at the end. With one, its first ``start``
        positions must already hold ``request.prompt[:start]``; only the rest is prefilled (at least
        one token, for the logits). ``cached_ids`` (holding the first ``start`` ids) is extended with
        every token as its keys and values are written, so a caller knows what the cache holds even
        if generation stops early.
        """
        prompt, budget, params = request.prompt, request.max_new_tokens, request.params
        if not 0 <= start < len(prompt):
            raise ValueError(f"start must be in [0, {len(prompt)}), got {start}")
        generator = None
        if params.seed is not None and not params.greedy:
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
        decoder, stopper = StreamDecoder(self.tokenizer), StopStrings(request.stop_strings)
        generated: list[int] = []
        reason = "length"

        own_cache = cache is None
        if cache is None:
            cache = self._take_cache(self._cache_length(len(prompt) + budget + request.draft_tokens))
        loop: HostLoop | ChainedGreedyLoop | PromptLookupLoop | None = None
        reported = 0  # generated tokens already added to cached_ids

        def report_written() -> None:
            nonlocal reported
            if cached_ids is not None and loop is not None:
                cached_ids.extend(generated[reported:loop.written])
                reported = max(reported, min(loop.written, len(generated)))

        try:
            with torch.inference_mode():  # each block is entered and left between yields, never across one
                ids = torch.tensor([prompt[start:]], dtype=torch.long, device=self.device)
                logits = self.model.head(self.model.prefill(ids, cache, start=start)[:, -1]).float()
            if cached_ids is not None:
                cached_ids.extend(prompt[start:])
            # Drafts need spare cache positions (see _verifier); near the context's end there are fewer.
            draft_tokens = min(request.draft_tokens, cache.max_len - len(prompt) - budget)
            if draft_tokens > 0 and params.greedy:
                verify = self._verifier(cache, draft_tokens)
                loop = PromptLookupLoop(logits, verify, prompt, budget, draft_tokens)
            else:
                decode = self._decode_step(cache)
                if params.greedy and isinstance(decode, CapturedDecode):
                    loop = ChainedGreedyLoop(logits, decode, len(prompt), budget)
                else:
                    loop = HostLoop(logits, decode, len(prompt), budget, params, generator)
            for token_id in loop:
                if request.cancel.is_set():
                    reason = "cancelled"
                    break
                generated.append(token_id)
                report_written()
                if token_id in request.stop_ids:
                    reason = "stop"
                    break
                text, hit_stop = stopper.feed(decoder.push(token_id))
                if text:
                    yield text
                if hit_stop:
                    reason = "stop"
                    break
        finally:
            report_written()
            if own_cache:
                self._give_back(cache)
        if reason != "stop":
            tail, hit_stop = stopper.feed(decoder.flush())
            tail += "" if hit_stop else stopper.flush()
            reason = "stop" if hit_stop else reason
            if tail:
                yield tail
        return GenerationResult(
            text=stopper.text,
            token_ids=generated,
            finish_reason=reason,
            prompt_tokens=len(prompt),
            completion_tokens=len(generated),
            cached_tokens=start,
            forward_passes=loop.forward_passes if loop is not None else 0,
            drafted_tokens=loop.drafted if loop is not None else 0,
            accepted_tokens=loop.accepted if loop is not None else 0,
        )


def _upload_transposed(weight: Tensor, device: torch.device, dtype: torch.dtype, rows: int = 16384) -> Tensor:
    """``weight`` on ``device``, stored transposed (returned as a transposed view, the checkpoint's
    shape), a block of rows at a time: the GPU never holds the embedding in both layouts, which
    would add a quarter of the 2B's weights to the peak while loading."""
    stored = torch.empty((weight.shape[1], weight.shape[0]), dtype=dtype, device=device)
    for first in range(0, weight.shape[0], rows):
        stored[:, first:first + rows] = weight[first:first + rows].to(device=device, dtype=dtype).t()
    return stored.t()


def load(source: str | os.PathLike[str], *, device: str | torch.device | None = None,
         dtype: str | torch.dtype | None = None, quantize: str | None = None,
         progress: ProgressCallback | None = None) -> CodeGemma:
    """Load a CodeGemma checkpoint from a folder or the local Hugging Face cache.

    ``source`` is a folder (config.json, *.safetensors, tokenizer.model) or a hub name such as
    ``google/codegemma-2b`` found in the local cache; nothing is downloaded. ``device`` defaults
    to TUTOR_DEVICE, else CUDA when present, else CPU; ``dtype`` to the checkpoint's own.
    ``quantize="int8"`` stores every matmul weight (and the tied embedding / output head) as int8
    with per-channel scales, for faster CPU decoding; ``"none"`` turns it off; the default reads
    TUTOR_QUANTIZE, else none, except on a CPU whose available memory cannot hold the weights but
    can hold them in int8: then int8, with a warning that says so.
    The whole folder is checked before any weight is read, so a bad folder raises
    :class:`CheckpointError` and leaves nothing half-built.
    ``progress``, if given, is called with a :class:`~tutor.engine.progress.LoadProgress` as the weights
    are read (bytes of the total, after each tensor), then when they are prepared, and once loaded.
    """
    asked = quantize if quantize is not None else os.environ.get("TUTOR_QUANTIZE") or None  # read here only
    mode = check_mode(asked, "quantize" if quantize is not None else "TUTOR_QUANTIZE")
    folder = resolve_source(source)
    checkpoint = inspect_checkpoint(folder)
    tokenizer = Tokenizer(checkpoint.tokenizer_path)
    if tokenizer.vocab_size > checkpoint.config.vocab_size:
        raise CheckpointError(
            f"{checkpoint.tokenizer_path}: has {tokenizer.vocab_size} pieces but the model has "
            f"only {checkpoint.config.vocab_size} embeddings; tokenizer.model belongs to another model."
        )
    target_device = torch.device(device) if device is not None else default_device()
    target_dtype = dtype_from_name(dtype) or checkpoint.config.dtype
    if target_device.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("device 'cuda' was asked for but torch sees no GPU; use device='cpu'.")
    if not asked and target_device.type == "cpu":
        numel = sum(torch.Size(s).numel() for s in expected_shapes(checkpoint.config).values())
        dense = numel * torch.finfo(target_dtype).bits // 8
        mode, warning = choose_mode(dense, numel + dense // 64, available_memory())  # int8 + scales, roughly
        if warning:
            warnings.warn(f"{folder.name}: {warning}", UserWarning, stacklevel=2)

    with torch.device("meta"):
        model = Transformer(checkpoint.config)
        if mode == "int8":
            quantize_modules(model, target_dtype)
        elif target_device.type == "cpu" and target_dtype == torch.bfloat16:
            use_kernel_modules(model)  # one-token products by tutor.engine.cpu_kernels; the same weights
    quantized = {n + ".weight" for n, m in model.named_modules() if isinstance(m, (Int8Linear, Int8Embedding))}
    # Parameters are filled from the memory-mapped files one tensor at a time: a tensor that is
    # already in the right dtype on the CPU is used in place, without a copy. Quantized ones are
    # converted one at a time too, so the full-precision weights are never all in memory.
    transposing = target_device.type == "cuda" and mode == "none"  # see transpose_weights below
    # Quantizing 2.5 billion weights takes 25 s on 2 cores: on the CPU the result is kept in the
    # user's cache, keyed by the checkpoint files' identity, and read back memory-mapped.
    cache = int8_cache_path(checkpoint.files, target_dtype) if quantized and target_device.type == "cpu" else None
    report = _Reporter(progress, checkpoint, QUANTIZING if quantized else READING)
    report(0)
    state = read_int8_cache(cache) or {}
    from_cache = bool(state)
    for name, tensor in ([] if from_cache else iter_tensors(checkpoint)):
        if transposing and name == _EMBEDDING:
            state[name] = _upload_transposed(tensor, target_device, target_dtype)
        elif name in quantized:
            q, scales = quantize_int8(tensor.to(device=target_device))
            state[name], state[name.removesuffix("weight") + "scales"] = q, scales.to(target_dtype)
        elif quantized:  # a copy of the (small) rest, so that no mapping of the bf16 files stays alive
            state[name] = tensor.to(device=target_device, dtype=target_dtype, copy=True)
        else:
            state[name] = tensor.to(device=target_device, dtype=target_dtype)
        report(tensor.numel() * tensor.element_size())
    report(checkpoint.tensor_bytes, PREPARING)  # read at once (memory-mapped) from the int8 cache, or all read
    if cache is not None and not from_cache:
        write_int8_cache(cache, state)
    model.load_state_dict(state, strict=True, assign=True)
    del state
    if transposing:  # on the CPU these would copy weights used in place
        model.fuse_projections()
        model.transpose_weights()
    if decode_kernel_enabled(target_device):
        try:
            model.use_decode_kernel()
        except Exception as error:  # noqa: BLE001 - any failure of an optional fast path: keep the plain one
            warnings.warn(f"the Triton attention kernels do not run on this GPU ({type(error).__name__}: "
                          f"{str(error)[:200]}); "
                          "one-token attention uses PyTorch's kernels instead. Set TUTOR_DECODE_KERNEL=0 to skip "
                          "the attempt.", RuntimeWarning, stacklevel=2)
    elif target_device.type == "cpu" and target_dtype == torch.bfloat16:
        use_cpu_attention(model)  # one-token attention by tutor.engine.cpu_kernels, in float32
    model.prepare()  # buffers made on the meta device hold no data yet
    model.eval().requires_grad_(False)
    report(0, LOADED)
    return CodeGemma(checkpoint, tokenizer, model)


class _Reporter:
    """Counts the bytes a load has handled and tells ``callback`` (if any) after each step."""

    def __init__(self, callback: ProgressCallback | None, checkpoint: Checkpoint, phase: str):
        self.callback, self.phase, self.done = callback, phase, 0
        self.total = checkpoint.tensor_bytes
        name = checkpoint.folder
        self.model = (name.parent.parent if name.parent.name == "snapshots" else name).name  # a hub snapshot: its repo
        self.model = self.model.removeprefix("models--").replace("--", "/")

    def __call__(self, added: int, phase: str | None = None) -> None:
        self.done = min(self.total, self.done + added)
        self.phase = phase or self.phase
        if self.callback is not None:
            self.callback(LoadProgress(self.model, self.phase, self.done, self.total))

