"""The tutoring layer without a kernel: prompts, fix validation and retries, conversation."""

from __future__ import annotations

import pytest
from scripted import ScriptedBackend

from tutor.backends import LocalBackend
from tutor.tutoring import Conversation, check_fix, explain, explain_messages, extract_code, propose_fix

BROKEN = "def area(r)\n    return 3.14 * r * r\n\nprint(area(2))\n"
ERROR = "SyntaxError: expected ':' (line 1)"
GOOD = "def area(r):\n    return 3.14 * r * r\n\nprint(area(2))\n"


def test_only_a_fix_that_passes_the_check_is_shown():
    backend = ScriptedBackend(
        "Here:\n```python\ndef area(r)\n    return 3.14 * r * r\n```",  # still broken
        f"Add the colon:\n```python\n{GOOD}```\nThe `def` line needed a colon.",
    )
    seen = []
    result = propose_fix(backend, BROKEN, ERROR, syntax_error=True, on_text=seen.append)
    assert result.status == "fixed" and result.attempts == 2
    assert result.code == GOOD
    assert "-def area(r)\n+def area(r):" in result.diff
    assert "does not compile" in result.problems[0]
    assert "rejected because it does not compile" in backend.calls[1][-1]["content"]  # the retry says why
    assert "".join(seen).startswith("Here:")


def test_a_fix_that_never_passes_is_withheld():
    backend = ScriptedBackend("no code at all", f"```python\n{BROKEN}```")
    result = propose_fix(backend, BROKEN, ERROR, syntax_error=True)
    assert result.status == "withheld" and result.code is None and result.diff == ""
    assert result.problems == ("the reply had no code block", "it is the same code as the cell")
    assert "No fix is shown" in result.message


def test_a_syntax_fix_may_not_rewrite_everything():
    rewrite = ("import math\n\n\ndef area(radius):\n    value = math.pi * radius ** 2\n"
               "    print(value)\n    return value\n\n\nprint(area(2))\n")
    assert "rewrites" in check_fix(BROKEN, rewrite, syntax_error=True)[0]
    assert check_fix(BROKEN, rewrite, syntax_error=False) == []  # runtime errors may need more
    assert check_fix("%timeit f()\n", "%timeit f(1)\n", syntax_error=False,
                     to_python=lambda code: code.replace("%timeit ", "")) == []


def test_extract_code():
    assert extract_code("text\n```py\nx = 1\n```\nmore") == ("x = 1\n", "text\n\nmore")
    assert extract_code("```\n\n```") == (None, "")
    assert extract_code("plain") == (None, "plain")


def test_explain_prompt_and_options():
    messages = explain_messages("for i in range(3): print(i)", level="expert", language="rust")
    assert "```rust" in messages[-1]["content"] and "experienced" in messages[0]["content"]
    with pytest.raises(ValueError, match="unknown level"):
        explain_messages("x", level="wizard")
    with pytest.raises(ValueError, match="unknown language"):
        explain_messages("x", language="cobol")
    with pytest.raises(ValueError, match="empty"):
        explain(ScriptedBackend(), "   ")


def test_conversation_keeps_history_and_follows_the_notebook():
    cells = ["import math", "x = [1, 2, 3]"]
    chat = Conversation(ScriptedBackend("A list holds items.", "Use append."), cells=lambda: cells)
    assert chat.ask("What is x?").run().text == "A list holds items."
    cells.append("x.push(4)")
    chat.ask("How do I add one?").run()
    last = chat.backend.calls[-1]
    assert "x.push(4)" in last[0]["content"]  # the context is read again at each question
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user"]
    assert len(chat.history) == 4


def test_explain_streams_from_a_real_tiny_model(tiny_dirs):
    backend = LocalBackend(None, str(tiny_dirs["7b-it"]), dtype="float32")
    from tutor.backends import GenerationOptions

    stream = explain(backend, "x = [i * i for i in range(5)]", options=GenerationOptions(max_tokens=8))
    pieces = list(stream)
    assert "".join(pieces) == stream.result.text and stream.result.prompt_tokens > 20
