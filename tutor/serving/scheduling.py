"""How `tutor serve` runs generations: all at once in a batch, or one at a time in a queue.

Both take a request the backend has already checked and tokenized (``Prepared``) and hand its
output to the event loop as a :class:`Generation`: text pieces, then a ``Completion`` (or an
exception). The batch is what a class needs on a GPU: one decode step serves every student at
about the cost of one. The queue is batch 1, what a CPU (or one student's model worker) is
fastest at: the CPU's one-token kernels read each weight once per token, for one sequence.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..backends.base import BackendError, Completion
from ..backends.local import LocalBackend, Prepared, completion_of
from ..engine.batching import BatchScheduler
from ..engine.generation import GenerationResult

Item = str | Completion | Exception


class _Mailbox:
    """Items for an event loop's generations, handed over in bursts: a batched step gives a piece
    to every running request at once, and waking the loop once per burst (one write to its wake-up
    pipe, one callback) rather than once per piece keeps the loop free for the sockets."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[Generation, Item]] = []

    def post(self, generation: Generation, item: Item) -> None:
        with self._lock:
            wake = not self._pending
            self._pending.append((generation, item))
        if wake:
            self._loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for generation, item in pending:
            generation._arrive(item)


_mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox] = weakref.WeakKeyDictionary()
_mailboxes_lock = threading.Lock()


def _mailbox(loop: asyncio.AbstractEventLoop) -> _Mailbox:
    with _mailboxes_lock:
        box = _mailboxes.get(loop)
        if box is None:
            box = _mailboxes[loop] = _Mailbox(loop)
        return box


