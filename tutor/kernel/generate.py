"""%%generate: code for the description in the cell, streamed, checked, then put in a new cell below."""

from __future__ import annotations

import time
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ..backends import Backend, make_backend
from ..grading import Problem
from ..tutoring.generate import GenerationRefused, check_allowed, generate_code, may_show_draft
from ..tutoring.policy import Policy
from ..widgets import TutorPanel
from ..widgets.panel import student_message
from .extension import TutorExtension

NO_MODEL = ("No model is configured. Set TUTOR_COMPLETION_MODEL (codegemma-2b/7b) or TUTOR_CHAT_MODEL "
            "(codegemma-7b-it), or TUTOR_ENDPOINT for your class's server, and restart the kernel.")


def course_state(shell: Any) -> tuple[Policy, Problem | None]:
    """The policy in force and the current practice problem (the practice magics know both); with no
    practice magics, the strictest reading."""
    practice = shell.magics_manager.registry.get("PracticeMagics")
    if practice is None:
        return Policy(allow_solutions=False), None
    return practice.policy, practice.current.problem if practice.current is not None else None


@magics_class
class GenerateMagics(Magics):
    def __init__(self, shell: Any, extension: TutorExtension):
        super().__init__(shell)
        self.ext = extension

    @magic_arguments()
    @argument("--chat", action="store_true", help="ask the instruction-tuned model (default: the completion model "
                                                  "when one is configured)")
    @argument("--completion", action="store_true", help="ask the pretrained completion model")
    @cell_magic
    def generate(self, line: str, cell: str) -> None:
        """%%generate [--chat | --completion]: code for the description in this cell, checked to compile, in a
        new cell below (this cell is left as it is). Off unless the course's policy allows solutions."""
        args = parse_argstring(self.generate, line)
        if args.chat and args.completion:
            raise UsageError("choose one of --chat and --completion.")
        if not cell.strip():
            raise UsageError("describe the code you want in the cell, under %%generate.")
        if refusal := self.ext.refusal("generate"):  # the policy first, before anything reaches a model
            raise UsageError(refusal)
        policy, problem = course_state(self.shell)
        try:
            check_allowed(policy, problem, cell)
        except GenerationRefused as exc:
            raise UsageError(str(exc)) from None
        mode = self._mode(args)
        panel = TutorPanel("Code from your description")
        display(panel)
        panel.state, panel.status = "working", "Writing code... (interrupt the kernel to stop)"
        show = may_show_draft(problem)
        draft, shown = "", 0.0

        def on_text(piece: str) -> None:  # at most ten updates a second; each is a message to the browser
            nonlocal draft, shown
            draft += piece
            if time.monotonic() - shown > 0.1:
                shown = time.monotonic()
                if show:
                    panel.set_markdown(f"```python\n{draft}\n```")
                else:
                    panel.status = f"Writing code... ({len(draft)} characters; checked before it is shown)"

        try:
            result = generate_code(self._backend(mode), cell, mode=mode, policy=policy, problem=problem,
                                   context=self._context(), to_python=self.shell.transform_cell, on_text=on_text)
        except KeyboardInterrupt:
            panel.state, panel.status = "failed", "Stopped."
            return
        except GenerationRefused as exc:
            panel.state, panel.status = "failed", str(exc)
            return
        except Exception as exc:  # a backend error: say it in the panel (in a student's words), keep the kernel
            panel.state, panel.status = "failed", student_message(exc)
            return
        if result.status != "ok" or result.code is None:
            panel.set_markdown("")
            panel.state, panel.kind, panel.status = "failed", "error", result.message
            return
        panel.set_markdown(f"```python\n{result.code}```")
        panel.state, panel.status = "done", result.message
        self.shell.set_next_input(result.code, replace=False)

    def _mode(self, args: Any) -> str:
        s = self.ext.settings
        if args.chat or args.completion:
            return "chat" if args.chat else "completion"
        if s.completion_model or s.endpoint:
            return "completion"
        if s.chat_model:
            return "chat"
        raise UsageError(NO_MODEL)

    def _backend(self, mode: str) -> Backend:
        s = self.ext.settings
        if not (s.endpoint or (s.chat_model if mode == "chat" else s.completion_model)):
            variable = "TUTOR_CHAT_MODEL" if mode == "chat" else "TUTOR_COMPLETION_MODEL"
            raise UsageError(f"no {mode} model is configured: set {variable} (or TUTOR_ENDPOINT) and restart "
                             "the kernel.")
        if self.ext.has_chat_model:
            return self.ext.backend()
        # Only a completion model: the extension hands out backends for chat only, so make the same one
        # (make_backend of the same settings) and leave it with the extension, which closes it.
        if self.ext._backend is None:  # noqa: SLF001
            self.ext._backend = make_backend(s)  # noqa: SLF001
        return self.ext._backend  # noqa: SLF001

    def _context(self) -> str:
        """The code of the cells run before this one (not tutor magics), for the model's context."""
        cells = self.shell.history_manager.input_hist_raw[1:-1]
        return "\n\n".join(c for c in cells if c.strip() and not c.lstrip().startswith("%"))
