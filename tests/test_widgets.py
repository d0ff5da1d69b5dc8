"""Widgets without a kernel: instantiate, set traits, call the message handlers directly."""

from __future__ import annotations

import threading
import time
from html.parser import HTMLParser

import pytest
from scripted import ScriptedBackend

from tutor.backends import Completion
from tutor.engine import GenerationStream
from tutor.tutoring import Conversation
from tutor.widgets import Button, ChatWidget, TutorPanel, render_markdown
from tutor.widgets.markdown import ALLOWED_TAGS


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


@pytest.mark.parametrize("evil", [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=//evil></iframe>",
    "<style>body{display:none}</style>",
    '<p onclick="steal()">hi</p>',
])
def test_model_output_cannot_inject_html(evil):
    parser = Tags()
    parser.feed(render_markdown(f"Hello\n\n{evil}\n\n```python\nx = '<b>'\n```"))
    for tag, attrs in parser.found:
        assert tag in ALLOWED_TAGS
        assert not any(name.startswith("on") or name == "style" for name in attrs)
        assert not attrs.get("href", "").lower().startswith("javascript")
    assert {tag for tag, _ in parser.found} <= {"p", "pre", "code", "span"}


def test_markdown_renders_code_highlighted():
    html = render_markdown("Use `append`:\n\n```python\nitems.append(4)  # add\n```")
    assert "<code>append</code>" in html
    assert 'class="tutor-hl-c1"' in html and "<pre>" in html


def test_panel_buttons_call_back():
    clicked = []
    panel = TutorPanel("Title", "**Body**")
    panel.set_buttons(Button("a", "A", lambda: clicked.append("a")), Button("c", "Copy", copy="x = 1"))
    assert panel.buttons == [{"id": "a", "label": "A", "disabled": False},
                             {"id": "c", "label": "Copy", "disabled": False, "copy": "x = 1"}]
    panel._on_msg(panel, {"type": "click", "id": "a"}, [])
    panel._on_msg(panel, {"type": "click", "id": "unknown"}, [])
    assert clicked == ["a"]
    assert panel.html == "<p><strong>Body</strong></p>\n"


def test_panel_streams_and_reports_errors():
    panel = TutorPanel("Explanation")
    backend = ScriptedBackend("A **list** keeps items in order.")
    panel.stream(lambda: backend.chat([]), heading="Intro\n\n", after=(Button("again", "Again"),)).join(10)
    assert (panel.state, panel.status) == ("done", "")
    assert "<strong>list</strong>" in panel.html and panel.markdown.startswith("Intro")
    assert [b["id"] for b in panel.buttons] == ["again"]

    def broken():
        raise ValueError("there is no code to explain: the cell is empty.")

    panel.stream(broken).join(10)
    assert (panel.state, panel.status) == ("failed", "there is no code to explain: the cell is empty.")


def test_panel_stop_cancels():
    cancel, started = threading.Event(), threading.Event()

    def pieces():
        yield "first piece "
        started.set()
        cancel.wait(10)  # a model that would go on for long, until it is cancelled
        return Completion("first piece ", "cancelled", 5, 1)

    panel = TutorPanel("x")
    thread = panel.stream(lambda: GenerationStream(pieces(), cancel))
    assert started.wait(10)
    assert [b["id"] for b in panel.buttons] == ["stop"]
    panel.click("stop")
    thread.join(10)
    assert (panel.state, panel.status, panel.markdown) == ("done", "Stopped.", "first piece ")


def test_chat_widget():
    widget = ChatWidget(Conversation(ScriptedBackend("First answer.", "Second answer.")))
    widget._on_msg(widget, {"type": "ask", "text": "What is a loop?"}, [])
    deadline = time.monotonic() + 10
    while (len(widget.turns) < 2 or widget.state != "idle") and time.monotonic() < deadline:
        time.sleep(0.01)
    widget.ask("   ")  # ignored
    widget.ask("And a list?").join(10)
    assert [t["role"] for t in widget.turns] == ["user", "assistant", "user", "assistant"]
    assert widget.turns[3]["html"] == "<p>Second answer.</p>\n"
    assert widget.state == "idle"
