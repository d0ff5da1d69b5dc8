"""The engine in this process. Models load on first use, once, and are shared by all callers."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from ..engine import CheckpointError, CodeGemma, CompletionSession, PromptError, load
from ..engine.codegemma import Request
from ..engine.generation import GenerationResult, GenerationStream
from ..engine.progress import LoadProgress
from ..prompts import ContextFile, chat_prompt, chat_stop_ids, fim_prompt, fim_stop_ids
from .base import (
    DEFAULT_OPTIONS,
    Backend,
    BackendError,
    Completion,
    CompletionStream,
    GenerationOptions,
    Message,
    NotConfigured,
)
from .progress import Loading, LoadingCallback

# Completion sessions keep one KV cache each (one per editor, for prefix reuse); beyond this many
# the least recently used is dropped.
MAX_SESSIONS = 16


class LocalBackend(Backend):
    def __init__(self, completion_model: str | None = None, chat_model: str | None = None, *,
                 device: str | None = None, dtype: str | None = None, on_progress: LoadingCallback | None = None):
        """``on_progress`` is told how each model's load goes (see tutor.backends.progress)."""
        self.sources = {"completion": completion_model, "chat": chat_model}
        self.device, self.dtype = device, dtype
        self.on_progress = on_progress
        self._loading: Loading | None = None  # the latest event
        self._loaded: dict[str, LoadProgress] = {}  # each role's latest
        self._models: dict[str, CodeGemma] = {}  # by source, so one folder serving both roles loads once
        self._sessions: OrderedDict[tuple[str, str], CompletionSession] = OrderedDict()
        self._lock = threading.Lock()

    def describe(self) -> str:
        roles = ", ".join(f"{role}: {src or 'not configured'}" for role, src in self.sources.items())
        return f"local engine in this process ({roles})"

    def model(self, role: str) -> CodeGemma:
        """The model for "completion" or "chat", loading it on first use."""
        source = self.sources[role]
        if not source:
            raise NotConfigured(role)
        with self._lock:
            if source not in self._models:
                try:
                    self._models[source] = load(source, device=self.device, dtype=self.dtype,
                                                progress=lambda p: self.report(Loading(role, p)))
                except CheckpointError as exc:
                    raise BackendError(str(exc), status=503, kind="model_unavailable") from exc
            return self._models[source]

    def report(self, loading: Loading) -> None:
        self._loading, self._loaded[loading.role] = loading, loading.progress
        if self.on_progress is not None:
            self.on_progress(loading)

    def report_phase(self, role: str, phase: str) -> None:
        """A step after the engine's load (``tutor serve``'s warm-up), at the last load's bytes."""
        last = self._loaded.get(role) or LoadProgress(str(self.sources[role]), phase, 0, 0)
        self.report(Loading(role, LoadProgress(last.model, phase, last.done, last.total)))

    def load_progress(self) -> Loading | None:
        return self._loading

    def complete(self, prompt: str | Sequence[int], options: GenerationOptions = DEFAULT_OPTIONS, *,
                 stop_token_ids: Sequence[int] | None = None, session: str | None = None,
                 role: str = "completion") -> CompletionStream:
        """As Backend.complete; ``role="chat"`` continues a raw prompt with the chat model instead."""
        return self._run(self.prepare_completion(prompt, options, stop_token_ids=stop_token_ids, role=role), session)

    def fill_in_middle(self, prefix: str, suffix: str, options: GenerationOptions = DEFAULT_OPTIONS, *,
                       files: Sequence[ContextFile] = (), path: str | None = None,
                       session: str | None = None) -> CompletionStream:
        model = self.model("completion")
        ids = fim_prompt(model.tokenizer, prefix, suffix, files=files, path=path)
        return self._run(self._prepared(model, "completion", ids, options, fim_stop_ids(model.tokenizer)), session)

    def chat(self, messages: Sequence[Message], options: GenerationOptions = DEFAULT_OPTIONS) -> CompletionStream:
        return self._run(self.prepare_chat(messages, options))

    # A prepared request is checked and tokenized but not started: `tutor serve` hands it to its
    # scheduler (the batch, or a queue) instead of running it here.

    def prepare_completion(self, prompt: str | Sequence[int], options: GenerationOptions = DEFAULT_OPTIONS, *,
                           stop_token_ids: Sequence[int] | None = None, role: str = "completion") -> Prepared:
        model = self.model(role)
        tok = model.tokenizer
        ids = tok.encode_raw_prompt(prompt) if isinstance(prompt, str) else list(prompt)
        if stop_token_ids is None:
            stop_token_ids = fim_stop_ids(tok) if role == "completion" else chat_stop_ids(tok)
        return self._prepared(model, role, ids, options, stop_token_ids)

    def prepare_chat(self, messages: Sequence[Message], options: GenerationOptions = DEFAULT_OPTIONS) -> Prepared:
        model = self.model("chat")
        try:
            ids = chat_prompt(model.tokenizer, messages)
        except PromptError as exc:
            raise BackendError(str(exc), 400, "invalid_request_error") from exc
        return self._prepared(model, "chat", ids, options, chat_stop_ids(model.tokenizer))

    def _prepared(self, model: CodeGemma, role: str, ids: list[int], options: GenerationOptions,
                  stop_token_ids: Sequence[int]) -> Prepared:
        try:
            request = model._request(ids, max_new_tokens=options.max_tokens, temperature=options.temperature,
                                     top_p=options.top_p, seed=options.seed, stop_token_ids=stop_token_ids,
                                     stop_strings=options.stop,
                                     draft_tokens=options.draft_tokens if not options.temperature else 0)
        except (PromptError, ValueError) as exc:
            raise BackendError(str(exc), 400, "invalid_request_error") from exc
        return Prepared(model, role, str(self.sources[role]), request)

    def _session(self, model: CodeGemma, role: str, name: str) -> CompletionSession:
        """The named session (one per editor), kept for the most recent MAX_SESSIONS names."""
        key = (role, name)
        with self._lock:
            session = self._sessions.pop(key, None) or CompletionSession(model)
            self._sessions[key] = session  # most recently used last
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
            return session

    def _run(self, prepared: Prepared, session: str | None = None) -> CompletionStream:
        model, request = prepared.model, prepared.request
        if session:
            pieces = self._session(model, prepared.role, session)._pieces(request)
        else:
            pieces = model._pieces(request)
        stream = GenerationStream(pieces, request.cancel)
        return GenerationStream(_as_completion(stream, prepared.source), request.cancel)


@dataclass(frozen=True)
class Prepared:
    """A request checked and tokenized for ``model``, not yet started."""

    model: CodeGemma
    role: str
    source: str  # the model's name in answers
    request: Request


def completion_of(r: GenerationResult, model: str) -> Completion:
    return Completion(r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens, model,
                      cached_tokens=r.cached_tokens, accepted_draft_tokens=r.accepted_tokens,
                      rejected_draft_tokens=r.drafted_tokens - r.accepted_tokens)


def _as_completion(stream: GenerationStream[GenerationResult], model: str) -> Generator[str, None, Completion]:
    try:
        yield from stream
    except BaseException:  # closed early or failed: stop the engine's generator now
        stream.close()
        raise
    assert stream.result is not None
    return completion_of(stream.result, model)
