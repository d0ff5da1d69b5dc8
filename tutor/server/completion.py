"""Inline completion for JupyterLab, apart from HTTP: a request, its prompt, post-processing, cancellation.

The handlers in :mod:`tutor.server.handlers` are thin; everything that decides something is here,
so it can be tested without a server.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import Backend, BackendError, GenerationOptions, NotConfigured, WorkerBackend, make_backend
from ..engine.tokenizer import Tokenizer
from ..prompts import ContextFile, approximate_tokens, fit_fim_budget
from ..settings import Settings, resolve_settings
from ..tutoring.policy import PolicyInForce, notebook_policy_layer, policy_from_file

CELL_SEPARATOR = "\n\n# %%\n"  # the "percent" cell marker that scripts exported from notebooks use
DEFAULTS = {"maxLines": 8, "contextBudget": 1536, "maxTokens": 96}
LIMITS = {"maxLines": (1, 200), "contextBudget": (64, 8000), "maxTokens": (1, 1024)}


class RequestError(ValueError):
    """A malformed completion request (HTTP 400)."""


@dataclass(frozen=True)
class CompletionRequest:
    request_id: str
    path: str
    cell_id: str
    before: str  # the active cell's text before the cursor
    after: str  # ... and after it
    cells_before: tuple[str, ...] = ()  # the other cells' sources, in notebook order
    cells_after: tuple[str, ...] = ()
    language: str = "python"
    max_lines: int = DEFAULTS["maxLines"]
    context_budget: int = DEFAULTS["contextBudget"]
    max_tokens: int = DEFAULTS["maxTokens"]

    @property
    def editor_id(self) -> str:
        return f"{self.path}#{self.cell_id}"

    @classmethod
    def from_json(cls, body: Any) -> CompletionRequest:
        if not isinstance(body, Mapping):
            raise RequestError("the request body must be a JSON object")

        def text(name: str, default: str | None = None) -> str:
            value = body.get(name, default)
            if not isinstance(value, str):
                raise RequestError(f"'{name}' must be a string")
            return value

        def texts(name: str) -> tuple[str, ...]:
            value = body.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RequestError(f"'{name}' must be a list of strings (cell sources)")
            return tuple(value)

        settings = body.get("settings") or {}
        if not isinstance(settings, Mapping):
            raise RequestError("'settings' must be an object")
        numbers = {}
        for key, default in DEFAULTS.items():
            value = settings.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int):
                raise RequestError(f"'settings.{key}' must be an integer")
            low, high = LIMITS[key]
            numbers[key] = min(max(value, low), high)
        return cls(request_id=text("id"), path=text("path", ""), cell_id=text("cellId", ""), before=text("before"),
                   after=text("after", ""), cells_before=texts("cellsBefore"), cells_after=texts("cellsAfter"),
                   language=text("language", "python"), max_lines=numbers["maxLines"],
                   context_budget=numbers["contextBudget"], max_tokens=numbers["maxTokens"])


def prompt_parts(request: CompletionRequest, count: Callable[[str], int]) -> tuple[str, str, list[ContextFile], str]:
    """(prefix, suffix, context files, path) for ``Backend.fill_in_middle``.

    The other cells, in notebook order, become one context file (the notebook as a percent-format
    script); cells are kept nearest-first until the budget is spent, after the text around the cursor.
    """
    path = request.path or "notebook"
    # Counted as sent: each cell costs its text and a cell separator; the two paths, their file
    # separators and the FIM control tokens are set aside first.
    cells = [ContextFile("", source) for source in (*request.cells_before, *request.cells_after)]
    overhead = 2 * count(f"{path}\n") + 6
    fitted = fit_fim_budget(count, request.before, request.after, cells,
                            budget=max(request.context_budget - overhead, 1), near=len(request.cells_before),
                            per_file=count(CELL_SEPARATOR))
    files = [ContextFile(path, CELL_SEPARATOR.join(f.content for f in fitted.files))] if fitted.files else []
    return fitted.prefix, fitted.suffix, files, path


# ---------------------------------------------------------------------- post-processing

def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


@dataclass
class Shaper:
    """Turns the model's growing text into what the editor should show, and says when to stop.

    - mid-line (text after the cursor on its line): one line at most;
    - otherwise a block: stop before a non-blank line that starts left of the cursor's block, and after
      ``max_lines`` lines;
    - never echo the suffix: cut where the completion starts repeating the text after the cursor.
    """

    before: str
    after: str
    max_lines: int

    def __post_init__(self) -> None:
        line_before = self.before.rsplit("\n", 1)[-1]
        self.rest_of_line = self.after.split("\n", 1)[0]
        self.mid_line = bool(self.rest_of_line.strip())
        anchor = line_before
        if not line_before.strip():  # an empty line so far: the block is the one of the last line written
            written = [ln for ln in self.before.split("\n")[:-1] if ln.strip()]
            anchor = written[-1] if written else ""
        self.base_indent = min(_indent(anchor), len(line_before)) if line_before else _indent(anchor)
        if anchor.rstrip().endswith(":"):
            self.base_indent = _indent(anchor) + 1  # the block being opened is deeper than its header
        following = [ln for ln in self.after.split("\n")[1:] if ln.strip()] if self.mid_line else \
            [ln for ln in self.after.split("\n") if ln.strip()]
        self.next_line = following[0].strip() if following else ""

    def shape(self, text: str) -> tuple[str, bool]:
        """(what to show, whether generation can stop here); "" when the suggestion would add nothing.

        The one place that decides a suggestion is worth showing: text that is only whitespace, or only
        repeats what is already after the cursor, is never shown, so Tab keeps its usual meaning (an
        empty suggestion shows no ghost text and the inline completer does not take Tab)."""
        shown, stop = self._shape(text)
        return ("" if self.adds_nothing(shown) else shown), stop

    def adds_nothing(self, shown: str) -> bool:
        """Whether accepting ``shown`` would leave the cell as it reads now: only whitespace, or the text
        after the cursor over again (compared without whitespace, so re-indented repeats count too)."""
        visible = "".join(shown.split())
        return not visible or "".join(self.after.split()).startswith(visible)

    def _shape(self, text: str) -> tuple[str, bool]:
        if self.mid_line:
            first, newline, _ = text.partition("\n")
            return self._strip_rest_of_line(first), bool(newline)
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if i == 0:
                continue  # the cursor's line continues whatever is before the cursor
            complete = i < len(lines) - 1  # the model has finished this line
            if not line.strip():
                continue
            if self.next_line and line.strip() == self.next_line and complete:
                return "\n".join(lines[:i]).rstrip() if i > 1 else lines[0], True  # echoing the suffix
            if _indent(line) < self.base_indent and (complete or len(line) > _indent(line)):
                return "\n".join(lines[:i]).rstrip(), True  # the block ended
        if len(lines) > self.max_lines:
            return "\n".join(lines[: self.max_lines]).rstrip(), True
        return self._strip_rest_of_line(text) if len(lines) == 1 else text, False

    def _strip_rest_of_line(self, text: str) -> str:
        """Drop an ending that repeats the text after the cursor on its line (``foo(x`` before ``)``)."""
        rest = self.rest_of_line.strip()
        if rest and text.rstrip().endswith(rest):
            return text.rstrip()[: -len(rest)]
        return text


# ---------------------------------------------------------------------- the completer

@dataclass
class Counters:
    requests: int = 0
    completed: int = 0
    superseded: int = 0  # replaced by a newer request from the same editor
    generations_stopped: int = 0  # backend streams that really ended early (finish_reason "cancelled")
    stopped_by_newer: int = 0  # ... of them, those stopped because a newer request from the editor came
    errors: int = 0
    last_prompt_tokens: int = 0  # of the last generation that finished, as the model counted them


class Notice(str):
    """Something the user should hear about once (not completion text): e.g. a restarted worker."""


class _Job:
    """One editor's running request: cancelled when a newer one comes, before or after its stream starts."""

    def __init__(self, request_id: str, cancelled: threading.Event):
        self.request_id = request_id
        self.cancelled = cancelled
        self.stream: Any = None
        self.superseded = False

    def supersede(self) -> None:
        self.superseded = True
        self.cancelled.set()
        if self.stream is not None:
            self.stream.cancel()


