"""Help on an error output, asked for by the tutor's JupyterLab extension (its Explain and Fix buttons).

The lab extension draws the buttons on a failing cell's error output in any Python notebook, also one
that never ran `%load_ext tutor`. A click sends one silent execution to the same kernel:

    __import__("tutor.kernel.lab", fromlist=["help_on_error"]).help_on_error(get_ipython(), "<json>")

with the JSON of :func:`help_request` (the cell's source and the error output's ename, evalue and
traceback). This loads the tutor into the kernel if it is not loaded (so later failing cells get the
tutor's panel of their own), shows the same panel that a failing cell gets, and presses its Explain
more or Suggest a fix button. A silent execution binds no names, adds nothing to the history and fires
no post_run_cell, and nothing here raises, so the kernel's last error stays the student's.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import sys
from typing import Any

from IPython.display import display

from .extension import TutorExtension

ACTIONS = {"explain": "more", "fix": "fix"}  # the lab's button -> the panel's button
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def help_on_error(shell: Any, request: str) -> None:
    """Show the tutor's panel for the error in ``request`` (JSON) and press the asked-for button."""
    try:
        asked = json.loads(request)
        action = ACTIONS[asked["action"]]
        source = str(asked.get("source", ""))
        extension = loaded_extension(shell)
        error, report = find_error(shell, source, str(asked.get("ename", "")), str(asked.get("evalue", "")),
                                   [str(line) for line in asked.get("traceback", [])])
        panel = extension.error_panel(source, error, report=report)
        display(panel)
        if extension.has_chat_model:  # else the panel already says how to set a model up
            panel.click(action)
    except Exception as exc:  # a silent execution that raised would replace the kernel's last error
        print(f"tutor: could not help with this error ({type(exc).__name__}: {exc}).")


def loaded_extension(shell: Any) -> TutorExtension:
    """The tutor's extension in this kernel, loaded now (as `%load_ext tutor` does) if it was not."""
    from . import _loaded

    if id(shell) not in _loaded:
        shell.extension_manager.load_extension("tutor")
    return _loaded[id(shell)]


def find_error(shell: Any, source: str, ename: str, evalue: str,
               traceback: list[str]) -> tuple[BaseException, str | None]:
    """The exception behind an error output: the kernel's last error when it is this one (its frames let
    the tutor read the variables), else one rebuilt from the output, with the output's traceback as the
    report for the model (None: the live exception's own)."""
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if isinstance(last, BaseException) and type(last).__name__ == ename and _message(last) == evalue:
        return last, None
    report = "\n".join(_ANSI.sub("", line) for line in traceback).strip()
    own = [line for line in report.splitlines() if "site-packages" not in line and "IPython/core" not in line]
    report = "\n".join(own[-12:])
    kind = getattr(builtins, ename, None)
    if isinstance(kind, type) and issubclass(kind, SyntaxError):
        try:  # the same source fails the same way when compiled again: the real error, with its line
            compile(shell.transform_cell(source), "<cell>", "exec")
        except SyntaxError as exc:
            return exc, report
    if isinstance(kind, type) and issubclass(kind, Exception):
        argument: object = evalue
        if issubclass(kind, KeyError):  # its message is the key's repr: KeyError('x') says 'x'
            try:
                argument = ast.literal_eval(evalue)
            except (ValueError, SyntaxError):
                pass
        try:
            return kind(argument), report
        except Exception:
            pass
    # Not a built-in (a library's error): an exception of that name, so the panel and the model see it.
    return type(ename or "Exception", (Exception,), {})(evalue), report


def _message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return ""


def help_code(request: dict[str, Any]) -> str:
    """The kernel code that the lab extension sends, character for character as errorHelpCode in
    labextension/src/logic.ts writes it (JSON.stringify's spacing; both tests pin the same text)."""
    def compact(value: object) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    return ('__import__("tutor.kernel.lab", fromlist=["help_on_error"]).help_on_error(get_ipython(), '
            f"{compact(compact(request))})")
