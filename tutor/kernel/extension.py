"""The IPython extension: magics, and the tutor panel under a cell that failed.

`%load_ext tutor` in any notebook (JupyterLab, Notebook 7, VS Code) or IPython. The error hook
listens to IPython's post_run_cell event, after IPython has shown the normal traceback, so the
traceback is never hidden or changed; the hook itself never raises.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ..backends import Backend, BackendError, WorkerBackend, make_backend
from ..settings import Settings, resolve_settings
from ..tutoring import diagnose, explain_error, propose_fix
from ..widgets import Button, TutorPanel

NO_MODEL = ("No model is configured. Set TUTOR_CHAT_MODEL to a codegemma-7b-it folder (or TUTOR_ENDPOINT "
            "to your class's server) and restart the kernel; see `%tutor status`.")
LOADING = "Loading the tutor's model (only the first answer waits for this)..."


class TutorExtension:
    """The extension's state in one kernel: settings, the backend (made on first use), the hook."""

    def __init__(self, shell: Any, settings: Settings | None = None):
        self.shell = shell
        self.settings = settings or resolve_settings()
        self.enabled = True
        self.pending_fix: str | None = None  # the last checked fix, for `%tutor apply`
        self._backend: Backend | None = None

    # ------------------------------------------------------------------ backend

    @property
    def has_chat_model(self) -> bool:
        return bool(self.settings.endpoint or self.settings.chat_model)

    def backend(self) -> Backend:
        if not self.has_chat_model:
            raise BackendError(NO_MODEL, 503, "not_configured")
        if self._backend is None:
            self._backend = make_backend(self.settings)
        return self._backend

    def loading(self) -> bool:
        """Whether the next model call must first start the model worker and load the model (seconds to
        minutes), so that the student is told instead of seeing "Thinking..." for that long."""
        if not self.has_chat_model or self.settings.endpoint:
            return False
        backend = self._backend
        return backend is None or (isinstance(backend, WorkerBackend) and not backend.worker.alive())

    def busy(self, widget: Any) -> str:
        """The status line for a widget whose model call starts now: "Thinking...", or while the model is
        loading, that, with the seconds so far, until the model is up or the call ends."""
        if not self.loading():
            return "Thinking..."
        start = time.monotonic()

        def tick() -> None:  # the worker says nothing while it loads: the time so far is the sign of life
            while True:
                time.sleep(1)
                if widget.state != "working" or not widget.status.startswith(LOADING):
                    return
                if not self.loading():
                    widget.status = "Thinking..."
                    return
                widget.status = f"{LOADING} {time.monotonic() - start:.0f} s"

        threading.Thread(target=tick, daemon=True, name="tutor-loading").start()
        return LOADING

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # ------------------------------------------------------------------ the error hook

    def post_run_cell(self, result: Any) -> None:
        try:
            error = result.error_before_exec or result.error_in_exec
            if not self.enabled or error is None or not isinstance(error, Exception):
                return  # KeyboardInterrupt, SystemExit: nothing to explain
            if isinstance(error, UsageError):
                return  # a magic's own one-line message (the tutor's too): explaining it would only confuse
            display(self.error_panel(result.info.raw_cell, error))
        except Exception:  # the hook must never add an error of its own
            pass

    def error_panel(self, source: str, error: BaseException) -> TutorPanel:
        found = diagnose(source, error, self.shell.user_ns)
        error_text = "".join(traceback.format_exception_only(type(error), error)).strip()
        if found is not None:
            body = found.explanation + (f"\n\n**Try this:** {found.suggestion}" if found.suggestion else "")
            panel = TutorPanel(found.title, body, kind="error")
        else:
            panel = TutorPanel(f"{type(error).__name__}: the tutor can explain this error",
                               f"`{error_text}`", kind="error")
        hint = found.title if found is not None else None
        is_syntax = isinstance(error, SyntaxError)
        full_error = self._error_report(error)
        heading = panel.markdown + "\n\n---\n\n"  # the first explanation stays above each try

        def more() -> None:  # after an error or Stop, Explain more stays: it can be tried again
            panel.stream(lambda: explain_error(self.backend(), source, full_error, hint=hint),
                         heading=heading, after=(fix_button,), retry=(more_button, fix_button), busy=self.busy(panel))

        def fix() -> None:
            def task() -> tuple[Button, ...]:
                if not panel.status.startswith(LOADING):
                    panel.status = "Asking for a fix..."
                received = 0

                def progress(piece: str) -> None:  # the draft is not shown before it is checked
                    nonlocal received
                    received += len(piece)
                    panel.status = f"Asking for a fix... ({received} characters; checked before it is shown)"

                result = propose_fix(self.backend(), source, full_error, syntax_error=is_syntax,
                                     to_python=self.shell.transform_cell, on_text=progress)
                if result.status != "fixed":
                    panel.status = result.message
                    return (more_button,)
                self.pending_fix = result.code
                panel.set_markdown(f"**Suggested fix** (checked: it compiles and changes only what is needed)"
                                   f"\n\n```diff\n{result.diff}```\n\n{result.explanation}")
                panel.status = "Your cell is unchanged. Insert the fix below it (or run `%tutor apply`)."
                return (more_button, Button("insert", "Insert below", insert=result.code))

            panel.run(task, retry=(more_button, fix_button), busy=self.busy(panel))

        more_button = Button("more", "Explain more", more, disabled=not self.has_chat_model)
        fix_button = Button("fix", "Suggest a fix", fix, disabled=not self.has_chat_model)
        panel.set_buttons(more_button, fix_button)
        if not self.has_chat_model:
            panel.status = NO_MODEL
        return panel

    @staticmethod
    def _error_report(error: BaseException) -> str:
        """The traceback limited to the student's own cell frames, as the model should see it."""
        lines = traceback.format_exception(type(error), error, error.__traceback__)
        own = [line for line in lines if "site-packages" not in line and "IPython/core" not in line]
        return "".join(own[-12:]).strip()
