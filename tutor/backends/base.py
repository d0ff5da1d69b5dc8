"""The one small interface every surface uses to reach a model, wherever it runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..engine.errors import TutorError
from ..engine.generation import GenerationStream
from ..prompts import ContextFile
from .progress import Loading

Message = Mapping[str, str]  # {"role": "system" | "user" | "assistant", "content": text}


class BackendError(TutorError):
    """A model could not answer. ``status`` follows HTTP (400 bad request, 404 unknown model,
    503 busy or down) so a surface can tell a user's mistake from a server's trouble."""

    def __init__(self, message: str, status: int = 500, kind: str = "server_error", param: str | None = None):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.param = param  # the request field at fault, for OpenAI-style errors


class NotConfigured(BackendError):
    """No model or endpoint is configured for what was asked."""

    def __init__(self, what: str):
        super().__init__(
            f"no {what} model is configured: set TUTOR_{what.upper()}_MODEL to a model folder "
            "(or a hub name in the local Hugging Face cache), or TUTOR_ENDPOINT to a shared server.",
            status=503, kind="not_configured")


MAX_DRAFT_TOKENS = 16


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # Greedy only: check up to this many tokens per forward pass, drafted from the prompt (for
    # answers that copy their input, like fixes). Same tokens; servers other than tutor serve ignore it.
    draft_tokens: int = 0

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise BackendError(f"max_tokens must be at least 1, got {self.max_tokens}", 400, "invalid_request_error")
        if self.temperature < 0 or self.temperature > 2:
            raise BackendError(f"temperature must be in [0, 2], got {self.temperature}", 400, "invalid_request_error")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise BackendError(f"top_p must be in (0, 1], got {self.top_p}", 400, "invalid_request_error")
        if not 0 <= self.draft_tokens <= MAX_DRAFT_TOKENS:
            raise BackendError(f"draft_tokens must be in [0, {MAX_DRAFT_TOKENS}], got {self.draft_tokens}", 400,
                               "invalid_request_error")


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop", "length" or "cancelled"
    prompt_tokens: int
    completion_tokens: int
    model: str = ""
    cached_tokens: int = 0  # prompt tokens whose KV cache was reused from the session's previous request
    accepted_draft_tokens: int = 0  # with draft_tokens: drafted tokens the model agreed with ...
    rejected_draft_tokens: int = 0  # ... and those it did not
    notices: tuple[str, ...] = field(default=())  # e.g. "the model worker was restarted"


CompletionStream = GenerationStream[Completion]
DEFAULT_OPTIONS = GenerationOptions()


class Backend(ABC):
    """Streaming completion and chat. Every call returns a stream at once; iterate it for text
    pieces, call ``cancel()`` from any thread to stop, read ``result`` when it ends."""

    @abstractmethod
    def complete(self, prompt: str | Sequence[int], options: GenerationOptions = DEFAULT_OPTIONS, *,
                 stop_token_ids: Sequence[int] | None = None, session: str | None = None) -> CompletionStream:
        """Continue a raw prompt with the completion model: token ids, or text in which
        special-piece strings are control tokens (see Tokenizer.encode_raw_prompt). Requests with the
        same ``session`` (an editor's id) reuse the KV cache of the prefix they share."""

    @abstractmethod
    def fill_in_middle(self, prefix: str, suffix: str, options: GenerationOptions = DEFAULT_OPTIONS, *,
                       files: Sequence[ContextFile] = (), path: str | None = None,
                       session: str | None = None) -> CompletionStream:
        """Write what goes between ``prefix`` and ``suffix`` (student text: never control tokens)."""

    @abstractmethod
    def chat(self, messages: Sequence[Message], options: GenerationOptions = DEFAULT_OPTIONS) -> CompletionStream:
        """Reply to a conversation with the instruction-tuned model."""

    @abstractmethod
    def describe(self) -> str:
        """One line saying what this backend is (for `%tutor status`)."""

    def load_progress(self) -> Loading | None:
        """The latest progress of a model load this backend made or waits for (kept once it is done), for a
        surface to show while a first call waits; None where nothing loads here (a shared server)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (connections, a worker process)."""
