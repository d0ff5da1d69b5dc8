"""The batch in a process of its own: `tutor serve`'s models and their batch schedulers run in a
child process, the HTTP server in the parent.

Why: in one process the server's event loop (parsing requests, a socket write per streamed piece
for every student) and the batch's loop (launching each pass, reading its tokens) share one
interpreter lock. On the H200 the batch scheduler alone served 356 requests/s of 32 clients, and
behind HTTP in the same process 164: each loop waited for the other. Here each has a core.

The parent never loads a weight: the child checks and tokenizes each request (a 400 comes back as
the request's first item), runs it in the batch, and sends every item of every request over one
pipe, the items that piled up while it sent the last message in one message (after a pass, one per
pass rather than one per student). Everything that is about HTTP and the class stays in the
parent: tokens and the Hub, the per-user cap, the queue bound, /metrics.

Messages (pickled by multiprocessing's connection):
  parent -> child  ("start", rid, source, role, kind, args, session, user), ("cancel", rid), ("stop",)
  child -> parent  ("ready", {source: {"roles", "decode", "device"}}), ("failed", message),
                   ("items", [(rid, item), ...], {source: counts})
where an item is a text piece, a Completion, or ("error", status, kind, param, message).
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..backends.base import BackendError, GenerationOptions
from .scheduling import Generation, Item, Scheduler

# Seconds the child waits for more items before it sends the counts alone (/health, /metrics, the
# queue bound read them from the parent's copy).
COUNTS_EVERY_S = 0.5


@dataclass(frozen=True)
class EngineConfig:
    """What the child needs to build the models and their batches (sent to it when it starts)."""

    completion_model: str | None
    chat_model: str | None
    device: str | None = None
    dtype: str | None = None
    progress: str = "bar"  # tutor serve --progress: how the child shows its models' loading
    slots: int | None = None
    slot_tokens: int | None = None


@dataclass(frozen=True)
class Order:
    """A request as the parent knows it: what the child checks, tokenizes and runs."""

    role: str
    source: str
    kind: str  # "completion" or "chat"
    args: tuple[Any, ...]  # prepare_completion's (prompt, options, stop_token_ids), or prepare_chat's


class Orders:
    """Stands in for LocalBackend where the handlers prepare a request: the parent does not tokenize."""

    def __init__(self, sources: dict[str, str | None]):
        self.sources = sources

    def prepare_completion(self, prompt: Any, options: GenerationOptions, *, stop_token_ids: Any = None,
                           role: str = "completion") -> Order:
        return Order(role, str(self.sources[role]), "completion", (prompt, options, stop_token_ids))

    def prepare_chat(self, messages: Any, options: GenerationOptions) -> Order:
        return Order("chat", str(self.sources["chat"]), "chat", (messages, options))


class EngineProcess:
    """The child, the pipe to it, and a thread that hands its items to the event loop's generations."""

    def __init__(self, config: EngineConfig):
        context = multiprocessing.get_context("spawn")  # never fork a process that may hold CUDA
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_child_main, args=(child, config), name="tutor-engine", daemon=True)
        self._process.start()
        child.close()
        self.config = config
        self.info: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self._ids = itertools.count()
        self._live: dict[int, Generation] = {}  # the event loop's thread only
        self._send_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.gone: str | None = None  # why the child is gone, once it is
        self._closing = False

    def wait_ready(self) -> dict[str, dict[str, Any]]:
        """Block until the child has loaded and warmed its models (minutes, on a GPU); raises
        BackendError with the child's message if it could not."""
        try:
            message = self._conn.recv()
        except EOFError:
            message = ("failed", f"the model process exited with code {self._process.exitcode} while loading")
        if message[0] != "ready":
            self.close()
            raise BackendError(message[1], 503, "model_unavailable")
        self.info = message[1]
        return self.info

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start handing the child's items to generations on ``loop`` (the server's)."""
        self._loop = loop
        threading.Thread(target=self._read, name="tutor-engine-reader", daemon=True).start()

    def start(self, generation: Generation, order: Order, session: str | None, user: str) -> int:
        """Send ``order``; its items go to ``generation`` (on the event loop's thread, which this is)."""
        rid = next(self._ids)
        self._send(("start", rid, order.source, order.role, order.kind, order.args, session, user))
        self._live[rid] = generation  # no reply can be handed over before this returns: same thread
        return rid

    def cancel(self, rid: int) -> None:
        self._send(("cancel", rid))

    def _send(self, message: tuple) -> None:
        if self.gone:
            raise BackendError(self.gone, 503, "model_unavailable")
        with self._send_lock:
            try:
                self._conn.send(message)
            except (OSError, ValueError) as exc:
                raise BackendError(f"the model process is gone ({exc}); restart tutor serve", 503,
                                   "model_unavailable") from exc

    def _read(self) -> None:
        assert self._loop is not None
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                if self._closing:
                    return
                self._process.join(timeout=5)  # for its exit code
                self.gone = (f"the model process stopped (exit code {self._process.exitcode}); every request "
                             "fails until tutor serve is restarted")
                self._call(self._fail_all)
                return
            if message[0] == "items":
                self.counts = message[2]
                if message[1]:
                    self._call(self._hand_over, message[1])

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop has closed: the server is stopping
            pass

    def _hand_over(self, items: list[tuple[int, Any]]) -> None:
        for rid, item in items:
            generation = self._live.get(rid)
            if generation is None:
                continue
            if isinstance(item, tuple):  # an error, as sent
                _, status, kind, param, text = item
                item = BackendError(text, status, kind, param)
            if not isinstance(item, str):
                del self._live[rid]
            generation._arrive(item)

    def _fail_all(self) -> None:
        live, self._live = self._live, {}
        for generation in live.values():
            generation._arrive(BackendError(self.gone or "the model process stopped", 503, "model_unavailable"))

    def close(self) -> None:
        self._closing = True
        try:
            with self._send_lock:
                self._conn.send(("stop",))
        except (OSError, ValueError):
            pass
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=10)
        self._conn.close()


