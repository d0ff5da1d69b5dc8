"""The panel the tutor shows under a cell: a heading, Markdown, a status line and buttons.

Model calls run on a background thread and stream into the panel, so the student can keep
running cells meanwhile, and can stop a reply with the Stop button.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..backends.base import BackendError, CompletionStream
from ..engine.errors import TutorError
from .markdown import render_markdown

_HERE = Path(__file__).parent


def show_streaming(pieces: Iterable[str], show: Callable[[str], None], interval: float = 0.1) -> str:
    """Call ``show`` with the text so far at most every ``interval`` seconds (ten updates a second
    are plenty for reading, and each one is a message to the browser), and once at the end."""
    text, shown = "", 0.0
    for piece in pieces:
        text += piece
        if time.monotonic() - shown > interval:
            show(text)
            shown = time.monotonic()
    show(text)
    return text


UNREACHABLE = ("The tutor's model server is not reachable right now. Try again in a minute; if it stays so, "
               "ask your teacher (`%tutor status` shows the details for them).")
NOT_STARTED = ("The tutor's model could not be started on this computer. Ask your teacher (`%tutor status` shows "
               "the details for them).")


def student_message(exc: BaseException) -> str:
    """What a student reads when a model call fails: what happened and what to do, in their words. The
    administrator's detail (addresses, exception names) is for `%tutor status`, not for the student."""
    if isinstance(exc, BackendError):
        if exc.kind == "unreachable":
            return UNREACHABLE
        if exc.kind == "worker_failed":
            return NOT_STARTED
    return str(exc)


@dataclass(frozen=True)
class Button:
    id: str
    label: str
    action: Callable[[], None] | None = None
    disabled: bool = False
    copy: str | None = None  # text the browser copies to the clipboard instead of calling back
    insert: str | None = None  # code the browser puts in a new cell below (the clipboard where it cannot)


class TutorPanel(anywidget.AnyWidget):
    _esm = _HERE / "panel.js"
    _css = _HERE / "panel.css"

    title = traitlets.Unicode("").tag(sync=True)
    kind = traitlets.Unicode("info").tag(sync=True)  # "info" or "error"
    state = traitlets.Unicode("idle").tag(sync=True)  # idle, working, done, failed
    html = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    progress = traitlets.Float(-1.0).tag(sync=True)  # a model load's fraction in [0, 1], drawn as a bar; < 0: none
    buttons = traitlets.List(traitlets.Dict()).tag(sync=True)

    def __init__(self, title: str = "", markdown: str = "", kind: str = "info", **kwargs: Any):
        super().__init__(title=title, kind=kind, **kwargs)
        self.markdown = ""
        self._actions: dict[str, Callable[[], None]] = {}
        self._stream: CompletionStream | None = None
        self.set_markdown(markdown)
        self.on_msg(self._on_msg)

    # ------------------------------------------------------------------ state

    def set_markdown(self, text: str) -> None:
        self.markdown = text
        self.html = render_markdown(text)

    def set_buttons(self, *buttons: Button) -> None:
        self._actions = {b.id: b.action for b in buttons if b.action}
        self.buttons = [{"id": b.id, "label": b.label, "disabled": b.disabled,
                         **({"copy": b.copy} if b.copy else {}), **({"insert": b.insert} if b.insert else {})}
                        for b in buttons]

    def click(self, button_id: str) -> None:
        """What the browser does when a button is pressed (also handy in tests and scripts)."""
        action = self._actions.get(button_id)
        if action is not None:
            action()

    def _on_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "click":
            self.click(str(content.get("id")))

    def _repr_mimebundle_(self, **kwargs: Any):
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data["text/plain"] = "\n".join(part for part in (self.title, self.markdown, self.status) if part)
        if self.kind == "error":
            # Says to the tutor's JupyterLab extension that this cell's error has the tutor's panel, with
            # its own buttons, so that it draws no Explain and Fix buttons of its own on the error.
            metadata = {**metadata, "tutor": {"panel": "error"}}
        return data, metadata

    # ------------------------------------------------------------------ streaming

    def run(self, task: Callable[[], tuple[Button, ...] | None], *, after: tuple[Button, ...] = (),
            retry: tuple[Button, ...] | None = None, busy: str = "Thinking...") -> threading.Thread:
        """Run ``task`` on a thread with the panel marked busy (``busy`` in the status line) and a Stop
        button; errors end up in the status line, never in the kernel. The buttons shown afterwards are
        those ``task`` returns, else ``after``; after a failure, ``retry`` (default ``after``), so that
        what failed can be tried again."""
        def work() -> None:
            shown = after if retry is None else retry
            try:
                shown = task() or after
                self.state = "done"
            except (TutorError, ValueError) as exc:
                self.state, self.status = "failed", student_message(exc)
            except Exception as exc:  # the panel must say something, and the kernel must live on
                self.state, self.status = "failed", f"Something went wrong: {exc.__class__.__name__}: {exc}"
            finally:
                self._stream = None
                self.set_buttons(*shown)

        self.state, self.status = "working", busy
        self.set_buttons(Button("stop", "Stop", self.stop))
        thread = threading.Thread(target=work, daemon=True, name="tutor-panel")
        thread.start()
        return thread

    def stream(self, start: Callable[[], CompletionStream], *, heading: str = "",
               after: tuple[Button, ...] = (), retry: tuple[Button, ...] | None = None,
               busy: str = "Thinking...") -> threading.Thread:
        """Stream the text of ``start()`` into the panel under ``heading``, on a thread. A reply that
        was stopped ends with the ``retry`` buttons, as a failed one does."""
        def task() -> tuple[Button, ...] | None:
            self._stream = start()
            self.follow(self._stream, heading)
            result = self._stream.result
            stopped = result is not None and result.finish_reason == "cancelled"
            self.status = "Stopped." if stopped else ""
            return retry if stopped and retry else None

        return self.run(task, after=after, retry=retry, busy=busy)

    def follow(self, pieces: Iterable[str], heading: str = "") -> str:
        """Show streamed ``pieces`` under ``heading`` as they come; return the whole text."""
        return show_streaming(pieces, lambda text: self.set_markdown(heading + text))

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
