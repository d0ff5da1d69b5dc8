"""The extension's logic in an in-process IPython shell, with a scripted model for the fix path."""

from __future__ import annotations

import re
import threading
import time

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult, InteractiveShell
from scripted import ScriptedBackend
from waiting import wait_until

from tutor.backends import BackendError, Completion
from tutor.engine import GenerationStream
from tutor.kernel import TutorExtension
from tutor.settings import resolve_settings
from tutor.widgets import render_markdown

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


class DownBackend(ScriptedBackend):
    """A server that cannot be reached: what RemoteBackend raises then."""

    def chat(self, messages, options=None):
        raise BackendError("cannot reach the model server at http://10.0.0.9/v1 (ConnectError: refused). "
                           "Check TUTOR_ENDPOINT and that the server is running.", 503, "unreachable")


def wait_idle(panel, timeout=10.0):
    deadline = time.monotonic() + timeout
    while panel.state == "working" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert panel.state != "working", "the panel stayed busy"


def test_explain_more_can_be_retried_after_an_error_and_a_student_reads_why(shell):
    ext = TutorExtension(shell, resolve_settings(environ={"TUTOR_CHAT_MODEL": "scripted"}))
    ext._backend = DownBackend()
    panel = ext.error_panel(BROKEN, failing(shell, BROKEN))
    first = panel.markdown
    panel.click("more")
    wait_idle(panel)
    assert panel.state == "failed" and "not reachable right now" in panel.status
    assert "ConnectError" not in panel.status and "TUTOR_ENDPOINT" not in panel.status  # the admin's detail
    assert [b["id"] for b in panel.buttons] == ["more", "fix"]
    ext._backend = ScriptedBackend("A loop needs a colon.")
    panel.click("more")  # again, now that the server is back
    wait_idle(panel)
    assert panel.state == "done" and panel.markdown == first + "\n\n---\n\nA loop needs a colon."


def test_explain_more_can_be_retried_after_stop(shell):
    cancel, started = threading.Event(), threading.Event()

    class Slow(ScriptedBackend):
        def chat(self, messages, options=None):
            def pieces():
                yield "The colon "
                started.set()
                cancel.wait(10)
                return Completion("The colon ", "cancelled", 5, 1)
            return GenerationStream(pieces(), cancel)

    ext = TutorExtension(shell, resolve_settings(environ={"TUTOR_CHAT_MODEL": "scripted"}))
    ext._backend = Slow()
    panel = ext.error_panel(BROKEN, failing(shell, BROKEN))
    panel.click("more")
    assert started.wait(10)
    panel.click("stop")
    wait_idle(panel)
    assert panel.status == "Stopped." and [b["id"] for b in panel.buttons] == ["more", "fix"]


def test_usage_errors_get_no_tutor_panel(shell, monkeypatch):
    ext = TutorExtension(shell, resolve_settings(environ={}))
    shown = []
    monkeypatch.setattr("tutor.kernel.extension.display", shown.append)
    result = ExecutionResult(ExecutionInfo("%hint", False, False, True, None))
    result.error_in_exec = UsageError("there is no current problem: start one with %practice")
    ext.post_run_cell(result)
    assert shown == []
    result.error_in_exec = ZeroDivisionError("division by zero")  # a student's own error still gets one
    ext.post_run_cell(result)
    assert len(shown) == 1


def test_tutor_help_lists_every_magic_and_subcommand(capsys):
    from tutor.kernel import load_ipython_extension, unload_ipython_extension
    from tutor.kernel.magics import TUTOR_USAGE

    shell = InteractiveShell.instance()
    load_ipython_extension(shell)
    try:
        shell.run_line_magic("tutor", "help")
        text = capsys.readouterr().out
        ours = [m for name, m in shell.magics_manager.registry.items()
                if name in ("TutorMagics", "PracticeMagics", "GenerateMagics")]
        assert len(ours) == 3
        names = [("%" if kind == "line" else "%%") + name
                 for m in ours for kind in ("line", "cell") for name in m.magics[kind]]
        assert {"%tutor", "%explain", "%%explain", "%practice", "%check", "%%check", "%hint", "%lesson",
                "%%generate"} <= set(names)
        for name in names:
            assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", text, re.MULTILINE), f"{name} is not in %tutor help"
        subcommands = re.search(r"\[(.*?)\]", TUTOR_USAGE).group(1).split(" | ")
        for sub in subcommands:
            assert f"%tutor {sub}" in text, f"%tutor {sub} is not in %tutor help"
    finally:
        unload_ipython_extension(shell)


def test_a_written_partial_code_hint_keeps_its_lines():
    from tutor.grading import load_bank
    from tutor.kernel.practice import hint_markdown

    partial = load_bank().get("largest").hint(3)
    assert partial.count("\n") >= 2
    html = render_markdown(hint_markdown(partial, code=True))
    assert "<pre>" in html and html.count("\n") >= partial.count("\n")
    prose = "First find the largest.\nThen return it."
    assert "<br" in render_markdown(hint_markdown(prose, code=False))
    assert hint_markdown("One line.", code=True) == "One line."


@pytest.mark.parametrize("model", ["no problem passes its tests", "too slow"])
def test_practice_new_falls_back_to_the_bank_promptly_with_its_starter_cell(shell, monkeypatch, model):
    from tutor.kernel.practice import PracticeMagics

    ext = TutorExtension(shell, resolve_settings(environ={"TUTOR_CHAT_MODEL": "scripted"}))
    release = threading.Event()

    class Slow(ScriptedBackend):
        def chat(self, messages, options=None):
            def pieces():
                release.wait(30)  # a model that would take minutes
                yield "{"
                return Completion("{", "cancelled", 5, 1)
            return GenerationStream(pieces(), release)

    ext._backend = ScriptedBackend("not json", "still not", "nope") if model != "too slow" else Slow()
    magics = PracticeMagics(shell, ext)
    magics.new_problem_seconds = 2.0
    shown, inserted = [], []
    monkeypatch.setattr("tutor.kernel.practice.display", shown.append)
    monkeypatch.setattr(shell, "set_next_input", lambda text, replace=False: inserted.append((text, replace)))
    start = time.monotonic()
    magics.practice("loops --new")
    assert time.monotonic() - start < 10
    release.set()
    [panel] = shown
    assert "Writing a problem" not in panel.status and panel.state != "working"
    assert "from the problem bank" in panel.title and magics.current.problem.topic == "loops"
    [(text, replace)] = inserted
    assert text == f"%%check\n{magics.current.problem.starter}" and replace is False
    assert "new cell below" in panel.markdown
