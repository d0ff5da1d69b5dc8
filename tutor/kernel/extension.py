"""The IPython extension: magics, and the tutor panel under a cell that failed.

`%load_ext tutor` in any notebook (JupyterLab, Notebook 7, VS Code) or IPython. The error hook
listens to IPython's post_run_cell event, after IPython has shown the normal traceback, so the
traceback is never hidden or changed; the hook itself never raises.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ..backends import Backend, BackendError, WorkerBackend, make_backend
from ..backends.progress import TextBar
from ..settings import Settings, resolve_settings
from ..tutoring import diagnose, explain_error, propose_fix
from ..tutoring.policy import (
    FEATURE_HELP,
    FIELDS,
    Layer,
    Policy,
    PolicyInForce,
    notebook_policy_layer,
    policy_from_file,
)
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
        # The policy in force: the course file's (a broken file: the strictest, with a notice), made
        # stricter by the notebook's own metadata where the kernel knows its notebook.
        self.policy_state: PolicyInForce = policy_from_file(self.settings.policy)
        # The notebook's path, set by jupyter_server: absolute, or (older servers) relative to the server's
        # root, when the kernel's folder is the notebook's own.
        notebook = os.environ.get("JPY_SESSION_NAME", "")
        if notebook.endswith(".ipynb"):
            path = Path(notebook)
            self.add_notebook_policy(path if path.is_file() else Path.cwd() / path.name)
        # Set by the practice magics: whether a cell's code is an exercise the student has not solved yet,
        # and the exercise open now (the whole problem, read for one guard call).
        self.unsolved_exercise: Callable[[str], bool] = lambda source: False
        self.open_exercise: Callable[[], Any] = lambda: None

    # ------------------------------------------------------------------ policy

    @property
    def policy(self) -> Policy:
        return self.policy_state.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:  # set from Python in this kernel: it replaces every layer
        self.policy_state = PolicyInForce((Layer("set in this kernel", policy, frozenset(FIELDS)),))

    def add_notebook_policy(self, path: str | Path) -> None:
        """Make the policy stricter by the notebook's ``metadata.tutor.policy``, if it has one."""
        layer = notebook_policy_layer(path)
        if layer is not None:
            self.policy_state = self.policy_state.with_layer(layer)

    def refusal(self, feature: str) -> str | None:
        """None if ``feature`` may reach the model; else the plain sentence that says it is off and why."""
        if self.policy.allows(feature):
            return None
        return (f"This is turned off in this course: {FEATURE_HELP[feature]} (\"{feature}\" is not among the "
                f"policy's features; set by {self.policy_state.origin('features')}).")

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
        loading, that, with how far it is, until the model is up or the call ends. The widget's ``progress``
        draws the bar; a tqdm bar goes to the output of the cell that asked, for frontends without widgets."""
        if not self.loading():
            return "Thinking..."
        start = time.monotonic()
        # A thread starts with an empty context: run it in this one, so that ipykernel sends its output to
        # the cell (or the widget's message) that asked, not to whichever cell runs later.
        context = contextvars.copy_context()

        def tick() -> None:
            bar = TextBar(sys.stderr, disable=False)  # a cell's output is no terminal, but shows the bar well
            try:
                while True:
                    time.sleep(0.2)  # first: the caller marks the widget busy after this returns
                    if widget.state != "working" or not widget.status.startswith(LOADING) or not self.loading():
                        break
                    loading = self._backend.load_progress() if self._backend is not None else None
                    if loading is None:  # the worker is starting: the time so far is the sign of life
                        widget.status = f"{LOADING} {time.monotonic() - start:.0f} s"
                    else:
                        bar(loading)
                        widget.progress = loading.progress.fraction
                        widget.status = f"{LOADING} {loading.progress.describe()}."
                loading = self._backend.load_progress() if self._backend is not None else None
                if loading is not None and not self.loading():
                    bar(loading)  # the last event, which the polling may have missed: the bar ends where the load did
            finally:
                bar.close()
                widget.progress = -1.0
                if widget.state == "working" and widget.status.startswith(LOADING):
                    widget.status = "Thinking..."

        threading.Thread(target=context.run, args=(tick,), daemon=True, name="tutor-loading").start()
        return LOADING

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def reply_guard(self) -> Callable[[str], tuple[str, str]] | None:
        """The guard on a model reply now (tutor.tutoring.practice.guard_reply): (text to show, why something was
        removed). None when there is nothing to guard: no exercise open (or solutions allowed), no avoided words."""
        guarding_solutions = not self.policy.allow_solutions and self.open_exercise() is not None
        if not guarding_solutions and not self.policy.avoid_words:
            return None

        def guard(text: str) -> tuple[str, str]:
            from ..tutoring.practice import guard_reply

            guarded = guard_reply(text, self.open_exercise(), self.policy)
            return guarded.text, (f"Part of the reply was removed: {guarded.reason}." if guarded.reason else "")

        return guard

    def show_reply(self, panel: TutorPanel, start: Callable[[], Any], *, heading: str = "",
                   after: tuple[Button, ...] = (), retry: tuple[Button, ...] | None = None,
                   busy: str = "Thinking...") -> None:
        """Stream a model reply into ``panel``; while an exercise is open and solutions are not allowed, the
        reply is checked by the guard first and shown whole (a draft could be the solution)."""
        guard = self.reply_guard()
        if guard is None:
            panel.stream(start, heading=heading, after=after, retry=retry, busy=busy)
            return

        def task() -> tuple[Button, ...] | None:
            stream = panel._stream = start()  # noqa: SLF001 - so the panel's Stop button stops it
            received = 0
            for piece in stream:
                received += len(piece)
                panel.status = f"Writing... ({received} characters; checked before it is shown)"
            result = stream.result
            if result is not None and result.finish_reason == "cancelled":
                panel.status = "Stopped."
                return retry or None
            text, why = guard(result.text if result is not None else "")
            panel.set_markdown(heading + text)
            panel.status = why
            return None

        panel.run(task, after=after, retry=retry, busy=busy)

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

    def error_panel(self, source: str, error: BaseException, report: str | None = None) -> TutorPanel:
        """The panel for ``error``, raised by the cell ``source``; ``report`` is the traceback as the model
        should see it, when the error is not the live exception (tutor.kernel.lab rebuilds one)."""
        found = diagnose(source, error, self.shell.user_ns)
        error_text = "".join(traceback.format_exception_only(type(error), error)).strip()
        if found is not None:
            body = found.explanation + (f"\n\n**Try this:** {found.suggestion}" if found.suggestion else "")
            panel = TutorPanel(found.title, body, kind="error")
        else:
            panel = TutorPanel(f"{type(error).__name__}: the tutor can explain this error",
                               f"`{error_text}`", kind="error")
        hint = found.title if found is not None else None
        may_explain = self.policy.allows("explain")
        # No fix for an exercise not yet solved when solutions are not allowed: a fix would be its solution.
        fix_refused = self.refusal("fix") or (
            "A suggested fix is not offered for an exercise you have not solved yet: this course does not "
            "allow the tutor to give solutions. Try %hint." if not self.policy.allow_solutions
            and self.unsolved_exercise(source) else None)
        is_syntax = isinstance(error, SyntaxError)
        full_error = report if report is not None else self._error_report(error)
        heading = panel.markdown + "\n\n---\n\n"  # the first explanation stays above each try

        def more() -> None:  # after an error or Stop, Explain more stays: it can be tried again
            if not may_explain:
                return
            self.show_reply(panel, lambda: explain_error(self.backend(), source, full_error, hint=hint),
                            heading=heading, after=tuple(b for b in (fix_button,) if not fix_refused),
                            retry=shown(), busy=self.busy(panel))

        def fix() -> None:
            if fix_refused:
                return

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
                    return tuple(b for b in (more_button,) if may_explain)
                self.pending_fix = result.code
                panel.set_markdown(f"**Suggested fix** (checked: it compiles and changes only what is needed)"
                                   f"\n\n```diff\n{result.diff}```\n\n{result.explanation}")
                panel.status = "Your cell is unchanged. Insert the fix below it (or run `%tutor apply`)."
                insert = Button("insert", "Insert below", insert=result.code)
                return (*(b for b in (more_button,) if may_explain), insert)

            panel.run(task, retry=shown(), busy=self.busy(panel))

        def shown() -> tuple[Button, ...]:  # the buttons the policy lets this panel show
            return tuple(b for b, ok in ((more_button, may_explain), (fix_button, not fix_refused)) if ok)

        more_button = Button("more", "Explain more", more, disabled=not self.has_chat_model)
        fix_button = Button("fix", "Suggest a fix", fix, disabled=not self.has_chat_model)
        panel.set_buttons(*shown())
        off = [what for what, feature in (("explanations by the model", "explain"), ("suggested fixes", "fix"))
               if not self.policy.allows(feature)]
        if not self.has_chat_model and (may_explain or not fix_refused):
            panel.status = NO_MODEL
        elif fix_refused and self.policy.allows("fix"):
            panel.status = fix_refused  # the exercise is not solved yet
        elif off:
            panel.status = f"{' and '.join(off).capitalize()} are turned off in this course."
        return panel

    @staticmethod
    def _error_report(error: BaseException) -> str:
        """The traceback limited to the student's own cell frames, as the model should see it."""
        lines = traceback.format_exception(type(error), error, error.__traceback__)
        own = [line for line in lines if "site-packages" not in line and "IPython/core" not in line]
        return "".join(own[-12:]).strip()