class RemoteGeneration(Generation):
    """A generation whose items come from the engine process; cancelling tells the child."""

    def __init__(self, loop: asyncio.AbstractEventLoop, order: Order, engine: EngineProcess,
                 on_end: Callable[[], None]):
        super().__init__(loop, order)  # type: ignore[arg-type]  # an Order stands for the Prepared
        self._engine, self._on_end = engine, on_end
        self.rid = -1
        self._finished = self._cancel_sent = False

    def _arrive(self, item: Item) -> None:
        if not isinstance(item, str) and not self._finished:
            self._finished = True
            self._on_end()
        super()._arrive(item)

    def cancel(self) -> None:
        if self._finished or self._cancel_sent or self.rid < 0:
            return
        self._cancel_sent = True
        try:
            self._engine.cancel(self.rid)
        except BackendError:
            pass  # the child is gone: nothing runs


class RemoteScheduler(Scheduler):
    """A served model's batch in the engine process, as the handlers see a scheduler."""

    kind = "batched"

    def __init__(self, engine: EngineProcess, model_name: str, role: str):  # no model in this process
        self.engine, self.name, self.role = engine, model_name, role
        self._submitted = self._ended_count = 0

    @property
    def cancelled(self) -> int:  # type: ignore[override]
        return self.engine.counts.get(self.name, {}).get("cancelled", 0)

    def start(self, prepared, loop, *, session, user):
        generation = RemoteGeneration(loop, prepared, self.engine, self._count_end)
        generation.rid = self.engine.start(generation, prepared, session, user)
        self._submitted += 1
        return generation

    def _count_end(self) -> None:
        self._ended_count += 1

    def counts(self) -> dict[str, int]:
        # Requests not ended are exact here; how many of them run is the child's count, sent with its
        # last message (it lags by up to COUNTS_EVERY_S), so it is capped by what is still live.
        theirs = self.engine.counts.get(self.name, {})
        live = self._submitted - self._ended_count
        running = min(live, theirs.get("running", 0))
        return {"waiting": live - running, "running": running, "tokens": theirs.get("tokens", 0)}

    @property
    def decode_path(self) -> str:
        return self.engine.info[self.name]["decode"]

    @property
    def process(self) -> str:
        return "its own"

    @property
    def device(self) -> str:
        return self.engine.info[self.name]["device"]

    def close(self) -> None:
        pass  # the engine process is closed once, by the server's state


