"""Inline completion without a server: the prompt budget, the request, post-processing."""

from __future__ import annotations

import pytest

from tutor.prompts import ContextFile, approximate_tokens, fim_prompt, fit_fim_budget
from tutor.server.completion import CELL_SEPARATOR, CompletionRequest, RequestError, Shaper, prompt_parts


def chars(text: str) -> int:
    return len(text)


def test_the_budget_keeps_the_lines_nearest_the_cursor():
    prefix = "".join(f"line{i}\n" for i in range(10)) + "x = "
    suffix = "\n" + "".join(f"after{i}\n" for i in range(10))
    fitted = fit_fim_budget(chars, prefix, suffix, budget=40, suffix_share=0.25)
    assert prefix.endswith(fitted.prefix) and fitted.prefix.endswith("line9\nx = ")
    assert suffix.startswith(fitted.suffix) and fitted.suffix.startswith("\nafter0")
    assert len(fitted.prefix) + len(fitted.suffix) <= 40
    assert "line0" not in fitted.prefix  # the far end went first


def test_a_short_prefix_leaves_its_room_to_the_suffix():
    suffix = "".join(f"after{i}\n" for i in range(10))
    fitted = fit_fim_budget(chars, "x = ", suffix, budget=50)
    assert len(fitted.suffix) > 50 * 0.25 and len(fitted.suffix) + 4 <= 50


def test_a_cursor_line_over_the_budget_is_cut_by_characters_near_the_cursor():
    fitted = fit_fim_budget(chars, "a" * 100 + "END", "", budget=20)
    assert fitted.prefix.endswith("END") and len(fitted.prefix) <= 20


def test_context_files_are_kept_nearest_first_and_stay_in_order():
    files = [ContextFile("nb", f"cell{i}") for i in range(6)]  # the current cell sits between 2 and 3
    fitted = fit_fim_budget(chars, "p", "s", files, budget=2 + 4 * 9, near=3)
    assert [f.content for f in fitted.files] == ["cell1", "cell2", "cell3", "cell4"]
    assert fit_fim_budget(chars, "p", "s", files, budget=10**6).files == tuple(files)


def test_budget_with_the_real_tokenizer_counts_tokens(tiny_2b):
    tok = tiny_2b.tokenizer
    prefix = "import math\n" * 200 + "def f(x):\n    return "
    fitted = fit_fim_budget(lambda t: len(tok.encode(t)), prefix, "\n", budget=64)
    assert len(fim_prompt(tok, fitted.prefix, fitted.suffix)) <= 64 + 4 + 2  # + control tokens, line joins
    assert fitted.prefix.endswith("def f(x):\n    return ")
    assert approximate_tokens("abcdef") == 2


def request(**kw):
    body = {"id": "r1", "path": "nb.ipynb", "cellId": "c2", "before": "x = ", "after": "",
            "cellsBefore": ["import math", "y = 2"], "cellsAfter": ["print(x)"], **kw}
    return CompletionRequest.from_json(body)


def test_prompt_parts_join_the_other_cells_in_order_as_one_context_file():
    prefix, suffix, files, path = prompt_parts(request(), chars)
    assert (prefix, suffix, path) == ("x = ", "", "nb.ipynb")
    assert [f.content for f in files] == [CELL_SEPARATOR.join(["import math", "y = 2", "print(x)"])]
    _, _, files, _ = prompt_parts(request(settings={"contextBudget": 64}, cellsBefore=["a" * 500, "y = 2"]), chars)
    assert "a" * 500 not in files[0].content and "y = 2" in files[0].content


def test_bad_requests_say_which_field():
    with pytest.raises(RequestError, match="before"):
        CompletionRequest.from_json({"id": "r"})
    with pytest.raises(RequestError, match="cellsBefore"):
        request(cellsBefore="x")
    with pytest.raises(RequestError, match="maxLines"):
        request(settings={"maxLines": "9"})
    assert request(settings={"maxLines": 10**6}).max_lines == 200  # clamped


def test_mid_line_completions_are_one_line_and_do_not_repeat_the_rest_of_the_line():
    s = Shaper("print(len(", "))\nz = 1", max_lines=8)
    assert s.shape("items") == ("items", False)
    assert s.shape("items))") == ("items", False)
    assert s.shape("items))\nmore") == ("items", True)


def test_a_block_stops_where_it_ends_and_at_max_lines():
    s = Shaper("def f(x):\n", "", max_lines=8)
    text = "    y = x + 1\n    return y\nprint(f(2))\n"
    assert s.shape(text) == ("    y = x + 1\n    return y", True)
    s = Shaper("", "", max_lines=2)
    assert s.shape("a = 1\nb = 2\nc = 3") == ("a = 1\nb = 2", True)
    assert s.shape("a = 1\nb") == ("a = 1\nb", False)


def test_the_suffix_is_never_echoed():
    s = Shaper("def f(x):\n    ", "\n    return y\n", max_lines=8)
    assert s.shape("y = x * 2\n    return y\n") == ("y = x * 2", True)
    s = Shaper("for i in range(3):\n    ", "\nprint('done')", max_lines=8)
    assert s.shape("total += i\nprint('done')\n")[0] == "total += i"


@pytest.mark.parametrize("before, after, text", [
    ("import math\n\ndef circumference(r):\n    return ", "", "  \n"),  # issue 20: whitespace only
    ("import math\n\ndef circumference(r):\n    return ", "", "\n    \n\t"),
    ("def f(x):\n    ", "\n    return y\n", "\n    return y"),  # only the next line of the suffix again
    ("print(len(", "))\nz = 1", "))"),  # only the rest of the line again
    ("x = [1, ", "2, 3]", " 2,"),  # the start of what is after the cursor, spaced differently
])
def test_a_suggestion_that_adds_nothing_is_never_shown(before, after, text):
    s = Shaper(before, after, max_lines=8)
    assert s.shape(text)[0] == ""
    assert s.shape(text[:1])[0] == ""  # nor while it streams


def test_a_suggestion_that_adds_something_is_shown_with_its_whitespace():
    s = Shaper("def circumference(r):\n    return ", "", max_lines=8)
    assert s.shape(" 2 * math.pi * r") == (" 2 * math.pi * r", False)
    s = Shaper("x = [1, ", "2, 3]", max_lines=8)
    assert s.shape("5, ")[0] == "5, "


def test_the_completer_sends_nothing_for_a_whitespace_suggestion():
    """The real path (request, prompt, Completer, Shaper) with a backend that answers only whitespace."""
    import threading

    from scripted import ScriptedBackend

    from tutor.server.completion import Completer
    from tutor.settings import Settings

    completer = Completer(Settings(completion_model="scripted"), publish_environment=False)
    completer._backend = ScriptedBackend("  \n  \n", " 2 * math.pi * r")
    ask = request(before="def circumference(r):\n    return ", after="", cellsBefore=["import math"])
    assert [str(t) for t in completer.complete(ask, threading.Event())] == [""]
    assert [str(t) for t in completer.complete(ask, threading.Event())][-1] == " 2 * math.pi * r"
    assert completer.status()["state"] == "ready"


def test_the_status_says_what_state_the_model_is_in():
    from tutor.server.completion import Completer
    from tutor.settings import Settings

    state = Completer(Settings(), publish_environment=False).status()
    assert state["state"] == "not_configured" and "TUTOR_COMPLETION_MODEL" in state["message"]
    assert Completer(Settings(completion_model="/nowhere"), publish_environment=False).state()[0] == "idle"
