"""`tutor serve`: the subset of the OpenAI API that vLLM, llama.cpp and friends speak, over the local engine.

Endpoints: GET /health, GET /metrics (Prometheus), GET /v1/models, POST /v1/completions,
POST /v1/chat/completions, with streaming by server-sent events. Each served model has a scheduler
(tutor.serving.scheduling): the batch on a GPU, a queue on a CPU. A request gets 503 at once when
``max_queue`` requests already wait for its model, and 429 when its user already has
``max_per_user`` running. A client that disconnects, or stops reading a stream, has its generation
cancelled, queued or running.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tornado.web
from tornado.iostream import StreamClosedError

from ..backends.base import MAX_DRAFT_TOKENS, BackendError, Completion, GenerationOptions
from ..backends.local import LocalBackend, Prepared
from .access import HostCheck
from .engine_process import EngineProcess, Orders, RemoteScheduler
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics
from .scheduling import Generation, Item, Scheduler, make_scheduler
from .schema import MAX_BODY_BYTES, RequestSchemaError, parse_body, validate


@dataclass
class ServedModel:
    """One model folder the server serves, for one role or both (one copy of the weights)."""

    name: str
    roles: list[str]
    scheduler: Scheduler

    def short_names(self) -> tuple[str, str]:
        return self.name, self.name.rstrip("/").rsplit("/", 1)[-1]


class ServerState:
    hub: Any = None  # a tutor.serving.hub.HubGate under JupyterHub: the Hub authenticates each request

    def __init__(self, backend: LocalBackend, token: str | None, max_queue: int, *, scheduler: str = "auto",
                 max_per_user: int = 0, slots: int | None = None, slot_tokens: int | None = None,
                 hosts: HostCheck | None = None, engine: EngineProcess | None = None, stream_interval: float = 0.0):
        self.backend: LocalBackend | Orders = backend
        self.engine = engine  # the models' process, where they do not run in this one
        self.token = token
        self.hosts = hosts or HostCheck("127.0.0.1")
        self.max_queue = max_queue  # requests waiting to start, per model
        self.max_per_user = max_per_user  # requests at once, per user (0: no cap)
        self.stream_interval = stream_interval  # seconds at least between two streamed events of a request
        self.started = int(time.time())
        self.models: dict[str, ServedModel] = {}
        self.by_user: dict[str, int] = {}
        if engine is not None:
            self.backend = Orders(backend.sources)
            for source, info in engine.info.items():
                self.models[source] = ServedModel(source, list(info["roles"]),
                                                  RemoteScheduler(engine, source, info["roles"][0]))
        for role in ("completion", "chat") if engine is None else ():
            source = backend.sources[role]
            if not source:
                continue
            if source in self.models:
                self.models[source].roles.append(role)
            else:
                self.models[source] = ServedModel(source, [role], make_scheduler(
                    scheduler, backend, source, role, slots=slots, slot_tokens=slot_tokens))
        self.metrics = ServerMetrics(lambda: [m.scheduler for m in self.models.values()])

    def model_for(self, requested: str | None, role: str) -> ServedModel:
        if requested:
            for served in self.models.values():
                if requested in served.short_names():
                    return served
            raise BackendError(f"The model '{requested}' does not exist. Served models: {', '.join(self.models)}",
                               404, "model_not_found")
        for served in self.models.values():
            if role in served.roles:
                return served
        raise BackendError(f"This server has no {role} model; it serves {', '.join(self.models) or 'nothing'}. "
                           f"Ask its administrator to start it with "
                           f"{'--chat-model' if role == 'chat' else '--model'}.", 404, "model_not_found")

    def close(self) -> None:
        for served in self.models.values():
            served.scheduler.close()
        if self.engine is not None:
            self.engine.close()


def error_body(message: str, kind: str, status: int, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


@tornado.web.stream_request_body  # so that size, Host and token are checked before the body is read
class BaseHandler(tornado.web.RequestHandler):
    state: ServerState
    body_limit = MAX_BODY_BYTES  # bytes a request body may have on this endpoint
    open_to_all = False  # /health: no token asked

    def initialize(self, state: ServerState) -> None:
        self.state = state
        self._generation: Generation | None = None
        self._nodelay = False  # set on the connection at the first event
        self._client_gone = threading.Event()
        self._chunks: list[bytes] = []
        self._refused: tuple[int, str, str] | None = None

    async def prepare(self) -> None:
        headers = self.request.headers
        refusal = self._refusal_of(headers)
        length = headers.get("Content-Length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.body_limit):
            refusal = refusal or (413, f"The request body is too large ({length} bytes; at most "
                                       f"{self.body_limit}).", "invalid_request_error")
            return self.fail(*refusal)  # answered unread: the connection closes after
        has_body = bool(length and int(length)) or "chunked" in headers.get("Transfer-Encoding", "").lower()
        if refusal and has_body and hasattr(self, self.request.method.lower()):
            # Answered once the body has come (and been dropped, never kept): a server that closes
            # a connection with bytes unread resets it, and the client loses the answer.
            self._refused = refusal
        elif refusal:
            return self.fail(*refusal)
        elif self.state.hub is not None and not self.open_to_all:
            # After the size check: asking the Hub is the authentication work a huge body must not get.
            await self.state.hub.authenticate(self)  # tutor.serving.hub: sets self.user or answers 401/403
            if self._finished:
                return
        self.request.connection.set_max_body_size(self.body_limit)  # a chunked body is cut off there too

    def _refusal_of(self, headers: Any) -> tuple[int, str, str] | None:
        """403 for a foreign Host or Origin, 401 without the token: checked before any body is read."""
        refusal = self.state.hosts.refusal(headers.get("Host"), headers.get("Origin"))
        if refusal:
            return 403, refusal, "permission_error"
        token = self.state.token
        if token and self.state.hub is None and not self.open_to_all:
            given = headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return 401, "Missing or wrong API key: send 'Authorization: Bearer <token>'.", "authentication_error"
        return None

    def refused(self) -> bool:
        """Whether the request was refused (a body-taking method calls this first)."""
        if self._refused is not None:
            self.fail(*self._refused)
            return True
        return False

    def data_received(self, chunk: bytes) -> None:
        if self._refused is None and not self._finished:
            self._chunks.append(chunk)

    def body_bytes(self) -> bytes:
        return b"".join(self._chunks)

    def fail(self, status: int, message: str, kind: str, param: str | None = None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error_body(message, kind, status, param)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason if status_code != 500 else "internal error; see the server log"
        self.finish(json.dumps(error_body(reason, "server_error", status_code)))

    def on_connection_close(self) -> None:
        self._client_gone.set()
        if self._generation is not None:
            self._generation.cancel()


class NotFoundHandler(BaseHandler):
    """Any other path: an error body in the same format, so a client can show what went wrong."""

    def get(self) -> None:
        if not self.refused():
            self.fail(404, f"No endpoint {self.request.method} {self.request.path[:200]} here; this server has "
                      "GET /health, /metrics, /v1/models, POST /v1/completions, /v1/chat/completions.",
                      "not_found_error")

    post = put = patch = delete = get


class HealthHandler(BaseHandler):
    open_to_all = True

    def get(self) -> None:
        models = {}
        for served in self.state.models.values():
            scheduler = served.scheduler
            models[served.name] = {"roles": served.roles, "scheduler": scheduler.kind, **scheduler.counts(),
                                   "cancelled": scheduler.cancelled, "device": scheduler.device,
                                   "process": scheduler.process, "decode": scheduler.decode_path}
        gone = self.state.engine.gone if self.state.engine is not None else None
        if gone:  # an operator's probe restarts a server whose models' process died
            self.set_status(503)
        self.write({"status": "error", "error": gone, "models": models} if gone else {"status": "ok", "models": models})


class MetricsHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.write(self.state.metrics.render())


class ModelsHandler(BaseHandler):
    def get(self) -> None:
        self.write({"object": "list", "data": [
            {"id": served.name, "object": "model", "created": self.state.started, "owned_by": "tutor",
             "roles": served.roles}  # not OpenAI's: which endpoints take it (one folder may serve both)
            for served in self.state.models.values()]})


class GenerationHandler(BaseHandler):
    """Shared by both POST endpoints: parse, schedule, stream or answer at once."""

    default_role = "completion"
    endpoint = "completions"

    def parse(self, body: dict[str, Any]) -> tuple[ServedModel, Prepared, str | None]:
        """The model, the prepared request and its editor session, or a BackendError (a 4xx)."""
        raise NotImplementedError

    def chunk(self, rid: str, model: str, text: str | None, finish: str | None, first: bool) -> dict[str, Any]:
        raise NotImplementedError

    def final(self, rid: str, model: str, result: Completion) -> dict[str, Any]:
        raise NotImplementedError

    def requester(self, body: dict[str, Any]) -> str:
        """Who asks, for fairness and the per-user cap: the Hub's user where the Hub vouched for it;
        else the client's address with the OpenAI ``user`` field it declares (one class token and
        one notebook host for everyone: only the Hub makes the limit hold against a student)."""
        user = getattr(self, "user", None)
        if user and user not in ("token", "anonymous"):
            return f"hub:{user}"
        declared = body.get("user")
        declared = declared[:200] if isinstance(declared, str) else ""
        return f"{self.request.remote_ip}/{declared}"

    async def post(self) -> None:
        if self.refused():
            return
        arrived = time.monotonic()
        try:  # before anything is tokenized or queued: no request may fail where nobody answers it
            body = validate(parse_body(self.body_bytes()), self.endpoint)
        except RequestSchemaError as exc:
            return self.fail(400, str(exc), "invalid_request_error", exc.param)
        state = self.state
        user = self.requester(body)
        try:
            served, prepared, session = self.parse(body)
            scheduler = served.scheduler
            waiting = scheduler.counts()["waiting"]
            if waiting >= state.max_queue:
                raise BackendError(f"The server is busy ({waiting} requests waiting for {served.name}); "
                                   "try again shortly.", 503, "overloaded")
            mine = state.by_user.get(user, 0)
            if state.max_per_user and mine >= state.max_per_user:
                raise BackendError(f"You already have {mine} requests running on this server, its limit per "
                                   "student; wait for one to finish (or stop it) and try again.", 429,
                                   "rate_limit_exceeded")
            # An editor is a session of one requester: another student naming the same session can
            # neither cancel this one's completions nor take over its slot's cache.
            editor = None if session is None else f"{user}\n{session}"
            generation = scheduler.start(prepared, asyncio.get_running_loop(), session=editor, user=user)
        except BackendError as exc:
            if exc.status in (429, 503):
                state.metrics.requests.labels(self._model_label(body), self.endpoint, "rejected").inc()
            return self.fail(exc.status, str(exc), exc.kind, exc.param)
        state.by_user[user] = state.by_user.get(user, 0) + 1  # the event loop's thread only: no lock
        self._generation = generation
        if self._client_gone.is_set():
            generation.cancel()
        outcome = "error"
        try:
            outcome = await self.run(served, generation, body, arrived)
        finally:
            generation.cancel()  # a no-op once it has ended; else the client left or we failed
            left = state.by_user.pop(user) - 1
            if left:
                state.by_user[user] = left
            state.metrics.requests.labels(served.name, self.endpoint, outcome).inc()
            state.metrics.duration.labels(served.name).observe(time.monotonic() - arrived)

    def _model_label(self, body: dict[str, Any]) -> str:
        """A rejected request's model, without trusting the body's name (labels must stay few)."""
        named = body.get("model")
        for served in self.state.models.values():
            if named in served.short_names() or (not named and self.default_role in served.roles):
                return served.name
        return "unknown"

    async def run(self, served: ServedModel, generation: Generation, body: dict, arrived: float) -> str:
        """Stream or answer; returns the outcome for /metrics."""
        rid = f"{'chatcmpl' if self.default_role == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        streaming = bool(body.get("stream"))
        name = served.name
        if streaming:
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
        first = True
        later: list[Item] = []
        piece = self._piece_json(rid, name)
        interval, sent = self.state.stream_interval, 0.0
        while True:
            item = later.pop(0) if later else await generation.get()
            if isinstance(item, str) and streaming:
                if not first and interval:  # the next pieces go out together: far fewer writes for a class
                    await generation.settle(sent + interval - time.monotonic())
                later = generation.ready()
                while later and isinstance(later[0], str):
                    item += later.pop(0)
            if first:
                self.state.metrics.first_token.labels(name).observe(time.monotonic() - arrived)
            if isinstance(item, Exception):
                if isinstance(item, BackendError) and item.status < 500:
                    self.fail(item.status, str(item), item.kind, item.param)
                    return "error"
                if streaming and not first:
                    await self._send(json.dumps(error_body(f"generation failed: {item}", "server_error", 500)),
                                     end=True)
                else:
                    self.fail(500, f"generation failed: {item}", "server_error")
                return "error"
            if isinstance(item, Completion):
                break
            if streaming:
                event = json.dumps(self.chunk(rid, name, item, None, first)) if first else piece(item)
                if not await self._send(event):
                    return "cancelled"
                sent = time.monotonic()
            first = False
        result = item
        if not streaming:
            self.write(self.final(rid, name, result))
            return result.finish_reason
        await self._send(json.dumps(self.chunk(rid, name, None, result.finish_reason, first)))
        if (body.get("stream_options") or {}).get("include_usage"):
            last = self.chunk(rid, name, None, None, False)
            last["choices"] = []
            last["usage"] = usage(result)
            await self._send(json.dumps(last))
        await self._send(None, end=True)
        return result.finish_reason

    def _piece_json(self, rid: str, model: str) -> Callable[[str], str]:
        """A text piece's chunk as JSON, from a template made once per request: with a class
        streaming, building and encoding a whole chunk for every piece was the event loop's work."""
        marker = json.dumps("\0")
        before, after = json.dumps(self.chunk(rid, model, "\0", None, False)).split(marker)
        return lambda text: before + json.dumps(text) + after

    async def _send(self, event: str | None, end: bool = False) -> bool:
        """Write one server-sent event (its JSON); False (and the generation cancelled) if the client left."""
        try:
            if not self._nodelay:
                # Small writes go out at once: with Nagle's algorithm on, each event after the first
                # waits for the client's delayed ACK (40 ms on Linux). Tornado turns it back off after.
                self.request.connection.stream.set_nodelay(True)
                self._nodelay = True
            self.write(f"data: {event}\n\n" if event is not None else "data: [DONE]\n\n")
            await self.flush()
            if end:
                self.finish()
            return True
        except StreamClosedError:
            if self._generation is not None:
                self._generation.cancel()
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
        served = self.state.model_for(body.get("model"), "completion")
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
        role = "completion" if "completion" in served.roles else served.roles[0]
        return served, self.state.backend.prepare_completion(prompt, options, stop_token_ids=stop_ids,
                                                             role=role), session

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
    endpoint = "chat"

    def parse(self, body):
        served = self.state.model_for(body.get("model"), "chat")
        options = options_from(body, default_max_tokens=None)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise invalid("messages", "must be a non-empty list of {role, content} objects")
        plain = [{"role": m.get("role"), "content": _text_content(m.get("content"))} for m in messages]
        if "chat" not in served.roles:
            raise BackendError(f"'{served.name}' is served for completion only; chat needs the instruction-tuned "
                               f"model this server serves for chat{self._chat_model_hint()}.", 400,
                               "invalid_request_error", "model")
        return served, self.state.backend.prepare_chat(plain, options), None

    def _chat_model_hint(self) -> str:
        chat = [s.name for s in self.state.models.values() if "chat" in s.roles]
        return f": send \"model\": \"{chat[0]}\" (or no model)" if chat else \
            " (this server has none: its administrator starts it with --chat-model)"

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


