"""How every surface reaches a model: in this process, in a worker process, or on a shared server.

    from tutor.backends import make_backend
    backend = make_backend()                     # settings from flags / environment / Jupyter config
    for piece in backend.chat([{"role": "user", "content": "What is a list?"}]):
        print(piece, end="")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.tokenizer import Tokenizer
from ..settings import Settings, resolve_settings
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
from .remote import RemoteBackend
from .worker import ModelWorker, WorkerBackend

if TYPE_CHECKING:
    from .local import LocalBackend


def __getattr__(name: str) -> Any:
    # The in-process engine (torch) is imported when it is asked for, not with the package: a
    # student's server that reaches a shared model server never needs it (PEP 562).
    if name == "LocalBackend":
        from .local import LocalBackend

        return LocalBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_backend(settings: Settings | None = None, *, in_process: bool = False) -> Backend:
    """The backend the settings ask for. With an endpoint nothing loads here; otherwise models run in a
    worker process (the default: a crash cannot take the caller down) or, with ``in_process``, here."""
    settings = settings or resolve_settings()
    if settings.endpoint:
        tokenizer = None
        if settings.completion_model and (Path(settings.completion_model) / "tokenizer.model").is_file():
            tokenizer = Tokenizer(Path(settings.completion_model) / "tokenizer.model")
        return RemoteBackend(settings.endpoint, settings.token, completion_model=settings.completion_model,
                             chat_model=settings.chat_model, tokenizer=tokenizer)
    if in_process:
        from .local import LocalBackend

        return LocalBackend(settings.completion_model, settings.chat_model, device=settings.device)
    return WorkerBackend(ModelWorker(settings.completion_model, settings.chat_model, device=settings.device))


__all__ = [
    "DEFAULT_OPTIONS",
    "Backend",
    "BackendError",
    "Completion",
    "CompletionStream",
    "GenerationOptions",
    "LocalBackend",
    "Message",
    "ModelWorker",
    "NotConfigured",
    "RemoteBackend",
    "WorkerBackend",
    "make_backend",
]
