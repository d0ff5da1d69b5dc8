"""`tutor serve`: the subset of the OpenAI API that vLLM, llama.cpp and friends speak, over the local engine.

Endpoints: GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions, with
streaming by server-sent events. Scheduling: each served model has one FIFO queue and runs one
generation at a time (batch 1 is what the engine is fast at); a request that would make a queue
longer than ``max_queue`` gets 503 at once. A client that disconnects, or stops reading a
stream, has its generation cancelled, queued or running.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from tornado.iostream import StreamClosedError

from ..backends.base import MAX_DRAFT_TOKENS, BackendError, Completion, CompletionStream, GenerationOptions
from ..backends.local import LocalBackend

_DONE = object()


@dataclass
class ModelQueue:
    """One model's FIFO of generations: a single thread runs them in arrival order."""

    name: str
    role: str
    max_queue: int
    executor: ThreadPoolExecutor = field(init=False)
    pending: int = 0  # queued + running
    cancelled: int = 0

    def __post_init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"generate-{self.role}")


class ServerState:
    def __init__(self, backend: LocalBackend, token: str | None, max_queue: int):
        self.backend = backend
        self.token = token
        self.started = int(time.time())
        self.queues: dict[str, ModelQueue] = {}
        self.lock = threading.Lock()
        for role in ("completion", "chat"):
            source = backend.sources[role]
            if source and source not in self.queues:
                self.queues[source] = ModelQueue(source, role, max_queue)

    def queue_for(self, requested: str | None, default_role: str) -> ModelQueue:
        if requested:
            for q in self.queues.values():
                if requested in (q.name, q.name.rstrip("/").rsplit("/", 1)[-1]):
                    return q
            raise BackendError(f"The model '{requested}' does not exist. Served models: {', '.join(self.queues)}",
                               404, "model_not_found")
        for q in self.queues.values():
            if q.role == default_role:
                return q
        return next(iter(self.queues.values()))


