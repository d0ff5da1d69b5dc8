"""README's notebook features in a real ipykernel, driven like a notebook: `%explain` of the previous
cell and of a name, `--language`, a checked fix shown under a failing cell and put in a new cell by
`%tutor apply`, and a course policy from TUTOR_POLICY. The model's replies are scripted inside the
kernel (tests/scripted.py) where the test needs a particular answer (a fix that compiles, a word the
policy removes); everything else is the real extension."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_kernel import WIDGET_MIME, kernel, panels, stderr_of, stream_of

TESTS = str(Path(__file__).resolve().parent)
BROKEN = "for score in [1, 2]\n    print(score)\n"
FIXED = "for score in [1, 2]:\n    print(score)\n"


def script(k, *replies: str) -> None:
    """Give the kernel's tutor a backend that answers ``replies`` in order (and records its prompts)."""
    out = k.run(f"import sys\nsys.path.insert(0, {TESTS!r})\nfrom scripted import ScriptedBackend\n"
                "from tutor.kernel import _loaded\n"
                f"next(iter(_loaded.values()))._backend = ScriptedBackend(*{list(replies)!r})")
    assert not [m for m in out if m["msg_type"] == "error"], out


def prompts(k) -> list[list[dict]]:
    """The messages the scripted backend was sent, one list per call."""
    out = k.run("import json\nprint(json.dumps(next(iter(_loaded.values()))._backend.calls))")
    return json.loads(stream_of(out, "stdout"))


def finished(k, messages: list[dict]) -> dict:
    """The state of the one panel among ``messages``, once its work is done."""
    [panel] = panels(messages)
    comm_id = panel["data"][WIDGET_MIME]["model_id"]
    return k.wait_for(comm_id, lambda s: s.get("state") in ("done", "failed"))


@pytest.fixture(scope="module")
def k(tiny_dirs):
    # A chat model is configured (so the features are on), but every reply here is scripted.
    with kernel(TUTOR_CHAT_MODEL=str(tiny_dirs["7b-it"]), TUTOR_DEVICE="cpu") as k:
        assert not [m for m in k.run("%load_ext tutor") if m["msg_type"] == "error"]
        yield k


def test_explain_the_previous_cell(k):
    script(k, "It computes the **area** of a circle.")
    k.run("def area(r):\n    return 3.14159 * r * r")
    state = finished(k, k.run("%explain"))
    assert state["state"] == "done", state.get("status")
    assert state["title"] == "Explanation (beginner)"
    assert "<strong>area</strong> of a circle" in state["html"]  # the reply, as the notebook shows it
    [call] = prompts(k)
    assert "```python\ndef area(r):\n    return 3.14159 * r * r\n```" in call[-1]["content"]


def test_explain_a_name_explains_its_source_or_its_value(k):
    k.run("def greet(name):\n    return 'Hello, ' + name\n\nscores = [90, 85]")
    script(k, "It builds a greeting.", "A list of two numbers.")
    k.run("x = 1")  # the previous cell is not what `%explain name` explains
    function = finished(k, k.run("%explain greet --level expert"))
    value = finished(k, k.run("%explain scores"))
    assert function["state"] == value["state"] == "done"
    assert function["title"] == "Explanation (expert)" and "It builds a greeting." in function["html"]
    assert "A list of two numbers." in value["html"]
    first, second = prompts(k)
    assert "def greet(name):\n    return 'Hello, ' + name" in first[-1]["content"]
    assert "x = 1" not in first[-1]["content"]
    assert "scores = [90, 85]  # a value of type list" in second[-1]["content"]


def test_explain_in_another_language(k):
    script(k, "It prints a greeting.")
    state = finished(k, k.run('%%explain --language c++\nint main() { std::cout << "hi"; }'))
    assert state["state"] == "done" and "It prints a greeting." in state["html"]
    [call] = prompts(k)
    assert 'Explain what this C++ code does' in call[-1]["content"]
    assert '```c++\nint main() { std::cout << "hi"; }\n' in call[-1]["content"]
    assert "invalid choice: 'cobol'" in stderr_of(k.run("%%explain --language cobol\nDISPLAY 'HI'."))


def test_a_checked_fix_is_shown_and_tutor_apply_puts_it_in_a_new_cell(k):
    script(k, f"```python\n{FIXED}```\nAdd the colon at the end of the `for` line.")
    out = k.run(BROKEN)
    assert next(m for m in out if m["msg_type"] == "error")["content"]["ename"] == "SyntaxError"
    [panel] = panels(out)
    comm_id = panel["data"][WIDGET_MIME]["model_id"]
    k.click(comm_id, "fix")
    state = k.wait_for(comm_id, lambda s: s.get("state") in ("done", "failed"))
    assert state["state"] == "done", state.get("status")
    assert state["status"].startswith("Your cell is unchanged")
    assert "Suggested fix" in state["html"] and "Add the colon" in state["html"]
    insert = next(b for b in state["buttons"] if b["id"] == "insert")
    assert insert["insert"] == FIXED
    k.run("%tutor apply")
    [payload] = [p for p in k.payload() if p.get("source") == "set_next_input"]
    assert payload["text"] == FIXED and payload["replace"] is False  # a new cell; the student's cell stays


@pytest.fixture(scope="module")
def course(tiny_dirs, tmp_path_factory):
    policy = tmp_path_factory.mktemp("course") / "policy.json"
    policy.write_text(json.dumps({"max_hints": 2, "avoid_words": ["sorted"], "avoid_topics": ["recursion"]}))
    with kernel(TUTOR_CHAT_MODEL=str(tiny_dirs["7b-it"]), TUTOR_DEVICE="cpu", TUTOR_POLICY=str(policy)) as k:
        assert not [m for m in k.run("%load_ext tutor") if m["msg_type"] == "error"]
        yield k


def test_the_course_policy_file_is_obeyed(course):
    """TUTOR_POLICY as docs/practice.md documents it: a topic left out, a hint limit, a word removed."""
    k = course
    assert "the topic 'recursion' is not part of this course" in stderr_of(k.run("%practice recursion"))
    k.run("%practice lists --level 1")
    [payload] = [p for p in k.payload() if p.get("source") == "set_next_input"]
    function = next(line for line in payload["text"].splitlines() if line.startswith("def "))
    k.run(f"{function}\n    return None")  # the student's first try: the model's hints read it
    script(k, "Have you tried sorted on the list?", "Think about what sorted returns.")
    first = finished(k, k.run("%hint"))
    assert first["state"] == "done" and first["title"] == "Hint 1: nudge", first.get("status")
    assert "[...]" in first["html"] and "sorted" not in first["html"]
    assert first["status"] == "1 more hint for this exercise."
    second = finished(k, k.run("%hint"))
    assert "sorted" not in second["html"] and second["status"] == "That was the last hint for this exercise."
    third = finished(k, k.run("%hint"))
    assert third["state"] == "failed" and "you have used all 2 hints" in third["status"]
