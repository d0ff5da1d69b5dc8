"""Continuous batching: one decode step over every active sequence, for a server with many users.

A :class:`BatchScheduler` owns one model and one thread. Each pass of its loop:

1. retires the sequences that finished, were cancelled or were stopped since the last pass;
2. admits waiting requests into free cache slots, the user with the fewest running sequences first;
3. launches one pass over all rows (on a GPU a CUDA graph captured for that size): a decode step
   whose rows also carry new prompts' tokens (tutor.engine.batch_passes), at most
   ``prefill_tokens`` a pass; a sequence whose prompt is in the cache after it is a row from then on;
4. reads the previous pass's tokens while the GPU runs this one, and streams their text;
5. prefills a chunk of each prompt too long to ride in a pass, so a long prompt never holds up
   everyone's next token for more than one chunk (its last token always rides in a pass).

The cache has fixed slots: ``slots`` rows of ``max_len`` positions, one sequence a slot (plus a
scratch row that padding rows of a captured batch write to). Fixed slots rather than paged blocks
because a class's requests are short and alike (inline completions, chats about one notebook):
on a GPU the slots for 64 sequences of the 2B model's full context take 9.7 GB, and a slot index
and a length per row is all the captured step and the attention kernels need; a slot is also what
an editor's session keeps between requests, so a keystroke prefills only what changed. Requests
that do not fit a slot (longer than ``max_len``) or that ask for drafted tokens (prompt lookup, a
batch-1 technique) run on their own cache through the single-sequence path, one pass per loop.

The loop works ahead by one step: step n + 1 runs on the GPU while the host reads step n's
tokens. Greedy rows feed their argmax back inside the captured step; sampled rows are sampled on
the GPU after it. So a sequence that stopped at step n has run one step too many; its extra keys
and values lie past its end, where nothing reads them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Any

import torch
from torch import Tensor

from .batch_passes import BatchedStep
from .decoding import sample
from .errors import PromptError
from .generation import GenerationResult, GenerationStream, StopStrings
from .model import KVCache
from .session import common_prefix
from .tokenizer import StreamDecoder

# What a consumer is given: a text piece, then the result; or an exception if the step failed.
Delivery = Callable[[Any], None]

GPU_SLOTS = 64
CPU_SLOTS = 4
MAX_USERS_REMEMBERED = 10_000
# A prompt part rides in the pass when its tokens times its end position stay under this: those rows
# read their slot up to their own position each (a 512-token prompt is well under a millisecond on
# an H200), where a long part is cheaper as a chunk of its own through the prefill attention.
FUSED_COST = 512 * 512


@dataclass
class SchedulerStats:
    """Counters for /health and /metrics (read without a lock: each is one attribute write)."""

    waiting: int = 0
    prefilling: int = 0
    running: int = 0  # rows of the batch
    solo: int = 0  # sequences on their own cache
    steps: int = 0
    tokens: int = 0  # generated, all sequences
    prefill_tokens: int = 0
    finished: dict[str, int] = field(default_factory=lambda: {"stop": 0, "length": 0, "cancelled": 0, "error": 0})


class _Sequence:
    """One request inside the scheduler, from admission to its result."""

    def __init__(self, model: Any, request: Any, session: str | None, user: str, deliver: Delivery):
        self.request, self.session, self.user, self.deliver = request, session, user, deliver
        self.prompt: list[int] = request.prompt
        self.decoder, self.stopper = StreamDecoder(model.tokenizer), StopStrings(request.stop_strings)
        self.generated: list[int] = []
        self.fed = 0  # generated tokens whose keys and values a launched step writes
        self.slot = -1
        self.start = 0  # prompt tokens reused from the session's cache
        self.prefilled = 0  # prompt tokens in the cache
        self.reason: str | None = None  # set once finished
        self.generator: torch.Generator | None = None
        params = request.params
        if params.seed is not None and not params.greedy:
            self.generator = torch.Generator(device=model.device).manual_seed(params.seed)
        self.solo: Any = None  # the single-sequence generator, for sequences that are not rows
        self.arrival = time.monotonic()

    @property
    def done(self) -> bool:
        return self.reason is not None

    @property
    def sampled(self) -> bool:
        return not self.request.params.greedy


class _Session:
    """An editor's slot between requests: the ids its cache holds, and the request using it, if any."""

    def __init__(self, slot: int):
        self.slot = slot
        self.ids: list[int] = []
        self.busy: _Sequence | None = None


