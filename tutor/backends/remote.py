"""An OpenAI-compatible HTTP server: `tutor serve`, vLLM, llama.cpp's server, Ollama, TGI.

Streams by server-sent events over httpx. Prompts are built here, on the client: with a
tokenizer at hand (a local tokenizer.model) fill-in-the-middle prompts go as token ids, which
every serious server accepts; without one they go as text with the student's text neutralized
(see tutor.prompts.render_text), because these servers read special-piece strings in text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Sequence
from typing import Any

import httpx

from ..engine.config import IT_NAME as _IT_NAME
from ..engine.generation import GenerationStream
from ..engine.tokenizer import Tokenizer
from ..prompts import ContextFile, fim_segments, fim_stop_ids, neutralize, render_ids, render_text
from .base import (
    DEFAULT_OPTIONS,
    Backend,
    BackendError,
    Completion,
    CompletionStream,
    GenerationOptions,
    Message,
)


class RemoteBackend(Backend):
    def __init__(self, endpoint: str, token: str | None = None, *, completion_model: str | None = None,
                 chat_model: str | None = None, tokenizer: Tokenizer | None = None, timeout: float = 300.0):
        self.endpoint = endpoint.rstrip("/")
        if not self.endpoint.endswith("/v1"):
            self.endpoint += "/v1"
        self.names = {"completion": completion_model, "chat": chat_model}
        self.tokenizer = tokenizer
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Reading may pause for long (a queue, a slow first token); connecting should not.
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=10.0))

    def describe(self) -> str:
        return f"OpenAI-compatible server at {self.endpoint}"

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ the interface

    def complete(self, prompt: str | Sequence[int], options: GenerationOptions = DEFAULT_OPTIONS, *,
                 stop_token_ids: Sequence[int] | None = None, session: str | None = None) -> CompletionStream:
        body: dict[str, Any] = {"prompt": prompt if isinstance(prompt, str) else list(prompt)}
        if stop_token_ids is not None:
            body["stop_token_ids"] = list(stop_token_ids)  # vLLM's and tutor serve's extension
        if session is not None:
            body["session"] = session  # tutor serve's extension (prefix reuse); sent only when asked for
        return self._stream("completions", "completion", body, options)

    def fill_in_middle(self, prefix: str, suffix: str, options: GenerationOptions = DEFAULT_OPTIONS, *,
                       files: Sequence[ContextFile] = (), path: str | None = None,
                       session: str | None = None) -> CompletionStream:
        segments = fim_segments(prefix, suffix, files=files, path=path)
        if self.tokenizer is not None:
            return self.complete(render_ids(self.tokenizer, segments), options,
                                 stop_token_ids=fim_stop_ids(self.tokenizer), session=session)
        return self.complete(render_text(segments), options, session=session)

    def chat(self, messages: Sequence[Message], options: GenerationOptions = DEFAULT_OPTIONS) -> CompletionStream:
        plain = [{"role": m["role"], "content": neutralize(m["content"])} for m in messages]
        return self._stream("chat/completions", "chat", {"messages": plain}, options)

    def models(self) -> list[str]:
        data = self._json(self._request("GET", "models"))
        return [m["id"] for m in data.get("data", [])]

    # ------------------------------------------------------------------ HTTP

    def _model_name(self, role: str) -> str:
        if not self.names[role]:
            served = self.models()
            if not served:
                raise BackendError(f"{self.endpoint} serves no models.", 503, "model_unavailable")
            # Unnamed: instruction-tuned models ("...-it") chat, the others complete.
            fitting = [m for m in served if bool(_IT_NAME.search(m)) == (role == "chat")]
            self.names[role] = (fitting or served)[0]
        return str(self.names[role])

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                 stream: bool = False) -> httpx.Response:
        url = f"{self.endpoint}/{path}"
        try:
            request = self._client.build_request(method, url, json=body)
            response = self._client.send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot reach the model server at {self.endpoint} ({exc.__class__.__name__}: "
                               f"{exc}). Check TUTOR_ENDPOINT and that the server is running.", 503,
                               "unreachable") from exc
        if response.status_code >= 400:
            response.read()
            response.close()
            raise _error_from(response)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            return response.json()
        except ValueError as exc:
            raise BackendError(f"the model server answered something that is not JSON: {response.text[:200]!r}",
                               502, "bad_gateway") from exc

    def _stream(self, path: str, role: str, body: dict[str, Any], options: GenerationOptions) -> CompletionStream:
        body = {**body, "model": self._model_name(role), "max_tokens": options.max_tokens,
                "temperature": options.temperature, "stream": True, "stream_options": {"include_usage": True}}
        if options.top_p is not None:
            body["top_p"] = options.top_p
        if options.stop:
            body["stop"] = list(options.stop)
        if options.seed is not None:
            body["seed"] = options.seed
        if options.draft_tokens and not options.temperature:
            body["draft_tokens"] = options.draft_tokens  # tutor serve's extension (prompt lookup)
        response = self._request("POST", path, body, stream=True)
        cancel = threading.Event()
        return GenerationStream(_events(response, cancel, body["model"], chat=role == "chat"), cancel)


def _events(response: httpx.Response, cancel: threading.Event, model: str, chat: bool
            ) -> Generator[str, None, Completion]:
    text, finish, usage = [], "length", {}
    try:
        for line in response.iter_lines():
            if cancel.is_set():
                finish = "cancelled"
                break
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                err = event["error"]
                raise BackendError(f"the model server failed: {err.get('message', err)}", 502, "server_error")
            usage = event.get("usage") or usage
            for choice in event.get("choices", []):
                piece = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                if piece:
                    text.append(piece)
                    yield piece
                finish = choice.get("finish_reason") or finish
    except httpx.HTTPError as exc:
        raise BackendError(f"the connection to the model server broke ({exc.__class__.__name__}).", 503,
                           "unreachable") from exc
    finally:
        response.close()  # stops the server's generation when we stop early
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    drafts = usage.get("completion_tokens_details") or {}
    return Completion("".join(text), finish, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), model,
                      cached_tokens=cached, accepted_draft_tokens=drafts.get("accepted_prediction_tokens", 0),
                      rejected_draft_tokens=drafts.get("rejected_prediction_tokens", 0))


def _error_from(response: httpx.Response) -> BackendError:
    try:
        err = response.json().get("error") or {}
        message, kind = err.get("message") or response.text, err.get("type") or "server_error"
    except (ValueError, AttributeError):
        message, kind = response.text[:300] or response.reason_phrase, "server_error"
    return BackendError(f"the model server refused the request ({response.status_code}): {message}",
                        response.status_code, kind)