def make_app(backend: LocalBackend, *, token: str | None = None, max_queue: int = 16, grading: Any = None,
             scheduler: str = "auto", max_per_user: int = 0, slots: int | None = None,
             slot_tokens: int | None = None, hub: Any = None, prefix: str = "/",
             hosts: HostCheck | None = None, engine: EngineProcess | None = None,
             stream_interval: float = 0.0) -> tornado.web.Application:
    """The server's application; ``app.settings["tutor_state"].close()`` stops its schedulers.

    As a JupyterHub service, ``hub`` (a tutor.serving.hub.HubGate) authenticates requests instead of
    ``token``, and every route sits under ``prefix`` (the Hub's proxy passes the whole path on).
    ``hosts`` is the Host/Origin allow-list (default: loopback names only). With ``engine`` (a
    started, ready tutor.serving.engine_process.EngineProcess) the models run there, not here.
    ``stream_interval``: seconds at least between two streamed events of one request after its first
    (the pieces that come meanwhile go out as one event; a request's end is never held)."""
    from .grading import routes as grading_routes  # grading.py builds on BaseHandler above

    state = ServerState(backend, token, max_queue, scheduler=scheduler, max_per_user=max_per_user, slots=slots,
                        slot_tokens=slot_tokens, hosts=hosts, engine=engine, stream_interval=stream_interval)
    state.hub = hub
    routes = [
        (r"/health", HealthHandler, {"state": state}),
        (r"/metrics", MetricsHandler, {"state": state}),
        (r"/v1/models", ModelsHandler, {"state": state}),
        (r"/v1/completions", CompletionsHandler, {"state": state}),
        (r"/v1/chat/completions", ChatHandler, {"state": state}),
        *grading_routes(state, grading),
    ]
    if prefix != "/":
        routes = [(re.escape(prefix.rstrip("/")) + route[0], *route[1:]) for route in routes]
    return tornado.web.Application(routes, tutor_state=state, default_handler_class=NotFoundHandler,
                                   default_handler_args={"state": state})
