"""The batch's one pass over the model: a decode step whose rows may carry prompt tokens too.

Every row of the pass is one token at a (cache slot, position): a running sequence's next token,
or one token of a new prompt. All rows write their keys and values first, then each attends to its
slot up to its own position (the decode attention kernels, a position and a slot per row), so a
prompt's tokens see the ones before them in the same pass, and a session's new tokens see its
cached prefix. New prompts therefore ride in the decode step instead of a pass of their own: the
weights are read once for both, and while a class types, prefill nearly every step cost a second
pass before (on the H200 it was half the loop's time).

On a GPU a pass launched from Python costs hundreds of kernel launches, several milliseconds for
the 2B model, while its work takes a fraction of that; so the pass is captured once per bucket of
rows and replayed. Its inputs stay in fixed device buffers, which the scheduler fills between
replays; padding rows read and write the scheduler's scratch slot only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .graphs import compile_enabled, graphs_enabled
from .model import CacheTensors, KVCache

BUCKETS = (1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)


def _capture(pool: Any, device: torch.device, body: Callable[[], Tensor]) -> tuple[torch.cuda.CUDAGraph, Tensor]:
    """``body`` run twice on a side stream (kernels choose their algorithms and allocate outside
    the capture), then captured; returns the graph and its output buffer."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.inference_mode(), torch.cuda.stream(side):
        body()
        body()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
        out = body()
    return graph, out


class BatchedStep:
    """One pass over the first n rows of the batch buffers, on a cache of slots.

    ``token`` [capacity, 1], ``slots`` [capacity] and ``positions`` [capacity] are the pass's inputs,
    kept on the device: rows 0..b-1 are the running sequences, the rows after them the new prompt
    tokens of this pass. Only the rows named in ``picks`` (at most ``rows``: one per sequence) go
    through the output head: row i of the logits is row ``picks[i]`` of the pass, the identity for
    the running rows, a prompt's last token for each sequence that joins. Each pass writes row i's
    argmax into ``token[i]`` and moves ``positions`` on, so greedy rows feed themselves, and a
    joining sequence's first token is already where it will sit as a row in the next pass.

    On a GPU each bucket size is captured once in a CUDA graph (and with TUTOR_COMPILE=1 compiled
    first, once for all sizes); padding rows read and write the scratch slot. The smallest bucket
    is 2: a padded row costs nothing in a pass bound by reading weights, and a batch dimension that
    is never 1 compiles once, where 1 would be compiled apart.
    """

    def __init__(self, model: Any, cache: KVCache, scratch: int, rows: int, capacity: int | None = None):
        self.model, self.cache, self.scratch, self.rows = model, cache, scratch, rows
        device = cache.device
        self.capacity = capacity = max(rows, capacity or rows)
        self.captured = graphs_enabled(device)
        self.padded = self.captured  # rows padded up to a bucket (a test may ask for it on the CPU)
        self.buckets = sorted({b for b in BUCKETS if 1 < b < capacity} | {rows, capacity})
        self.token = torch.zeros((capacity, 1), dtype=torch.long, device=device)
        self.slots = torch.full((capacity,), scratch, dtype=torch.long, device=device)
        self.positions = torch.zeros(capacity, dtype=torch.long, device=device)
        self.picks = torch.arange(rows, device=device)
        self._last = cache.max_len - 1
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Tensor]] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.captured else None
        self.compiled = compile_enabled(device)
        self._step = self._compiled() if self.compiled else model.model.decode_rows

    def _compiled(self) -> Callable[[Tensor, Tensor, Tensor, KVCache, Tensor], Tensor]:
        decode_rows = self.model.model.decode_rows
        compiled = torch.compile(lambda ids, slots, positions, k, v, ar, picks: decode_rows(
            ids, slots, positions, CacheTensors(k, v, ar), picks), fullgraph=True)

        def step(ids: Tensor, slots: Tensor, positions: Tensor, cache: KVCache, picks: Tensor) -> Tensor:
            # One graph for every size where the compiler can keep the dimensions symbolic; "maybe"
            # because a kernel that needs a fixed size specialises it (a strict mark_dynamic then
            # raises), and each bucket is compiled apart, within the recompile limit raised below.
            for t in (ids, slots, positions, picks):
                torch._dynamo.maybe_mark_dynamic(t, 0)
            return compiled(ids, slots, positions, cache.k, cache.v, cache.slots, picks)
        limit = torch._dynamo.config
        limit.cache_size_limit = max(limit.cache_size_limit, 2 * len(self.buckets))
        return step

    @property
    def path(self) -> str:
        """How the batched step runs: "plain", "captured" or "captured+compiled" (for /health)."""
        return "plain" if not self.captured else "captured+compiled" if self.compiled else "captured"

    def bucket(self, n: int) -> int:
        return next(size for size in self.buckets if size >= n) if self.padded else n

    def heads(self, n: int) -> int:
        """Rows of a pass of n rows that get logits."""
        return min(n, self.rows)

    def _body(self, n: int) -> Tensor:
        h = self.heads(n)
        logits = self._step(self.token[:n], self.slots[:n], self.positions[:n], self.cache, self.picks[:h])
        self.token[:h].copy_(logits.argmax(dim=-1, keepdim=True))
        # Padding rows would walk off the cache; real rows never reach its last position before their end.
        self.positions[:n].add_(1).clamp_(max=self._last)
        return logits

    def reset(self) -> None:
        """Every row padding again (after a failed pass left the buffers half-written)."""
        self.slots.fill_(self.scratch)
        self.positions.zero_()
        self.picks.copy_(torch.arange(self.rows, device=self.picks.device))

    def capture(self, n: int) -> None:
        """Capture (and compile) the pass for bucket size n now, so no request waits for it."""
        if not self.captured or n in self._graphs:
            return
        saved = [t[:n].clone() for t in (self.token, self.slots, self.positions)]
        self.slots[:n].fill_(self.scratch)  # warm-up and capture write only the scratch slot
        self.positions[:n].zero_()

        def body() -> Tensor:
            try:
                return self._body(n)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: decode uncompiled
                if not self.compiled:
                    raise
                warnings.warn(f"compiling the batched decode step failed ({type(exc).__name__}: {str(exc)[:200]}); "
                              "decoding goes on uncompiled. Set TUTOR_COMPILE=0 to skip the attempt.",
                              RuntimeWarning, stacklevel=3)
                self.compiled, self._step = False, self.model.model.decode_rows
                self._graphs.clear()  # captured with the compiled step: recaptured as they are needed
                return self._body(n)

        self._graphs[n] = _capture(self._pool, self.cache.device, body)
        for t, old in zip((self.token, self.slots, self.positions), saved, strict=True):
            t[:n].copy_(old)

    def run(self, n: int) -> Tensor:
        """One pass over the first ``n`` rows (padded up to a bucket on a GPU); float logits
        [heads(bucket), vocab], row i for row ``picks[i]``."""
        size = self.bucket(n)
        if not self.captured:
            with torch.inference_mode():
                return self._body(size)
        if size not in self._graphs:
            self.capture(size)
        graph, logits = self._graphs[size]
        graph.replay()
        return logits

