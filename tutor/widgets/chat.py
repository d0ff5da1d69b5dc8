"""A chat with the tutor about the notebook (multi-turn; replies stream in on a thread)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..engine.errors import TutorError
from ..tutoring import Conversation
from .markdown import render_markdown
from .panel import show_streaming, student_message

_HERE = Path(__file__).parent


class ChatWidget(anywidget.AnyWidget):
    _esm = _HERE / "chat.js"
    _css = _HERE / "panel.css"

    turns = traitlets.List(traitlets.Dict()).tag(sync=True)  # [{"role", "html"}]
    state = traitlets.Unicode("idle").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    progress = traitlets.Float(-1.0).tag(sync=True)  # a model load's fraction in [0, 1], drawn as a bar; < 0: none

    def __init__(self, conversation: Conversation, *, busy: Callable[[Any], str] | None = None,
                 guard: Callable[[], Callable[[str], tuple[str, str]] | None] | None = None, **kwargs: Any):
        """``busy(widget)`` gives the status line while a reply starts (default "Thinking..."). ``guard()``, asked
        at each question, gives None (stream the reply) or a check that sees the whole reply before the student
        does and returns (the text to show, why something was removed)."""
        super().__init__(**kwargs)
        self.conversation = conversation
        self._busy = busy
        self.guard = guard
        self._stream = None
        self.on_msg(self._on_msg)

    def _on_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "ask":
            self.ask(str(content.get("text", "")))
        elif content.get("type") == "stop" and self._stream is not None:
            self._stream.cancel()

    def ask(self, question: str) -> threading.Thread | None:
        if not question.strip() or self.state == "working":
            return None
        self.turns = [*self.turns, {"role": "user", "html": render_markdown(question)},
                      {"role": "assistant", "html": ""}]
        self.state, self.status = "working", self._busy(self) if self._busy else "Thinking..."

        def work() -> None:
            try:
                check = self.guard() if self.guard is not None else None
                self._stream = self.conversation.ask(question)
                if check is None:
                    show_streaming(self._stream, self._show)
                else:
                    received = 0
                    for piece in self._stream:  # checked before it is shown: a draft could be the solution
                        received += len(piece)
                        self.status = f"Thinking... ({received} characters; checked before it is shown)"
                    text, why = check(self._stream.result.text)
                    self._show(text)
                    self.status = why
                    if self._stream.result.finish_reason == "cancelled":
                        self.status = "Stopped."
                    return
                self.status = "Stopped." if self._stream.result.finish_reason == "cancelled" else ""
            except (TutorError, ValueError) as exc:
                self.status = student_message(exc)
            except Exception as exc:  # the kernel must live on
                self.status = f"Something went wrong: {exc.__class__.__name__}: {exc}"
            finally:
                self._stream = None
                self.state = "idle"

        thread = threading.Thread(target=work, daemon=True, name="tutor-chat")
        thread.start()
        return thread

    def _show(self, text: str) -> None:
        self.turns = [*self.turns[:-1], {"role": "assistant", "html": render_markdown(text)}]