def error_body(message: str, kind: str, status: int, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


class BaseHandler(tornado.web.RequestHandler):
    state: ServerState

    def initialize(self, state: ServerState) -> None:
        self.state = state
        self._stream: CompletionStream | None = None
        self._client_gone = threading.Event()

    def prepare(self) -> None:
        token = self.state.token
        if token and self.request.path != "/health":
            given = self.request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                self.fail(401, "Missing or wrong API key: send 'Authorization: Bearer <token>'.",
                          "authentication_error")

    def fail(self, status: int, message: str, kind: str, param: str | None = None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error_body(message, kind, status, param)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason if status_code != 500 else "internal error; see the server log"
        self.finish(json.dumps(error_body(reason, "server_error", status_code)))

    def on_connection_close(self) -> None:
        self._client_gone.set()
        if self._stream is not None:
            self._stream.cancel()


class HealthHandler(BaseHandler):
    def get(self) -> None:
        models = {}
        for q in self.state.queues.values():
            model = self.state.backend.model(q.role)  # loaded at start-up
            models[q.name] = {"role": q.role, "pending": q.pending, "cancelled": q.cancelled,
                              "device": str(model.device), "decode": model.decode_path}
        self.write({"status": "ok", "models": models})


class ModelsHandler(BaseHandler):
    def get(self) -> None:
        self.write({"object": "list", "data": [
            {"id": q.name, "object": "model", "created": self.state.started, "owned_by": "tutor"}
            for q in self.state.queues.values()]})


class GenerationHandler(BaseHandler):
    """Shared by both POST endpoints: parse, queue, run, stream or answer at once."""

    default_role = "completion"
    default_max_tokens = 16

    def parse(self, body: dict[str, Any]) -> tuple[ModelQueue, Callable[[ModelQueue], CompletionStream]]:
        raise NotImplementedError

    def chunk(self, rid: str, model: str, text: str | None, finish: str | None, first: bool) -> dict[str, Any]:
        raise NotImplementedError

    def final(self, rid: str, model: str, result: Completion) -> dict[str, Any]:
        raise NotImplementedError

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return self.fail(400, f"The request body is not valid JSON: {exc}", "invalid_request_error")
        if not isinstance(body, dict):
            return self.fail(400, "The request body must be a JSON object.", "invalid_request_error")
        try:
            queue, start = self.parse(body)
            with self.state.lock:
                if queue.pending >= queue.max_queue:
                    raise BackendError(f"The server is busy ({queue.pending} requests waiting for {queue.name}); "
                                       "try again shortly.", 503, "overloaded")
                queue.pending += 1
        except BackendError as exc:
            return self.fail(exc.status, str(exc), exc.kind, exc.param)
        try:
            await self.run(queue, start, body)
        finally:
            with self.state.lock:
                queue.pending -= 1

    async def run(self, queue: ModelQueue, start: Callable[[ModelQueue], CompletionStream], body: dict) -> None:
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        ready = loop.create_future()

        def produce() -> None:  # on the model's thread
            try:
                stream = start(queue)
            except BackendError as exc:
                loop.call_soon_threadsafe(ready.set_exception, exc)
                return
            loop.call_soon_threadsafe(ready.set_result, stream)
            if self._client_gone.is_set():  # left while waiting in the queue
                stream.cancel()
            try:
                for piece in stream:
                    loop.call_soon_threadsafe(items.put_nowait, piece)
                loop.call_soon_threadsafe(items.put_nowait, _DONE)
            except Exception as exc:  # surfaced to the client as a 500 / error event
                loop.call_soon_threadsafe(items.put_nowait, exc)
            finally:
                if stream.result is not None and stream.result.finish_reason == "cancelled":
                    queue.cancelled += 1

        loop.run_in_executor(queue.executor, produce)
        try:
            self._stream = await ready
        except BackendError as exc:
            return self.fail(exc.status, str(exc), exc.kind)
        rid = f"{'chatcmpl' if self.default_role == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        streaming = bool(body.get("stream"))
        if streaming:
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
        first = True
        while True:
            item = await items.get()
            if item is _DONE:
                break
            if isinstance(item, Exception):
                if streaming:
                    return await self._send(error_body(f"generation failed: {item}", "server_error", 500), end=True)
                return self.fail(500, f"generation failed: {item}", "server_error")
            if streaming and not await self._send(self.chunk(rid, queue.name, item, None, first)):
                return
            first = False
        result = self._stream.result
        assert result is not None
        if not streaming:
            self.write(self.final(rid, queue.name, result))
            return
        await self._send(self.chunk(rid, queue.name, None, result.finish_reason, first))
        if (body.get("stream_options") or {}).get("include_usage"):
            last = self.chunk(rid, queue.name, None, None, False)
            last["choices"] = []
            last["usage"] = usage(result)
            await self._send(last)
        await self._send(None, end=True)

    async def _send(self, event: dict[str, Any] | None, end: bool = False) -> bool:
        """Write one server-sent event; False (and the generation cancelled) if the client left."""
        try:
            # Small writes go out at once: with Nagle's algorithm on, each event after the first
            # waits for the client's delayed ACK (40 ms on Linux). Tornado turns it back off after.
            self.request.connection.stream.set_nodelay(True)
            self.write(f"data: {json.dumps(event)}\n\n" if event is not None else "data: [DONE]\n\n")
            await self.flush()
            if end:
                self.finish()
            return True
        except StreamClosedError:
            if self._stream is not None:
                self._stream.cancel()
            return False


def usage(result: Completion) -> dict[str, Any]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": result.cached_tokens},
            # named as in OpenAI's predicted outputs, the same idea: drafted tokens accepted or not
            "completion_tokens_details": {"accepted_prediction_tokens": result.accepted_draft_tokens,
                                          "rejected_prediction_tokens": result.rejected_draft_tokens}}


def invalid(param: str, why: str) -> BackendError:
    return BackendError(f"'{param}' {why}", 400, "invalid_request_error", param)


def options_from(body: dict[str, Any], default_max_tokens: int | None) -> GenerationOptions:
    for unsupported in ("suffix", "echo", "logprobs", "best_of"):
        if body.get(unsupported):
            hint = " Build fill-in-the-middle prompts client-side (tutor.prompts)." if unsupported == "suffix" else ""
            raise invalid(unsupported, f"is not supported by this server.{hint}")
    if body.get("n", 1) != 1:
        raise invalid("n", "must be 1")
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", default_max_tokens))
    if max_tokens is None:
        max_tokens = 1 << 20  # until a stop token or the end of the context
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("max_tokens", "must be a positive integer")
    temperature = body.get("temperature", 1.0)
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise invalid("temperature", "must be a number from 0 to 2")
    top_p = body.get("top_p")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise invalid("top_p", "must be a number in (0, 1]")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
        raise invalid("stop", "must be a string or a list of at most 4 strings")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise invalid("seed", "must be an integer")
    draft_tokens = body.get("draft_tokens", 0)
    if not isinstance(draft_tokens, int) or isinstance(draft_tokens, bool) or not 0 <= draft_tokens <= MAX_DRAFT_TOKENS:
        raise invalid("draft_tokens", f"must be an integer from 0 to {MAX_DRAFT_TOKENS} (tokens drafted from the "
                                      "prompt per forward pass, greedy only)")
    return GenerationOptions(max_tokens=max_tokens, temperature=float(temperature), top_p=top_p,
                             stop=tuple(stop), seed=seed, draft_tokens=draft_tokens)


class CompletionsHandler(GenerationHandler):
    def parse(self, body):
        queue = self.state.queue_for(body.get("model"), "completion")
        options = options_from(body, default_max_tokens=16)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]  # a batch of one
        is_ids = isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool)
                                                             for t in prompt)
        if not (isinstance(prompt, str) and prompt) and not is_ids:
            raise invalid("prompt", "must be a non-empty string or a list of token ids (one prompt per request)")
        stop_ids = body.get("stop_token_ids")
        if stop_ids is not None and (not isinstance(stop_ids, list) or not all(isinstance(t, int) for t in stop_ids)):
            raise invalid("stop_token_ids", "must be a list of token ids")
        session = body.get("session")
        if session is not None and (not isinstance(session, str) or not 0 < len(session) <= 200):
            raise invalid("session", "must be a short string naming the editor whose requests share a prefix")
        backend = self.state.backend
        return queue, lambda q: backend.complete(prompt, options, stop_token_ids=stop_ids, session=session,
                                                 role=q.role)

    def chunk(self, rid, model, text, finish, first):
        return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}]}

    def final(self, rid, model, result):
        return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "text": result.text, "logprobs": None,
                             "finish_reason": result.finish_reason}],
                "usage": usage(result)}


