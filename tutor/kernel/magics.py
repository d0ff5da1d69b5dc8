"""%explain / %%explain, and %tutor (chat, status, on/off, apply)."""

from __future__ import annotations

import inspect
import reprlib
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ..tutoring import LANGUAGES, LEVELS, Conversation, explain
from ..widgets import Button, ChatWidget, TutorPanel
from .extension import NO_MODEL, TutorExtension

TUTOR_USAGE = "usage: %tutor [help | status | on | off | apply]  (no argument opens a chat about this notebook)"

# Everything a student can type, for `%tutor help`. tests/test_kernel.py checks that every magic the
# extension registers is here, so a new magic cannot be forgotten.
HELP = (
    ("(a cell fails)", "a plain explanation under the traceback, with Explain more and Suggest a fix"),
    ("%tutor", "a chat about this notebook"),
    ("%tutor help", "this list"),
    ("%tutor status", "which model is used and why, and how grading is protected on this machine"),
    ("%tutor off / %tutor on", "turn the help under failing cells off and on"),
    ("%tutor apply", "put the last checked fix in a new cell below"),
    ("%%explain [--level L] [--language X]", "explain the cell's code without running it"),
    ("%explain NAME", "explain a function, class or value; %explain alone: the previous cell"),
    ("%practice [TOPIC] [--level 1-3] [--new]", "a practice problem; its starter goes in a new cell"),
    ("%%check", "grade this cell against the current problem or lesson exercise, then run it"),
    ("%check", "grade the latest cell that defines the exercise's function"),
    ("%hint", "the next hint: nudge, concept, pseudo-code, partial code"),
    ("%lesson NOTEBOOK", "make a lesson's exercises known to %check and %hint (a student copy's first cell)"),
    ("%%generate [--chat | --completion]", "code for the description in the cell, in a new cell "
                                           "(only where the course allows it)"),
)


def help_text() -> str:
    width = max(len(command) for command, _ in HELP)
    return "\n".join(["tutor: what you can type"] + [f"  {c.ljust(width)}  {what}" for c, what in HELP])


@magics_class
class TutorMagics(Magics):
    def __init__(self, shell: Any, extension: TutorExtension):
        super().__init__(shell)
        self.ext = extension

    @magic_arguments()
    @argument("name", nargs="?", help="a function, class or object to explain (default: the previous cell)")
    @argument("-l", "--level", default="beginner", choices=sorted(LEVELS), help="how much the reader knows")
    @argument("--language", default="python", choices=sorted(LANGUAGES), help="the language of the code")
    @line_cell_magic
    def explain(self, line: str, cell: str | None = None) -> None:
        """Explain code: `%%explain` the cell's code (not run), `%explain name` an object, `%explain` the
        previous cell."""
        args = parse_argstring(self.explain, line)
        self._allowed("explain")
        code = cell if cell is not None else self._code_for(args.name)
        if not code.strip():
            raise UsageError("there is no code to explain: the cell is empty.")
        panel = TutorPanel(f"Explanation ({args.level})")
        display(panel)
        if not self.ext.has_chat_model:
            panel.status = NO_MODEL
            return
        self._stream_explanation(panel, code, args)

    def _stream_explanation(self, panel: TutorPanel, code: str, args: Any) -> None:
        """Into ``panel`` (checked by the guard first while an exercise is open); after an error or Stop a Try
        again button asks once more."""
        again = Button("again", "Try again", lambda: self._stream_explanation(panel, code, args))
        self.ext.show_reply(panel, lambda: explain(self.ext.backend(), code, level=args.level, language=args.language),
                            retry=(again,), busy=self.ext.busy(panel))

    def _allowed(self, feature: str) -> None:
        """Ask the policy before anything reaches the model; a refusal is one plain line."""
        refusal = self.ext.refusal(feature)
        if refusal:
            raise UsageError(refusal)

    def _code_for(self, name: str | None) -> str:
        if not name:
            history = self.shell.history_manager.input_hist_raw
            if len(history) < 2:
                raise UsageError("there is no previous cell to explain; use %%explain at the top of a cell.")
            return history[-2]
        try:
            obj = eval(name, self.shell.user_ns)  # the student's own kernel and name
        except Exception as exc:
            raise UsageError(f"cannot find {name!r}: {exc.__class__.__name__}: {exc}") from None
        try:
            return inspect.getsource(obj)
        except (TypeError, OSError):
            return f"{name} = {reprlib.repr(obj)}  # a value of type {type(obj).__name__}"

    @line_magic
    def tutor(self, line: str) -> None:
        """%tutor: chat about this notebook. %tutor help | status | on | off | apply."""
        command = line.strip()
        if command in ("help", "-h", "--help", "?"):
            print(help_text())
        elif command == "status":
            print(self.status())
        elif command in ("on", "off"):
            self.ext.enabled = command == "on"
            print(f"tutor: help when a cell fails is {command}.")
        elif command == "apply":
            self._allowed("fix")
            if self.ext.pending_fix is None:
                raise UsageError("there is no checked fix yet: press 'Suggest a fix' under a failing cell first.")
            self.shell.set_next_input(self.ext.pending_fix, replace=False)
        elif command == "":
            self._allowed("chat")
            if not self.ext.has_chat_model:
                print(NO_MODEL)
                return
            display(ChatWidget(Conversation(self.ext.backend(), cells=self._cells), busy=self.ext.busy,
                               guard=self.ext.reply_guard))
        else:
            raise UsageError(TUTOR_USAGE)

    def _cells(self) -> list[str]:
        raw = self.shell.history_manager.input_hist_raw[1:]
        return [c for c in raw if not c.lstrip().startswith("%tutor")]

    def server_state(self) -> str:
        """Whether the class's server answers now, with the administrator's detail when it does not
        (a student's panels only say that it is not reachable)."""
        from ..backends import BackendError, RemoteBackend

        probe = RemoteBackend(self.ext.settings.endpoint or "", self.ext.settings.token, timeout=10.0)
        try:
            names = probe.models()
        except BackendError as exc:
            return f"not answering: {exc}"
        finally:
            probe.close()
        return f"answering; it serves {', '.join(names) or 'no models'}"

    def status(self) -> str:
        s = self.ext.settings
        if s.endpoint:
            where = f"a shared server at {s.endpoint} (nothing loads in this kernel)"
        elif s.chat_model:
            where = "a model worker process on this machine, started on first use"
        else:
            where = "nothing: no model is configured"
        lines = [f"tutor: models come from {where}.", *("  " + line for line in s.describe()),
                 f"  help when a cell fails: {'on' if self.ext.enabled else 'off'}"]
        if self.ext._backend is not None:  # noqa: SLF001 - reporting only
            lines.append(f"  backend: {self.ext._backend.describe()}")  # noqa: SLF001
        if s.endpoint:
            lines.append(f"  server: {self.server_state()}")
        lines.append("  policy in force (each part: where it came from):")
        lines += ["    " + line for line in self.ext.policy_state.describe()]
        from ..grading import sandbox_report  # what grading protects on this machine, and what not

        lines += ["  " + line for line in sandbox_report().lines()]
        return "\n".join(lines)