class _Ready:
    """An event stand-in on the CPU, where everything has run by the time it is asked."""

    def synchronize(self) -> None:
        pass


class BatchScheduler:
    """Serves many generation requests on one model at once (see the module's doc).

    ``slots`` (sequences at once) and ``max_len`` (positions a slot holds) default to what fits: on
    a GPU up to 64 slots of the model's whole context, within half the memory free after loading;
    on the CPU 4 slots, whose pages are only taken as they are written. ``prefill_tokens`` bounds
    the prompt tokens prefilled between two decode steps (default 512 on a GPU, 128 on the CPU).
    """

    def __init__(self, model: Any, *, slots: int | None = None, max_len: int | None = None,
                 prefill_tokens: int | None = None):
        self.model = model
        self.device = model.device
        self.max_len = min(max_len or model.context_length, model.context_length)
        self.slots = slots or self._fitting_slots()
        if self.slots < 1 or self.max_len < 2:
            raise ValueError(f"slots and max_len must be positive, got {self.slots} and {self.max_len}")
        cpu = self.device.type == "cpu"
        self.prefill_tokens = prefill_tokens or (128 if cpu else 512)
        # Without the kernels a GPU gathers every row's whole slot: there only last tokens ride in a pass.
        self.fused_cost = FUSED_COST if cpu or model.model.bounded_slot_reads else 0
        with torch.inference_mode():
            self.cache = KVCache(model.config, self.slots + 1, self.max_len, model.dtype, self.device, zeroed=not cpu)
            self.step = BatchedStep(model, self.cache, self.slots, self.slots,
                                    capacity=self.slots + self.prefill_tokens)
        self._zeroed = [not cpu] * (self.slots + 1)
        self.stats = SchedulerStats()
        # Shared with submitters, under the lock:
        self._lock = threading.Lock()
        self._inbox: deque[_Sequence] = deque()
        self._wake = threading.Event()
        self._closed = False
        # The loop's own state (its thread only):
        self._waiting: OrderedDict[str, deque[_Sequence]] = OrderedDict()  # by user, in order of first arrival
        self._running_by_user: dict[str, int] = {}
        self._admitted: OrderedDict[str, int] = OrderedDict()  # user -> when last admitted
        self._admissions = itertools.count()
        self._prefilling: list[_Sequence] = []
        self._rows: list[_Sequence] = []
        self._solo: list[_Sequence] = []
        self._inflight: tuple[list[_Sequence], Tensor, Any] | None = None
        self._free = list(range(self.slots - 1, -1, -1))
        self._sessions: OrderedDict[str, _Session] = OrderedDict()  # least recently used first
        self._host = [self._host_buffer(self.slots) for _ in range(2)]
        self._flip = 0
        self._thread = threading.Thread(target=self._loop, name="tutor-batching", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ sizing

    def _slot_bytes(self) -> int:
        c = self.model.config
        return 2 * c.num_layers * c.num_kv_heads * c.head_dim * self.max_len * self.model.dtype.itemsize

    def _fitting_slots(self) -> int:
        if self.device.type != "cuda":
            return CPU_SLOTS
        free, _ = torch.cuda.mem_get_info(self.device)
        return max(1, min(GPU_SLOTS, free // 2 // self._slot_bytes()))

    def _host_buffer(self, n: int) -> Tensor:
        return torch.zeros(n, dtype=torch.long, pin_memory=self.device.type == "cuda")

    def _on_device(self, t: Tensor) -> Tensor:
        """``t`` on the device without waiting for it: a plain copy from pageable memory would wait
        for the step in flight, and the loop would no longer work ahead of the GPU."""
        if self.device.type != "cuda":
            return t
        return t.pin_memory().to(self.device, non_blocking=True)

    def _event(self) -> Any:
        if self.device.type != "cuda":
            return _Ready()
        event = torch.cuda.Event()
        event.record()
        return event

    def warm_up(self) -> None:
        """Capture (and compile) the batched pass for every bucket of rows now (a GPU only)."""
        with torch.inference_mode():  # the step's buffers were made in it (as the loop runs in it)
            for size in self.step.buckets:
                self.step.capture(size)

    # ------------------------------------------------------------------ public

    def submit(self, request: Any, *, session: str | None = None, user: str = "",
               deliver: Delivery | None = None) -> GenerationStream[GenerationResult] | None:
        """Queue a checked request (``CodeGemma._request``). Without ``deliver`` returns a stream of
        text pieces (its result at the end); with it, each piece, then the result (or an exception),
        is handed to ``deliver`` on the scheduler's thread, which must not block.

        ``session`` names an editor whose requests share a prefix: its slot keeps the cache between
        requests, and a newer request of the same session cancels an older one still running."""
        stream = None
        if deliver is None:
            queue: SimpleQueue = SimpleQueue()
            deliver = queue.put
            stream = GenerationStream(_from_queue(queue), request.cancel)
        seq = _Sequence(self.model, request, session, user, deliver)
        with self._lock:
            if self._closed:
                raise RuntimeError("the batch scheduler is closed")
            self._inbox.append(seq)
        self._wake.set()
        return stream

    def generate(self, prompt_ids: Sequence[int], *, session: str | None = None, user: str = "",
                 stream: bool = False, **options: Any) -> GenerationResult | GenerationStream[GenerationResult]:
        """Like :meth:`CodeGemma.generate` (same options), served in the batch."""
        request = self.model._request(prompt_ids, **options)
        streamed = self.submit(request, session=session, user=user)
        assert streamed is not None
        return streamed if stream else streamed.run()

    def close(self) -> None:
        """Stop the loop; requests still running end as cancelled."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout=60)

    # ------------------------------------------------------------------ the loop

    def _busy(self) -> bool:
        return bool(self._inbox or self._waiting or self._prefilling or self._rows or self._solo or self._inflight)

    def _loop(self) -> None:
        while True:
            if not self._busy():
                self._wake.wait()
            self._wake.clear()
            if self._closed:
                self._shut_down()
                return
            with torch.inference_mode():  # the step's buffers are inference tensors
                try:
                    self._iterate()
                except Exception as error:  # noqa: BLE001 - a failed step fails its requests, never the server
                    self._fail_all(error)

    def _iterate(self) -> None:
        self._take_inbox()
        self._retire()
        self._admit()
        joining, chunks = self._plan_prefill()
        launched = self._launch(joining) if self._rows or joining else None
        if self._inflight is not None:
            self._read(*self._inflight)
        self._inflight = launched
        self._prefill_chunks(chunks)
        self._advance_solo()
        self.stats.running, self.stats.prefilling, self.stats.solo = len(self._rows), len(self._prefilling), \
            len(self._solo)
        self.stats.waiting = sum(len(q) for q in self._waiting.values())

    # ------------------------------------------------------------------ admission

    def _take_inbox(self) -> None:
        with self._lock:
            new, self._inbox = list(self._inbox), deque()
        for seq in new:
            request = seq.request
            if len(seq.prompt) + request.max_new_tokens + request.draft_tokens > self.max_len or request.draft_tokens:
                seq.solo = self.model._pieces(request)  # its own cache, the single-sequence loops
                self._solo.append(seq)
                self._count(seq.user, +1)
                continue
            if seq.session is not None:
                owner = self._sessions.get(seq.session)
                if owner is not None and owner.busy is not None and not owner.busy.done:
                    owner.busy.request.cancel.set()  # a newer request from the same editor wins
            self._waiting.setdefault(seq.user, deque()).append(seq)

    def _count(self, user: str, change: int) -> None:
        self._running_by_user[user] = self._running_by_user.get(user, 0) + change
        if not self._running_by_user[user]:
            del self._running_by_user[user]

    def _admit(self) -> None:
        """Waiting requests into slots: each time the user with the fewest running sequences, then the
        one admitted least recently (round robin), then the one waiting longest; so one student's many
        requests cannot crowd out the others'."""
        while self._waiting:
            candidates = [(self._running_by_user.get(user, 0), self._admitted.get(user, -1), queue[0].arrival, user)
                          for user, queue in self._waiting.items()]
            placed = False
            for *_, user in sorted(candidates):
                queue = self._waiting[user]
                seq = queue[0]
                if seq.request.cancel.is_set():
                    queue.popleft()
                    self._finish_unstarted(seq)
                elif not self._place(seq):
                    continue
                else:
                    queue.popleft()
                    self._count(user, +1)
                    self._admitted[user] = next(self._admissions)
                    self._admitted.move_to_end(user)
                    if len(self._admitted) > MAX_USERS_REMEMBERED:
                        self._admitted.popitem(last=False)
                    self._prefilling.append(seq)
                if not queue:
                    del self._waiting[user]
                placed = True
                break
            if not placed:
                return

    def _place(self, seq: _Sequence) -> bool:
        """Give ``seq`` a slot: its session's (keeping the shared prefix) or a free one. False if none."""
        owner = self._sessions.get(seq.session) if seq.session is not None else None
        if owner is not None:
            if owner.busy is not None:
                return False  # the older request's slot is freed at the next retirement
            self._sessions.move_to_end(seq.session)
            keep = common_prefix(owner.ids, seq.prompt)
            seq.slot, seq.start = owner.slot, min(keep, len(seq.prompt) - 1)
            seq.prefilled = seq.start
            owner.busy = seq
            return True
        slot = self._free_slot()
        if slot is None:
            return False
        seq.slot = slot
        if seq.session is not None:
            owner = self._sessions[seq.session] = _Session(slot)
            owner.busy = seq
        return True

    def _free_slot(self) -> int | None:
        if not self._free:  # take the slot of the editor idle the longest
            idle = next((name for name, s in self._sessions.items() if s.busy is None), None)
            if idle is None:
                return None
            self._free.append(self._sessions.pop(idle).slot)
        slot = self._free.pop()
        if not self._zeroed[slot]:  # first use of never-written (CPU) memory: no NaN may hide there
            for t in self.cache.k + self.cache.v:
                t[slot].zero_()
            self._zeroed[slot] = True
        return slot

    # ------------------------------------------------------------------ prefill

    def _plan_prefill(self) -> tuple[list[_Sequence], list[tuple[_Sequence, int]]]:
        """This pass's prompt work, ``prefill_tokens`` at most: the sequences whose rest of prompt
        rides in the pass (they join the batch with it), and chunks of longer ones, each a pass of
        its own after it, that leave at least the last token for a later pass to carry."""
        budget = self.prefill_tokens
        joining: list[_Sequence] = []
        chunks: list[tuple[_Sequence, int]] = []
        for seq in list(self._prefilling):
            if budget <= 0:
                break
            if seq.request.cancel.is_set():
                self._prefilling.remove(seq)
                self._release(seq, "cancelled")
                continue
            rest = len(seq.prompt) - seq.prefilled
            if rest == 1 or (rest <= self.prefill_tokens and rest * len(seq.prompt) <= self.fused_cost):
                # Rides in this pass, or the next: cut, it would be a chunk launched op by op where
                # in the pass it costs about nothing.
                if rest <= budget:
                    joining.append(seq)
                    budget -= rest
            else:
                chunk = min(rest - 1, budget)
                chunks.append((seq, chunk))
                budget -= chunk
        self.stats.prefill_tokens += self.prefill_tokens - budget
        return joining, chunks

    def _prefill_chunks(self, chunks: list[tuple[_Sequence, int]]) -> None:
        for seq, chunk in chunks:
            ids = self._on_device(torch.tensor([seq.prompt[seq.prefilled:seq.prefilled + chunk]]))
            self.model.model.prefill(ids, self.cache.slot(seq.slot), start=seq.prefilled)
            seq.prefilled += chunk

    # ------------------------------------------------------------------ the batch

    def _launch(self, joining: list[_Sequence]) -> tuple[list[_Sequence], Tensor, Any]:
        """One pass over the rows and the rest of each joining sequence's prompt; the joining ones
        are rows from then on, their first token (the pass's pick at their last prompt token)
        already in place. Returns what ``_read`` takes once the device is done."""
        step, b, j = self.step, len(self._rows), len(joining)
        rests = [seq.prompt[seq.prefilled:] for seq in joining]
        n = b + sum(len(rest) for rest in rests)
        if joining:  # the prompts' rows after the running ones, in one copy (then on the device)
            lengths = torch.tensor([len(rest) for rest in rests])
            staged = self._on_device(torch.cat([
                torch.tensor([i for rest in rests for i in rest]),
                torch.tensor([seq.slot for seq in joining]).repeat_interleave(lengths),
                torch.cat([torch.arange(seq.prefilled, len(seq.prompt)) for seq in joining]),
                b + lengths.cumsum(0) - 1,  # each prompt's last row: its logits, its first token
                torch.tensor([seq.slot for seq in joining]),
                torch.tensor([len(seq.prompt) for seq in joining])]))
            t = n - b
            step.token[b:n, 0], step.slots[b:n], step.positions[b:n] = staged[:3 * t].view(3, t)
            step.picks[b:b + j] = staged[3 * t:3 * t + j]
        logits = step.run(n)
        for seq in self._rows:
            seq.fed += 1
        if joining:  # rows b..b+j-1 become the joining sequences; the prompt rows after them, padding
            step.slots[b:b + j], step.positions[b:b + j] = staged[3 * t + j:].view(2, j)
            step.slots[b + j:n] = self.slots
            step.picks[b:b + j] = torch.arange(b, b + j, device=self.device)
            for seq in joining:
                seq.prefilled = len(seq.prompt)
                self._prefilling.remove(seq)
            self._rows += joining
        sampled = [(i, seq) for i, seq in enumerate(self._rows) if seq.sampled]
        if sampled:
            with torch.inference_mode():
                for i, seq in sampled:
                    step.token[i, 0] = sample(logits[i:i + 1], seq.request.params, seq.generator)[0]
        rows = len(self._rows)
        host = self._host[self._flip][:rows]
        self._flip ^= 1
        host.copy_(step.token[:rows, 0], non_blocking=True)
        self.stats.steps += 1
        return list(self._rows), host, self._event()

    def _read(self, seqs: list[_Sequence], host: Tensor, ready: Any) -> None:
        """The tokens a step (or a prefill) made for ``seqs``, once the device has copied them over."""
        ready.synchronize()
        for seq, token in zip(seqs, host.tolist(), strict=True):
            if not seq.done:  # else the step ran once past its end: nothing to read
                self._accept(seq, token)

    def _accept(self, seq: _Sequence, token: int) -> None:
        """One new token of ``seq``: its text goes out; stop tokens, stop strings, the budget and a
        cancel end it."""
        request = seq.request
        if request.cancel.is_set():
            return self._end(seq, "cancelled")
        seq.generated.append(token)
        self.stats.tokens += 1
        if token in request.stop_ids:
            return self._end(seq, "stop")
        text, hit_stop = seq.stopper.feed(seq.decoder.push(token))
        if text:
            seq.deliver(text)
        if hit_stop:
            return self._end(seq, "stop")
        if len(seq.generated) >= request.max_new_tokens:
            return self._end(seq, "length")

    def _end(self, seq: _Sequence, reason: str) -> None:
        if reason != "stop":
            tail, hit_stop = seq.stopper.feed(seq.decoder.flush())
            tail += "" if hit_stop else seq.stopper.flush()
            reason = "stop" if hit_stop else reason
            if tail:
                seq.deliver(tail)
        seq.reason = reason
        self.stats.finished[reason] += 1
        seq.deliver(GenerationResult(text=seq.stopper.text, token_ids=seq.generated, finish_reason=reason,
                                     prompt_tokens=len(seq.prompt), completion_tokens=len(seq.generated),
                                     cached_tokens=seq.start, forward_passes=seq.fed))

    def _finish_unstarted(self, seq: _Sequence) -> None:
        seq.reason = "cancelled"
        self.stats.finished["cancelled"] += 1
        seq.deliver(GenerationResult(text="", token_ids=[], finish_reason="cancelled",
                                     prompt_tokens=len(seq.prompt), completion_tokens=0))

    def _retire(self) -> None:
        """Finished rows leave the batch (the last rows move into their places); their slots go back,
        or stay with their editor's session holding what the cache now holds."""
        for seq in self._rows:
            if not seq.done and seq.request.cancel.is_set():
                self._end(seq, "cancelled")
        if not any(seq.done for seq in self._rows):
            return
        keep = [i for i, seq in enumerate(self._rows) if not seq.done]
        old = len(self._rows)
        for seq in self._rows:
            if seq.done:
                self._release(seq, None)
        step = self.step
        if keep != list(range(len(keep))):
            index = self._on_device(torch.tensor(keep))
            for buffer in (step.token, step.slots, step.positions):
                buffer[:len(keep)] = buffer.index_select(0, index)
        step.slots[len(keep):old] = self.slots  # left rows point at the scratch slot, never at a reused one
        step.positions[len(keep):old] = 0
        self._rows = [self._rows[i] for i in keep]

    def _release(self, seq: _Sequence, reason: str | None) -> None:
        """Give back the slot of a sequence that ended (``reason`` given: it ends now, unstarted)."""
        if reason is not None and not seq.done:
            self._end(seq, reason)
        self._count(seq.user, -1)
        owner = self._sessions.get(seq.session) if seq.session is not None else None
        if owner is not None and owner.busy is seq:
            owner.busy = None
            owner.ids = seq.prompt[:seq.prefilled] + seq.generated[:seq.fed]
        else:
            self._free.append(seq.slot)

    # ------------------------------------------------------------------ single-sequence requests

    def _advance_solo(self) -> None:
        for seq in list(self._solo):
            try:
                if seq.request.cancel.is_set():
                    seq.solo.close()
                    raise StopIteration(None)
                seq.deliver(next(seq.solo))
                continue
            except StopIteration as stop:
                result = stop.value or GenerationResult("", [], "cancelled", len(seq.prompt), 0)
            except Exception as error:  # noqa: BLE001 - this request fails, not the others
                seq.deliver(error if isinstance(error, PromptError) else
                            RuntimeError(f"generation failed: {type(error).__name__}: {error}"))
                result = None
            self._solo.remove(seq)
            self._count(seq.user, -1)
            seq.reason = result.finish_reason if result else "error"
            self.stats.finished[seq.reason] += 1
            if result is not None:
                self.stats.tokens += result.completion_tokens
                seq.deliver(result)

    # ------------------------------------------------------------------ failure and shutdown

    def _everyone(self) -> Iterable[_Sequence]:
        yield from self._inbox
        for queue in self._waiting.values():
            yield from queue
        yield from self._prefilling
        yield from self._rows
        yield from self._solo

    def _fail_all(self, error: Exception) -> None:
        """A step raised (out of memory, say): every request in flight gets the error, the state starts
        over, and the loop goes on serving new requests."""
        with self._lock:
            everyone = {id(seq): seq for seq in self._everyone()}
            self._inbox.clear()
        for seq in everyone.values():
            if not seq.done:
                seq.reason = "error"
                self.stats.finished["error"] += 1
                seq.deliver(RuntimeError(f"generation failed: {type(error).__name__}: {error}"))
            if seq.solo is not None:
                seq.solo.close()
        self._waiting.clear()
        self._running_by_user.clear()
        self._prefilling, self._rows, self._solo = [], [], []
        self._inflight = None
        self._sessions.clear()
        self._free = list(range(self.slots - 1, -1, -1))
        self.step.reset()

    def _shut_down(self) -> None:
        for seq in list(self._everyone()):
            if not seq.done:
                seq.request.cancel.set()
                if seq.solo is not None:
                    seq.solo.close()
                if seq.generated:
                    self._end(seq, "cancelled")
                else:
                    self._finish_unstarted(seq)


def _from_queue(queue: SimpleQueue) -> Any:
    while True:
        item = queue.get()
        if isinstance(item, str):
            yield item
        elif isinstance(item, GenerationResult):
            return item
        else:
            raise item