class Generation:
    """One request's output on the event loop. ``put`` may be called from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, prepared: Prepared):
        self._loop, self._mailbox = loop, _mailbox(loop)
        self._items: deque[Item] = deque()  # the event loop's thread only, as is the waiter
        self._waiter: asyncio.Future[None] | None = None
        self._end_waiter: asyncio.Future[None] | None = None
        self.prepared = prepared
        self.started = False  # a piece or the end has come: the request is past the queue
        self.ended = False  # its last item (a Completion or an exception) has come

    def put(self, item: Item) -> None:
        self._mailbox.post(self, item)

    def _arrive(self, item: Item) -> None:
        self._items.append(item)
        if not isinstance(item, str):
            self.ended = True
            _release(self._end_waiter)
        _release(self._waiter)

    async def settle(self, seconds: float) -> None:
        """Let pieces pile up for ``seconds``, or until the generation ends (its end is never held)."""
        if self.ended or seconds <= 0:
            return
        self._end_waiter = waiter = self._loop.create_future()
        timer = self._loop.call_later(seconds, _release, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._end_waiter = None

    async def get(self) -> Item:
        while not self._items:
            self._waiter = self._loop.create_future()
            await self._waiter
        self.started = True
        return self._items.popleft()

    def ready(self) -> list[Item]:
        """The items that have come already, without waiting (a streaming reply that fell behind
        sends them as one event: fewer writes when the server is busiest)."""
        items = list(self._items)
        self._items.clear()
        return items

    def cancel(self) -> None:
        """Stop it, queued or running; it still ends with a Completion ("cancelled")."""
        self.prepared.request.cancel.set()


def _release(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Scheduler(ABC):
    """Runs one served model's generations; counts are read by /health and /metrics."""

    kind: str

    def __init__(self, backend: LocalBackend, model_name: str, role: str):
        self.backend, self.name, self.role = backend, model_name, role
        self.model = backend.model(role)
        self.cancelled = 0

    @abstractmethod
    def start(self, prepared: Prepared, loop: asyncio.AbstractEventLoop, *, session: str | None,
              user: str) -> Generation:
        """Queue ``prepared``; its output arrives on the returned Generation."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """{"waiting": ..., "running": ..., "tokens": generated so far}"""

    @property
    def device(self) -> str:
        """Where the model runs (for /health)."""
        return str(self.model.device)

    @property
    def process(self) -> str:
        """Which process runs the model (for /health): "the server's", or "its own" (engine_process)."""
        return "the server's"

    @property
    @abstractmethod
    def decode_path(self) -> str:
        """How a decode step runs (for /health)."""

    def warm_up(self) -> None:  # noqa: B027 - optional
        """Pay compile and capture times now, before the first request."""

    def close(self) -> None:  # noqa: B027 - optional
        pass

    def _ended(self, result: Completion) -> None:
        if result.finish_reason == "cancelled":
            self.cancelled += 1


class QueueScheduler(Scheduler):
    """Batch 1: a single thread runs the generations in arrival order."""

    kind = "fifo"

    def __init__(self, backend: LocalBackend, model_name: str, role: str):
        super().__init__(backend, model_name, role)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"generate-{role}")
        self._lock = threading.Lock()
        self._waiting = self._running = self._tokens = 0

    def start(self, prepared, loop, *, session, user):
        generation = Generation(loop, prepared)
        with self._lock:
            self._waiting += 1
        self._executor.submit(self._run, generation, session)
        return generation

    def _run(self, generation: Generation, session: str | None) -> None:
        with self._lock:
            self._waiting -= 1
            self._running += 1
        try:
            stream = self.backend._run(generation.prepared, session)
            for piece in stream:
                generation.put(piece)
            result = stream.result
            assert result is not None
            with self._lock:
                self._tokens += result.completion_tokens
            self._ended(result)
            generation.put(result)
        except Exception as exc:  # surfaced to the client as a 500 / an error event
            generation.put(exc)
        finally:
            with self._lock:
                self._running -= 1

    def counts(self):
        return {"waiting": self._waiting, "running": self._running, "tokens": self._tokens}

    @property
    def decode_path(self) -> str:
        return self.model.decode_path

    def warm_up(self) -> None:
        self.model.warm_up()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class BatchedScheduler(Scheduler):
    """Continuous batching (tutor.engine.batching): every running request advances each step."""

    kind = "batched"

    def __init__(self, backend: LocalBackend, model_name: str, role: str, *, slots: int | None = None,
                 slot_tokens: int | None = None):
        super().__init__(backend, model_name, role)
        self.batch = BatchScheduler(self.model, slots=slots, max_len=slot_tokens)
        self._submitted = self._ended_count = 0  # the scheduler's own counts lag its inbox by a pass

    def start(self, prepared, loop, *, session, user):
        generation = Generation(loop, prepared)
        self.submit(prepared, generation.put, session=session, user=user)
        return generation

    def submit(self, prepared: Prepared, put: Callable[[Item], None], *, session: str | None, user: str) -> None:
        """Queue ``prepared``; each of its items goes to ``put``, on the scheduler's thread (it must not block)."""
        source = prepared.source

        def deliver(item: Any) -> None:
            if isinstance(item, GenerationResult):
                item = completion_of(item, source)
                self._ended(item)
            if not isinstance(item, str):
                self._ended_count += 1
            put(item)

        try:
            self.batch.submit(prepared.request, session=session, user=user, deliver=deliver)
        except RuntimeError as exc:  # closed: the server is stopping
            raise BackendError(f"the server is shutting down: {exc}", 503, "overloaded") from exc
        self._submitted += 1

    def counts(self):
        stats = self.batch.stats
        running = stats.running + stats.solo
        return {"waiting": max(0, self._submitted - self._ended_count - running), "running": running,
                "tokens": stats.tokens}

    @property
    def decode_path(self) -> str:
        return f"batched {self.batch.slots} slots, {self.batch.step.path}"

    def warm_up(self) -> None:
        self.batch.warm_up()

    def close(self) -> None:
        self.batch.close()


def make_scheduler(kind: str, backend: LocalBackend, model_name: str, role: str, *, slots: int | None = None,
                   slot_tokens: int | None = None) -> Scheduler:
    """``kind`` "batched", "fifo", or "auto": batched on a GPU, the queue on a CPU (see the module's doc)."""
    if kind == "auto":
        kind = "batched" if backend.model(role).device.type == "cuda" else "fifo"
    if kind == "batched":
        return BatchedScheduler(backend, model_name, role, slots=slots, slot_tokens=slot_tokens)
    if kind == "fifo":
        return QueueScheduler(backend, model_name, role)
    raise ValueError(f"unknown scheduler {kind!r}: choose batched, fifo or auto")
