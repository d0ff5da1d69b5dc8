"""An OpenAI-compatible HTTP server: `tutor serve`, vLLM, llama.cpp's server, Ollama, TGI.

Streams by server-sent events over httpx. Prompts are built here, on the client, and the backend
adapts to what the server turns out to be, without the user saying so:
- with a tokenizer at hand (a local tokenizer.model) fill-in-the-middle prompts go as token ids;
  a server that refuses them (llama-cpp-python, Ollama) gets text from then on;
- text prompts go with the student's text neutralized (see tutor.prompts.render_text), because
  these servers read special-piece strings in text, and without `<bos>`: servers put it in front
  of a text prompt themselves (asked where they can say: llama-cpp-python's and llama.cpp's
  tokenize endpoints), and a second one changes what the model writes;
- system messages are folded into the first user turn (Gemma has no system role: servers drop
  them or refuse them), so the teacher's rules always reach the model;
- penalties are sent neutral, so that temperature 0 is greedy on servers whose defaults are not;
- model names come from `/v1/models` when none is set or a local folder is;
- token counts come from the tokenizer when the server sends no usage.
"""

from __future__ import annotations

import getpass
import json
import os
import threading
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any

import httpx

from ..engine.errors import TutorError
from ..engine.generation import GenerationStream
from ..engine.names import IT_NAME as _IT_NAME
from ..engine.tokenizer import BOS, FILE_SEPARATOR, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, Tokenizer
from ..prompts import (
    ContextFile,
    Segment,
    Special,
    chat_prompt,
    fim_segments,
    fim_stop_ids,
    fold_system,
    neutralize,
    render_ids,
    render_text,
)
from ..settings import hub_token
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
        # What the server turned out to be, learned on first use: does it take token-id prompts,
        # does it put <bos> in front of a text prompt itself. None: not known yet.
        self.takes_token_ids: bool | None = None
        self.adds_bos: bool | None = None
        # On a Hub, a `tutor serve --hub` service takes the student's own Hub token (tutor.settings.hub_token).
        token = token or hub_token(self.endpoint)
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
        prompt_tokens = None
        if self.tokenizer is not None:  # for servers that send no usage
            prompt_tokens = len(self.tokenizer.encode_raw_prompt(prompt) if isinstance(prompt, str) else prompt)
        return self._stream("completions", "completion", body, options, prompt_tokens)

    def fill_in_middle(self, prefix: str, suffix: str, options: GenerationOptions = DEFAULT_OPTIONS, *,
                       files: Sequence[ContextFile] = (), path: str | None = None,
                       session: str | None = None) -> CompletionStream:
        segments = fim_segments(prefix, suffix, files=files, path=path)
        # As text, the markers that end a completion go as stop strings too: a server that takes
        # no stop_token_ids (llama.cpp's) writes them out as text and goes on. At most 4 (OpenAI's
        # limit), the caller's own first.
        as_text = replace(options, stop=(*options.stop, *(s for s in _FIM_STOPS if s not in options.stop))[:4])
        if self.tokenizer is None:
            return self.complete(self._text_prompt(segments), as_text, session=session)
        ids, stops = render_ids(self.tokenizer, segments), fim_stop_ids(self.tokenizer)
        if self.takes_token_ids is not False:
            try:
                stream = self.complete(ids, options, stop_token_ids=stops, session=session)
            except BackendError as exc:
                if exc.status not in _MAYBE_NO_IDS:
                    raise
                # Perhaps a server that takes text only (llama-cpp-python answers 500, "Input
                # should be a valid string"): try the same prompt as text, and remember if that works.
                stream = self.complete(self._text_prompt(segments), as_text, stop_token_ids=stops, session=session)
                self.takes_token_ids = False
                return stream
            self.takes_token_ids = True
            return stream
        return self.complete(self._text_prompt(segments), as_text, stop_token_ids=stops, session=session)

    def chat(self, messages: Sequence[Message], options: GenerationOptions = DEFAULT_OPTIONS) -> CompletionStream:
        # Every model the tutor runs is a Gemma, which has no system role: servers drop a system
        # message (llama-cpp-python's gemma format) or refuse it (Gemma's own chat template), so it
        # is folded into the first user turn here, as tutor.prompts.chat_prompt does.
        folded = fold_system(messages)
        plain = [{"role": m["role"], "content": neutralize(m["content"])} for m in folded]
        prompt_tokens = None
        if self.tokenizer is not None:
            try:
                prompt_tokens = len(chat_prompt(self.tokenizer, folded))
            except TutorError:
                pass  # the server judges the turns itself
        return self._stream("chat/completions", "chat", {"messages": plain}, options, prompt_tokens)

    def models(self) -> list[str]:
        data = self._json(self._request("GET", "models"))
        return [m["id"] for m in data.get("data", [])]

    # ------------------------------------------------------------------ what the server is

    def _text_prompt(self, segments: Sequence[Segment]) -> str:
        """The prompt as text, without its leading <bos> when the server puts one in front itself."""
        if segments[:1] == [Special(BOS)] and self._server_adds_bos():
            segments = segments[1:]
        return render_text(segments)

    def _server_adds_bos(self) -> bool:
        """Whether the server puts <bos> in front of a text prompt. Asked once, where the server has
        a tokenize endpoint that tokenizes as its completions do (llama-cpp-python's
        /extras/tokenize, llama.cpp's /tokenize); else the rule every server we know follows (tutor
        serve, vLLM, llama.cpp, Ollama: the model's tokenizer adds it), which is yes."""
        if self.adds_bos is None:
            self.adds_bos = True
            root = self.endpoint.removesuffix("/v1")
            for path, body in ((f"{root}/extras/tokenize", {"input": BOS}),
                               (f"{root}/tokenize", {"content": BOS, "add_special": True, "parse_special": True})):
                try:
                    response = self._client.post(path, json=body, timeout=10.0)
                    tokens = response.json().get("tokens") if response.status_code == 200 else None
                except (httpx.HTTPError, ValueError, AttributeError):
                    continue
                if isinstance(tokens, list) and tokens and all(isinstance(t, int) for t in tokens):
                    # "<bos>" read as the control token: [bos] if the server adds none, [bos, bos] if it does.
                    if len(tokens) == 1:
                        self.adds_bos = False
                    break
        return self.adds_bos

    # ------------------------------------------------------------------ HTTP

    def _model_name(self, role: str) -> str:
        asked = self.names[role]
        if not asked or _is_local_path(asked):
            # Unnamed, or a local folder (there for its tokenizer, not a name the server knows):
            # a name the server lists. Instruction-tuned models ("...-it") chat, the others complete;
            # among those, one that carries the folder's name if there is one.
            served = self.models()
            if not served:
                raise BackendError(f"{self.endpoint} serves no models.", 503, "model_unavailable")
            fitting = [m for m in served if bool(_IT_NAME.search(m)) == (role == "chat")] or served
            if asked:
                folder = os.path.basename(os.path.normpath(os.path.expanduser(asked))).lower()
                fitting = [m for m in fitting if folder in m.lower()] or fitting
            self.names[role] = asked = fitting[0]
        return str(asked)

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

    def _stream(self, path: str, role: str, body: dict[str, Any], options: GenerationOptions,
                prompt_tokens: int | None = None) -> CompletionStream:
        body = {**body, "model": self._model_name(role), "max_tokens": options.max_tokens,
                "temperature": options.temperature, "stream": True, "stream_options": {"include_usage": True},
                # Neutral, so that temperature 0 is greedy everywhere: llama.cpp's servers apply a
                # repeat penalty of 1.1 unless told otherwise (vLLM and tutor serve ignore the field).
                "repeat_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0,
                # OpenAI's end-user field: a shared server's fairness and per-student cap (the Hub's
                # user name where there is one; a class token alone cannot tell students apart).
                "user": _end_user()}
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
        counts = _Counts(self.tokenizer, prompt_tokens)
        return GenerationStream(_events(response, cancel, body["model"], chat=role == "chat", counts=counts), cancel)


