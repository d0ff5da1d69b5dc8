"""The extension's logic in an in-process IPython shell, with a scripted model for the fix path."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult, InteractiveShell
from scripted import ScriptedBackend
from waiting import wait_until

from tutor.kernel import TutorExtension
from tutor.settings import resolve_settings

BROKEN = "for score in [1, 2]\n    print(score)\n"
FIXED = "for score in [1, 2]:\n    print(score)\n"


@pytest.fixture
def shell():
    return InteractiveShell.instance()


def failing(shell, source):
    try:
        compile(source, "<cell>", "exec")
    except SyntaxError as exc:
        return exc
    raise AssertionError("expected a syntax error")


def test_a_checked_fix_is_offered_for_insertion_and_the_cell_is_untouched(shell):
    ext = TutorExtension(shell, resolve_settings(environ={"TUTOR_CHAT_MODEL": "scripted"}))
    ext._backend = ScriptedBackend(f"```python\n{FIXED}```\nAdded the colon.")
    panel = ext.error_panel(BROKEN, failing(shell, BROKEN))
    assert panel.title.startswith("A colon is missing")  # the model-free diagnosis comes first
    panel.click("fix")
    wait_until(lambda: panel.state != "working", 60, "the fix to be checked")
    assert panel.state == "done", panel.status
    assert "-for score in [1, 2]\n+for score in [1, 2]:" in panel.markdown
    insert = next(b for b in panel.buttons if b["id"] == "insert")
    assert insert["insert"] == FIXED and ext.pending_fix == FIXED


def test_the_hook_never_raises_and_ignores_interrupts(shell, monkeypatch):
    ext = TutorExtension(shell, resolve_settings(environ={}))

    interrupted = ExecutionResult(ExecutionInfo("while True: pass", False, False, True, None))
    interrupted.error_in_exec = KeyboardInterrupt()
    shown = []
    monkeypatch.setattr(shell.display_pub, "publish", lambda *a, **k: shown.append(a))
    ext.post_run_cell(interrupted)  # nothing shown for an interrupt
    assert shown == []
    ext.post_run_cell(object())  # malformed input: swallowed, never raised