class Completer:
    """One per Jupyter server: the backend (started on first use), the running request of each editor."""

    def __init__(self, settings: Settings | None = None, *, config: Mapping[str, Any] | None = None,
                 publish_environment: bool = True, root_dir: str | Path | None = None):
        self.config = config or {}
        self.root_dir = Path(root_dir).resolve() if root_dir is not None else None  # where notebooks' paths start
        self._policy: PolicyInForce | None = None
        self._notebook_layers: dict[Path, tuple[float, Any]] = {}  # path -> (mtime, its policy layer)
        self._settings = settings
        self.publish_environment = publish_environment
        self.counters = Counters()
        self._backend: Backend | None = None
        self._tokenizer: Tokenizer | None = None
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, Any]] = {}  # editor id -> (request id, stream)
        self.last_error_kind = ""  # of the last request that failed, cleared by one that succeeds
        self.last_error = ""

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = resolve_settings(config=self.config)
        return self._settings

    def backend(self) -> Backend:
        with self._lock:
            if self._backend is None:
                settings = self.settings
                if not settings.endpoint and not settings.completion_model:
                    raise NotConfigured("completion")
                self._backend = make_backend(settings)
                model = settings.completion_model
                if model and (Path(model) / "tokenizer.model").is_file():
                    self._tokenizer = Tokenizer(Path(model) / "tokenizer.model")
            return self._backend

    @property
    def policy(self) -> PolicyInForce:
        """The course's policy (a broken file: the strictest, which turns inline completion off)."""
        if self._policy is None:
            self._policy = policy_from_file(self.settings.policy)
        return self._policy

    def policy_for(self, path: str) -> PolicyInForce:
        """The policy in force for the notebook at ``path`` (relative to the server's root): the course's,
        made stricter by the notebook's ``metadata.tutor.policy``. Read from disk, cached until it changes."""
        policy = self.policy
        if self.root_dir is None or not path.endswith(".ipynb"):
            return policy
        file = (self.root_dir / path).resolve()
        if not file.is_relative_to(self.root_dir):
            return policy  # not a notebook of this server
        try:
            mtime = file.stat().st_mtime
        except OSError:
            return policy
        cached = self._notebook_layers.get(file)
        if cached is None or cached[0] != mtime:
            cached = self._notebook_layers[file] = (mtime, notebook_policy_layer(file))
        return policy.with_layer(cached[1]) if cached[1] is not None else policy

    def refusal(self, request: CompletionRequest) -> BackendError | None:
        """Why inline completion may not run for this request's notebook (None: it may)."""
        policy = self.policy_for(request.path)
        if policy.allows("completion"):
            return None
        why = policy.origin("features")
        if policy.notice:
            why = f"the course policy file has a mistake ({self.settings.policy}; check it with `tutor policy check`)"
        return BackendError(f"inline completion is turned off for this notebook by the course policy ({why}).",
                            403, "policy_refused")

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text)) if self._tokenizer is not None else approximate_tokens(text)

    def publish(self) -> None:
        """Put the embedded worker's URL and token where kernels started from now on will find them."""
        backend = self._backend
        if self.publish_environment and isinstance(backend, WorkerBackend) and backend.worker.alive():
            os.environ["TUTOR_ENDPOINT"] = backend.worker.url
            os.environ["TUTOR_TOKEN"] = backend.worker.token
            if backend.worker.models["completion"]:
                os.environ.setdefault("TUTOR_COMPLETION_MODEL", str(backend.worker.models["completion"]))

    def state(self) -> tuple[str, str]:
        """(state, a sentence for the student): not_configured, idle, loading, ready or unreachable."""
        settings = self.settings
        if not settings.endpoint and not settings.completion_model:
            return "not_configured", ("No completion model is set up: set TUTOR_COMPLETION_MODEL to a model folder, "
                                      "or TUTOR_ENDPOINT to your class's server, then restart JupyterLab.")
        if self.last_error_kind == "unreachable":
            return "unreachable", f"The tutor's model server cannot be reached: {self.last_error}"
        backend = self._backend
        if isinstance(backend, WorkerBackend):
            if backend.worker.alive():
                return "ready", "The model is loaded and ready."
            if self._running:  # a request is waiting for the worker to start and load the model
                loading = backend.load_progress()
                what = loading.describe() if loading is not None else "the model (starting the model worker)"
                return "loading", f"Loading {what}. The first completion waits for it."
        elif backend is not None:
            return "ready", f"Using {backend.describe()}."
        return "idle", "The model loads on the first completion."

    def status(self) -> dict[str, Any]:
        c = self.counters
        backend = self._backend
        state, message = self.state()
        loading = backend.load_progress() if state == "loading" and backend is not None else None
        return {"configured": bool(self.settings.endpoint or self.settings.completion_model),
                "policy": self.policy.describe(),
                "state": state, "message": message,
                # while loading: {"role", "model", "phase", "done", "total" (bytes), "fraction"}; else null
                "loading": loading.as_json() if loading is not None else None,
                "backend": backend.describe() if backend is not None else "not started (starts on first use)",
                "requests": c.requests, "completed": c.completed, "superseded": c.superseded,
                "generations_stopped": c.generations_stopped, "stopped_by_newer": c.stopped_by_newer,
                "errors": c.errors, "last_prompt_tokens": c.last_prompt_tokens,
                "worker_pid": self._worker_pid(),
                "published_endpoint": os.environ.get("TUTOR_ENDPOINT", "") if self.publish_environment else "",
                "active": len(self._running)}

    def _worker_pid(self) -> int | None:
        backend = self._backend
        if isinstance(backend, WorkerBackend) and backend.worker.alive() and backend.worker.process is not None:
            return backend.worker.process.pid
        return None

    def complete(self, request: CompletionRequest, cancelled: threading.Event) -> Iterator[str]:
        """Cumulative texts for the editor (and, at the end, any :class:`Notice`); runs on a worker thread.
        A newer request from the same editor, or ``cancelled`` being set (the browser went away), stops
        the generation itself."""
        self.counters.requests += 1
        job = _Job(request.request_id, cancelled)
        with self._lock:  # first stop the editor's older request: its work would queue before ours
            older = self._running.get(request.editor_id)
            self._running[request.editor_id] = job
        if older is not None:
            self.counters.superseded += 1
            older.supersede()
        try:
            refused = self.refusal(request)  # the policy first: nothing reaches the model if it says no
            if refused is not None:
                raise refused
            backend = self.backend()
            prefix, suffix, files, path = prompt_parts(request, self.count_tokens)
            options = GenerationOptions(max_tokens=request.max_tokens, temperature=0.0)
            if cancelled.is_set():
                return
            # One session per editor: the worker reuses the KV cache of the prefix shared with its last request.
            stream = job.stream = backend.fill_in_middle(prefix, suffix, options, files=files, path=path,
                                                         session=request.editor_id)
            if cancelled.is_set():
                stream.cancel()
            self.publish()
            shaper = Shaper(request.before, request.after, request.max_lines)
            text, shown = "", None
            for piece in stream:
                if cancelled.is_set():
                    break
                text += piece
                now, stop = shaper.shape(text)
                if now != shown:
                    shown = now
                    yield now
                if stop:
                    break  # a sensible end: the model need not go on
            if stream.result is None:  # left early: stop the generation itself
                stream.cancel()
            finish = self._finish(stream)  # drains, so the backend has stopped when this returns
            if finish == "cancelled":
                self.counters.generations_stopped += 1
                if job.superseded:
                    self.counters.stopped_by_newer += 1
            if stream.result is not None:
                self.counters.last_prompt_tokens = stream.result.prompt_tokens
                for notice in stream.result.notices:  # e.g. the worker had died and was restarted
                    yield Notice(notice)
            self.counters.completed += 1
            self.last_error_kind = self.last_error = ""
        except BackendError as exc:
            self.last_error_kind, self.last_error = exc.kind, str(exc)
            raise
        finally:
            with self._lock:
                if self._running.get(request.editor_id) is job:
                    del self._running[request.editor_id]

    @staticmethod
    def _finish(stream: Any) -> str:
        """Drain a stream (a cancelled one ends at once, its backend stopped); its finish reason."""
        if stream.result is not None:
            return stream.result.finish_reason
        try:
            for _ in stream:
                pass
        except BackendError:
            return "error"
        result = stream.result
        return result.finish_reason if result is not None else "cancelled"

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


def error_object(exc: BaseException) -> dict[str, Any]:
    """What the frontend shows (once): a message, a kind, and an HTTP-like status."""
    if isinstance(exc, BackendError):
        return {"message": str(exc), "kind": exc.kind, "status": exc.status}
    if isinstance(exc, RequestError):
        return {"message": str(exc), "kind": "invalid_request", "status": 400}
    return {"message": f"inline completion failed: {exc.__class__.__name__}: {exc}", "kind": "server_error",
            "status": 500}