_FIM_STOPS = (FILE_SEPARATOR, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)
# Statuses with which a server may be refusing a token-id prompt (validation: 400, 422; llama-cpp-python: 500).
_MAYBE_NO_IDS = (400, 422, 500)


def _is_local_path(name: str) -> bool:
    """A model setting that names a folder on this machine rather than a served model."""
    return os.path.isabs(name) or name.startswith(("./", "../", "~")) or os.path.isdir(name)


class _Counts:
    """Token counts for a server that sends no usage: the prompt's as sent, the reply's re-encoded."""

    def __init__(self, tokenizer: Tokenizer | None, prompt_tokens: int | None):
        self.tokenizer, self.prompt_tokens = tokenizer, prompt_tokens

    def completion_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text)) if self.tokenizer is not None and text else 0


def _events(response: httpx.Response, cancel: threading.Event, model: str, chat: bool, counts: _Counts
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
    reply = "".join(text)
    if "prompt_tokens" in usage:
        prompt_tokens, completion_tokens = usage["prompt_tokens"], usage.get("completion_tokens", 0)
    else:  # no usage (llama-cpp-python streams none): count with the tokenizer, where there is one
        prompt_tokens, completion_tokens = counts.prompt_tokens or 0, counts.completion_tokens(reply)
    return Completion(reply, finish, prompt_tokens, completion_tokens, model,
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


def _end_user() -> str:
    try:
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (some containers)
        return ""