class ChatHandler(GenerationHandler):
    default_role = "chat"

    def parse(self, body):
        queue = self.state.queue_for(body.get("model"), "chat")
        options = options_from(body, default_max_tokens=None)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise invalid("messages", "must be a non-empty list of {role, content} objects")
        plain = [{"role": m.get("role"), "content": _text_content(m.get("content"))} for m in messages]
        if queue.role != "chat":
            raise BackendError(f"'{queue.name}' is a completion model; chat needs the instruction-tuned model "
                               "(start the server with --chat-model).", 400, "invalid_request_error")
        return queue, lambda q: self.state.backend.chat(plain, options)

    def chunk(self, rid, model, text, finish, first):
        delta: dict[str, str] = {"role": "assistant"} if first else {}
        if text:
            delta["content"] = text
        return {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def final(self, rid, model, result):
        return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                             "logprobs": None, "finish_reason": result.finish_reason}],
                "usage": usage(result)}


def _text_content(content: Any) -> Any:
    """OpenAI content may be a list of parts; only text parts mean anything to CodeGemma."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content


def make_app(backend: LocalBackend, *, token: str | None = None, max_queue: int = 16,
             grading: Any = None) -> tornado.web.Application:
    from .grading import routes as grading_routes  # grading.py builds on BaseHandler above

    state = ServerState(backend, token, max_queue)
    return tornado.web.Application([
        (r"/health", HealthHandler, {"state": state}),
        (r"/v1/models", ModelsHandler, {"state": state}),
        (r"/v1/completions", CompletionsHandler, {"state": state}),
        (r"/v1/chat/completions", ChatHandler, {"state": state}),
        *grading_routes(state, grading),
    ])
