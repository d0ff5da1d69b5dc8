"""The kernel extension in a real ipykernel, driven through jupyter_client like a notebook would."""

from __future__ import annotations

import os
import queue
import re
import time
from contextlib import contextmanager

import pytest
from jupyter_client.manager import start_new_kernel

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class Kernel:
    """A kernel client that also keeps the state of the widgets the kernel creates."""

    def __init__(self, client):
        self.kc = client
        self.widgets: dict[str, dict] = {}
        self.statuses: dict[str, list[str]] = {}  # every status line a widget showed, in order
        self.progress: dict[str, list[float]] = {}  # every load progress a widget showed, in order
        self.streams: dict[str, dict[str, str]] = {}  # request id -> stream name -> text (also after idle)

    def _absorb(self, msg: dict) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            texts = self.streams.setdefault(msg["parent_header"].get("msg_id", ""), {})
            texts[content["name"]] = texts.get(content["name"], "") + content["text"]
        if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
            self.widgets[content["comm_id"]] = dict(content["data"].get("state", {}))
        elif kind == "comm_msg" and content["comm_id"] in self.widgets:
            data = content["data"]
            if data.get("method") == "update":
                self.widgets[content["comm_id"]].update(data.get("state", {}))
                if "status" in data.get("state", {}):
                    self.statuses.setdefault(content["comm_id"], []).append(data["state"]["status"])
                if "progress" in data.get("state", {}):
                    self.progress.setdefault(content["comm_id"], []).append(data["state"]["progress"])

    def run(self, code: str, timeout: float = 60, **options) -> list[dict]:
        """Execute ``code`` (``options``: silent, store_history ...); return its iopub messages (widget
        messages are absorbed too)."""
        msg_id = self.kc.execute(code, **options)
        self.last_msg_id = msg_id
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            self._absorb(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            out.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return out
        raise TimeoutError(code)

    def payload(self) -> list[dict]:
        """The payload of the last execute_reply (set_next_input lands here)."""
        while True:
            reply = self.kc.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == self.last_msg_id:
                return reply["content"].get("payload", [])

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._absorb(self.kc.get_iopub_msg(timeout=0.2))
            except queue.Empty:
                pass

    def send(self, comm_id: str, message: dict) -> None:
        """What the widget's JavaScript does with model.send(message)."""
        content = {"comm_id": comm_id, "data": {"method": "custom", "content": message}}
        self.kc.shell_channel.send(self.kc.session.msg("comm_msg", content))

    def click(self, comm_id: str, button: str) -> None:
        self.send(comm_id, {"type": "click", "id": button})

    def wait_for(self, comm_id: str, predicate, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain(0.3)
            if predicate(self.widgets[comm_id]):
                return self.widgets[comm_id]
        raise TimeoutError(self.widgets[comm_id])


@contextmanager
def kernel(**env: str):
    saved = {k: os.environ.get(k) for k in ("TUTOR_CHAT_MODEL", "TUTOR_ENDPOINT", "TUTOR_DEVICE", *env)}
    for k in saved:
        os.environ.pop(k, None)
    os.environ.update(env)
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        yield Kernel(kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def panels(messages: list[dict]) -> list[dict]:
    return [m["content"] for m in messages if m["msg_type"] == "display_data" and WIDGET_MIME in m["content"]["data"]]


def error_of(messages: list[dict]) -> dict:
    return next(m["content"] for m in messages if m["msg_type"] == "error")


@pytest.fixture(scope="module")
def with_model(tiny_dirs):
    with kernel(TUTOR_CHAT_MODEL=str(tiny_dirs["7b-it"]), TUTOR_DEVICE="cpu") as k:
        assert not [m for m in k.run("%load_ext tutor") if m["msg_type"] == "error"]
        yield k


def test_failing_cell_keeps_its_traceback_and_gets_a_panel(with_model):
    out = with_model.run("numbers = [1, 2, 3]\nprint(numbers[5])")
    error = error_of(out)
    assert (error["ename"], error["evalue"]) == ("IndexError", "list index out of range")
    traceback = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))
    assert "numbers[5]" in traceback and "IndexError" in traceback  # IPython's own traceback, as always
    [panel] = panels(out)
    comm_id = panel["data"][WIDGET_MIME]["model_id"]
    state = with_model.widgets[comm_id]
    assert state["kind"] == "error" and state["title"]
    assert "line 2" in state["title"] and "<code>numbers</code> has 3 items" in state["html"]
    assert [b["id"] for b in state["buttons"]] == ["more", "fix"]
    assert "text/plain" in panel["data"]  # readable where widgets are not


def test_explain_more_streams_from_the_model(with_model):
    out = with_model.run("total = 0\nfor i in range(3)\n    total += i")  # a syntax error
    assert error_of(out)["ename"] == "SyntaxError"
    [panel] = panels(out)
    comm_id = panel["data"][WIDGET_MIME]["model_id"]
    before = with_model.widgets[comm_id]["html"]
    with_model.click(comm_id, "more")
    state = with_model.wait_for(comm_id, lambda s: s.get("state") in ("done", "failed"))
    assert state["state"] == "done", state.get("status")
    assert state["html"].startswith(before[:20]) and len(state["html"]) > len(before)
    assert with_model.run("1 + 1")[-1]["content"]["execution_state"] == "idle"  # the kernel lives on


def test_suggest_a_fix_is_checked_before_it_is_shown(with_model):
    out = with_model.run("if True\n    print('x')")
    comm_id = panels(out)[0]["data"][WIDGET_MIME]["model_id"]
    with_model.click(comm_id, "fix")
    state = with_model.wait_for(comm_id, lambda s: s.get("state") in ("done", "failed"))
    # A random tiny model cannot write a fix that compiles: it must be withheld, honestly.
    assert state["state"] == "done"
    assert "No fix is shown" in state["status"]
    assert "insert" not in [b["id"] for b in state["buttons"]]


def test_explain_magic_streams_into_a_panel(with_model):
    out = with_model.run("%%explain --level expert\nsquares = [n * n for n in range(10)]")
    [panel] = panels(out)
    comm_id = panel["data"][WIDGET_MIME]["model_id"]
    state = with_model.wait_for(comm_id, lambda s: s.get("state") in ("done", "failed"))
    assert state["state"] == "done" and state["title"] == "Explanation (expert)"
    assert stream_of(with_model.run("print('squares' in dir())"), "stdout") == "False\n"  # %%explain does not run it


def stream_of(messages: list[dict], name: str) -> str:
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream" and m["content"]["name"] == name)


def stderr_of(messages: list[dict]) -> str:
    return stream_of(messages, "stderr")


def test_explain_errors_are_one_line(with_model):
    message = stderr_of(with_model.run("%explain no_such_thing"))
    assert message.startswith("UsageError: cannot find 'no_such_thing'") and message.count("\n") == 1
    assert "invalid choice: 'wizard'" in stderr_of(with_model.run("%explain --level wizard"))
    assert "usage: %tutor" in stderr_of(with_model.run("%tutor dance"))
    assert "no checked fix yet" in stderr_of(with_model.run("%tutor apply"))


def test_chat_about_the_notebook(with_model):
    with_model.run("fruits = ['apple', 'pear']")
    [chat] = panels(with_model.run("%tutor"))
    comm_id = chat["data"][WIDGET_MIME]["model_id"]
    with_model.send(comm_id, {"type": "ask", "text": "What is in fruits?"})
    state = with_model.wait_for(comm_id, lambda s: len(s.get("turns", [])) == 2 and s.get("state") == "idle")
    assert [t["role"] for t in state["turns"]] == ["user", "assistant"]
    assert "What is in fruits?" in state["turns"][0]["html"] and state["status"] == ""
    with_model.send(comm_id, {"type": "ask", "text": "And <script>alert(1)</script>?"})
    state = with_model.wait_for(comm_id, lambda s: len(s.get("turns", [])) == 4 and s.get("state") == "idle")
    assert "<script>" not in state["turns"][2]["html"] and "&lt;script&gt;" in state["turns"][2]["html"]


def test_tutor_status_and_off(with_model, tiny_dirs):
    text = stream_of(with_model.run("%tutor status"), "stdout")
    assert "model worker process" in text and str(tiny_dirs["7b-it"]) in text
    assert "environment TUTOR_CHAT_MODEL" in text
    with_model.run("%tutor off")
    assert panels(with_model.run("1 / 0")) == []
    with_model.run("%tutor on")
    assert len(panels(with_model.run("1 / 0"))) == 1


def test_without_a_model_everything_says_how_to_configure(tmp_path):
    with kernel() as k:
        k.run("%load_ext tutor")
        out = k.run("x = undefined_name + 1")
        assert error_of(out)["ename"] == "NameError"
        comm_id = panels(out)[0]["data"][WIDGET_MIME]["model_id"]
        state = k.widgets[comm_id]
        assert "TUTOR_CHAT_MODEL" in state["status"]
        assert all(b["disabled"] for b in state["buttons"])
        chat = k.run("%tutor")
        assert "No model is configured" in stream_of(chat, "stdout")
        explain = panels(k.run("%%explain\nx = 1"))[0]
        assert "TUTOR_CHAT_MODEL" in k.widgets[explain["data"][WIDGET_MIME]["model_id"]]["status"]
        assert stream_of(k.run("print(2 + 2)"), "stdout") == "4\n"


def test_practice_check_and_hint(with_model):
    from tutor.grading import load_bank

    out = with_model.run("%practice lists --level 1")
    [panel] = panels(out)
    [payload] = [p for p in with_model.payload() if p.get("source") == "set_next_input"]
    assert payload["text"].startswith("%%check\n") and payload["replace"] is False  # a new cell, nothing overwritten
    problem = next(p for p in load_bank() if p.starter == payload["text"][len("%%check\n"):])
    state = with_model.widgets[panel["data"][WIDGET_MIME]["model_id"]]
    assert problem.title in state["title"] and [b["id"] for b in state["buttons"]] == ["check", "hint"]

    starter = with_model.run(payload["text"])
    report = with_model.widgets[panels(starter)[0]["data"][WIDGET_MIME]["model_id"]]
    assert "Not yet" in report["html"] and "Hidden tests (you cannot see them)" in report["html"]
    for case in problem.hidden_tests:  # hidden tests are reported by count, never by content
        assert case.shown not in report["html"]

    solved = with_model.run("%%check\n" + problem.solution)
    report = with_model.widgets[panels(solved)[0]["data"][WIDGET_MIME]["model_id"]]
    assert "All tests passed" in report["html"]
    assert stream_of(with_model.run(f"print(callable({problem.function}))"), "stdout") == "True\n"

    hint = panels(with_model.run("%hint"))[0]
    state = with_model.wait_for(hint["data"][WIDGET_MIME]["model_id"], lambda s: s.get("state") in ("done", "failed"))
    assert state["state"] == "done" and state["title"] == "Hint 1: nudge" and "3 more hints" in state["status"]

    check = panels(with_model.run("%check"))[0]
    state = with_model.wait_for(check["data"][WIDGET_MIME]["model_id"], lambda s: s.get("state") in ("done", "failed"))
    assert "All tests passed" in state["html"]
    assert "no practice problems on 'knitting'" in stderr_of(with_model.run("%practice knitting"))


def test_usage_errors_are_one_line_and_a_server_that_is_down_is_told_plainly():
    from jupyter_apps import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with kernel(TUTOR_ENDPOINT=endpoint) as k:
        k.run("%load_ext tutor")
        for line, says in (("%hint", "there is no current problem"), ("%check", "there is no current problem"),
                           ("%explain no_such_name", "cannot find 'no_such_name'"), ("%tutor dance", "usage: %tutor")):
            out = k.run(line)
            message = stderr_of(out)
            assert says in message and message.count("\n") == 1, (line, message)
            assert panels(out) == [], f"{line}: the tutor explained its own usage error"
        text = stream_of(k.run("%tutor help"), "stdout")
        assert "%hint" in text and "%%check" in text and "%tutor status" in text

        out = k.run("values = [1, 2]\nvalues[7]")
        comm_id = panels(out)[0]["data"][WIDGET_MIME]["model_id"]
        k.click(comm_id, "more")
        state = k.wait_for(comm_id, lambda s: s.get("state") in ("done", "failed"), timeout=60)
        assert state["state"] == "failed" and "not reachable right now" in state["status"]
        assert "ConnectError" not in state["status"] and "ask your teacher" in state["status"]
        assert [b["id"] for b in state["buttons"]] == ["more", "fix"]  # it can be tried again
        status = stream_of(k.run("%tutor status"), "stdout")
        assert f"server: not answering: cannot reach the model server at {endpoint}" in status  # for the teacher


def test_the_first_model_call_says_the_model_is_loading(tiny_dirs):
    with kernel(TUTOR_CHAT_MODEL=str(tiny_dirs["7b-it"]), TUTOR_DEVICE="cpu") as k:
        k.run("%load_ext tutor")
        comm_id = panels(k.run("1 / 0"))[0]["data"][WIDGET_MIME]["model_id"]
        k.click(comm_id, "more")
        state = k.wait_for(comm_id, lambda s: s.get("state") in ("done", "failed"))
        assert state["state"] == "done", state["status"]
        seen = k.statuses[comm_id]
        assert seen[0].startswith("Loading the tutor's model"), seen
        k.click(comm_id, "fix")  # the model is up now: no loading note
        k.wait_for(comm_id, lambda s: "No fix is shown" in s.get("status", "") or s.get("state") == "failed")
        assert not any(s.startswith("Loading") for s in k.statuses[comm_id][len(seen):])


def test_while_the_model_loads_the_panel_draws_a_bar_and_the_cell_shows_a_text_bar(tiny_dirs):
    # The worker sleeps 0.1 s after each progress event it reports (a test-only hook, TUTOR_TEST_LOAD_DELAY), so
    # that the tiny model's load, milliseconds, lasts a few seconds and can be watched.
    with kernel(TUTOR_CHAT_MODEL=str(tiny_dirs["7b-it"]), TUTOR_DEVICE="cpu", TUTOR_TEST_LOAD_DELAY="0.1") as k:
        k.run("%load_ext tutor")
        comm_id = panels(k.run("%%explain\nsquares = [n * n for n in range(5)]"))[0]["data"][WIDGET_MIME]["model_id"]
        asked = k.last_msg_id
        state = k.wait_for(comm_id, lambda s: s.get("state") in ("done", "failed"))
        assert state["state"] == "done", state["status"]
        wait_until_drained = time.monotonic() + 10  # the text bar's last line may come just after the answer
        while "100%" not in k.streams.get(asked, {}).get("stderr", "") and time.monotonic() < wait_until_drained:
            k.drain(0.3)
        fractions = [f for f in k.progress.get(comm_id, []) if f >= 0]
        assert fractions == sorted(fractions) and any(0 < f < 1 for f in fractions), k.progress.get(comm_id)
        assert state["progress"] == -1  # no bar once the answer comes
        assert any(re.search(r"reading weights, \d+%", s) for s in k.statuses[comm_id]), k.statuses[comm_id]
        text = k.streams.get(asked, {}).get("stderr", "")  # in the output of the cell that asked
        assert "Loading codegemma-7b-it" in text and "100%" in text, text


def test_a_lessons_student_copy_from_the_top(tmp_path):
    """The first cells a student runs in a lesson: the tutor loads, the stub says to replace it, %hint knows
    the exercise, and a failing visible test says what was expected."""
    import nbformat

    from tutor.lessons import build

    lesson = os.path.join(os.path.dirname(__file__), "..", "lessons", "05-functions.ipynb")
    copy, _ = build(lesson, tmp_path / "handout/")
    cells = nbformat.read(copy, as_version=4).cells
    stub = next(i for i, c in enumerate(cells) if c.get("metadata", {}).get("tutor", {}).get("exercise"))
    with kernel() as k:
        k.run(f"%cd {copy.parent}")
        assert "exercises in this lesson" in stream_of(k.run(cells[0].source), "stdout")  # %load_ext tutor, %lesson
        for cell in cells[1:stub]:
            if cell.cell_type == "code":
                assert not [m for m in k.run(cell.source) if m["msg_type"] == "error"]
        out = k.run(cells[stub].source)
        assert error_of(out)["ename"] == "NotImplementedError"
        state = k.widgets[panels(out)[0]["data"][WIDGET_MIME]["model_id"]]
        assert "not written yet" in state["title"] and "Replace" in state["html"], state

        hint = panels(k.run("%hint"))[0]  # the exercise is the current problem
        state = k.wait_for(hint["data"][WIDGET_MIME]["model_id"], lambda s: s.get("state") in ("done", "failed"))
        assert state["title"] == "Hint 1: nudge", state

        k.run('def greet(name, greeting="Hello"):\n    return greeting + " " + name')
        out = k.run(cells[stub + 1].source)  # its visible tests
        assert error_of(out)["ename"] == "AssertionError"
        state = k.widgets[panels(out)[0]["data"][WIDGET_MIME]["model_id"]]
        assert "was expected" in state["html"] and "Hello, Ada!" in state["html"], state