# ---------------------------------------------------------------------- the child


def _child_main(conn: Any, config: EngineConfig) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the parent stops, then stops this child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ..backends.local import LocalBackend
    from ..backends.progress import TextBar, line_reporter
    from .scheduling import BatchedScheduler

    progress = {"bar": TextBar, "lines": line_reporter, "none": lambda: None}[config.progress]()
    backend = LocalBackend(config.completion_model, config.chat_model, device=config.device, dtype=config.dtype,
                           on_progress=progress)
    schedulers: dict[str, BatchedScheduler] = {}
    roles: dict[str, list[str]] = {}
    try:
        for role, source in backend.sources.items():
            if not source:
                continue
            backend.model(role)
            roles.setdefault(source, []).append(role)
            if source not in schedulers:
                schedulers[source] = BatchedScheduler(backend, source, role, slots=config.slots,
                                                      slot_tokens=config.slot_tokens)
        for source, scheduler in schedulers.items():
            backend.report_phase(roles[source][0], "warming up")
            scheduler.warm_up()
    except Exception as exc:  # noqa: BLE001 - told to the parent, which says it and exits
        conn.send(("failed", str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", {source: {"roles": roles[source], "decode": scheduler.decode_path,
                                  "device": scheduler.device} for source, scheduler in schedulers.items()}))
    outbox = _Outbox(conn, schedulers)
    cancels: dict[int, threading.Event] = {}
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if message[0] == "stop":
                return
            if message[0] == "cancel":
                event = cancels.get(message[1])
                if event is not None:
                    event.set()
                continue
            _, rid, source, role, kind, args, session, user = message
            try:
                if kind == "chat":
                    prepared = backend.prepare_chat(*args)
                else:
                    prompt, options, stop_token_ids = args
                    prepared = backend.prepare_completion(prompt, options, stop_token_ids=stop_token_ids, role=role)
                cancels[rid] = prepared.request.cancel

                def put(item: Item, rid: int = rid) -> None:
                    if not isinstance(item, str):
                        cancels.pop(rid, None)
                    outbox.post(rid, item)

                schedulers[source].submit(prepared, put, session=session, user=user)
            except Exception as exc:  # noqa: BLE001 - this request fails, not the others
                cancels.pop(rid, None)
                outbox.post(rid, exc)
    finally:
        for scheduler in schedulers.values():
            scheduler.close()
        outbox.close()


class _Outbox:
    """Items for the parent, sent by one thread: what piled up while it sent the last message goes
    in the next one, with the schedulers' counts."""

    def __init__(self, conn: Any, schedulers: dict[str, Scheduler]):
        self._conn, self._schedulers = conn, schedulers
        self._lock = threading.Lock()
        self._items: list[tuple[int, Any]] = []
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="tutor-engine-outbox", daemon=True)
        self._thread.start()

    def post(self, rid: int, item: Item) -> None:
        if isinstance(item, Exception):
            item = _wire_error(item)
        with self._lock:
            self._items.append((rid, item))
        self._wake.set()

    def _counts(self) -> dict[str, dict[str, int]]:
        return {source: {**s.counts(), "cancelled": s.cancelled} for source, s in self._schedulers.items()}

    def _run(self) -> None:
        last: dict[str, dict[str, int]] | None = None
        while not self._closed:
            self._wake.wait(COUNTS_EVERY_S)
            self._wake.clear()
            with self._lock:
                items, self._items = self._items, []
            counts = self._counts()
            if items or counts != last:
                try:
                    self._conn.send(("items", items, counts))
                except (OSError, ValueError):
                    return  # the parent is gone
                last = counts

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)


def _wire_error(error: Exception) -> tuple[str, int, str, str | None, str]:
    if isinstance(error, BackendError):
        return ("error", error.status, error.kind, error.param, str(error))
    return ("error", 500, "server_error", None, str(error) or type(error).__name__)


__all__ = ["EngineConfig", "EngineProcess", "Orders", "RemoteScheduler"]
