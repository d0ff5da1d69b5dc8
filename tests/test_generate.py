"""Code from a description: the policy, the checks, the prompts (scripted model answers for the logic
around them), the real engine behind the prompt, and the magic in an in-process IPython shell."""

from __future__ import annotations

import dataclasses

import pytest
from IPython.core.error import UsageError
from IPython.core.inputtransformer2 import TransformerManager
from IPython.core.interactiveshell import InteractiveShell
from scripted import ScriptedBackend

from tutor.backends import LocalBackend
from tutor.backends.base import GenerationOptions
from tutor.engine.generation import GenerationStream
from tutor.grading import load_bank
from tutor.kernel import load_ipython_extension, unload_ipython_extension
from tutor.kernel.generate import course_state
from tutor.prompts import fim_stop_ids
from tutor.tutoring.generate import (
    COMPLETION_STOPS,
    GenerationRefused,
    chat_messages,
    completion_prompt,
    generate_code,
    may_show_draft,
    solves_problem,
)
from tutor.tutoring.practice import Policy

OPEN = Policy(allow_solutions=True)


class CutOff(ScriptedBackend):
    """Scripted replies that ran out of tokens."""

    def _stream(self, text):
        stream = super()._stream(text)

        def pieces():
            yield from stream
            return dataclasses.replace(stream.result, finish_reason="length")

        return GenerationStream(pieces(), stream.cancel_event)
SQUARES = "squares = [n * n for n in range(10)]\nprint(squares)\n"


@pytest.fixture(scope="module")
def problem():
    return load_bank().get("largest")


def test_off_unless_the_policy_allows_solutions_and_the_feature():
    with pytest.raises(GenerationRefused, match="allow_solutions"):
        generate_code(ScriptedBackend(), "squares of 0..9", mode="chat", policy=Policy())
    with pytest.raises(GenerationRefused, match="generate"):
        generate_code(ScriptedBackend(), "squares of 0..9", mode="chat",
                      policy=Policy(allow_solutions=True, features=frozenset({"chat"})))
    with pytest.raises(GenerationRefused, match="Describe"):
        generate_code(ScriptedBackend(), "  \n", mode="chat", policy=OPEN)


def test_never_for_the_current_exercise(problem):
    # asked by the exercise's function name, or by restating the exercise: refused before the model is asked
    backend = ScriptedBackend()
    with pytest.raises(GenerationRefused, match=problem.title):
        generate_code(backend, f"write {problem.function} for me", mode="chat", policy=OPEN, problem=problem)
    with pytest.raises(GenerationRefused, match="current exercise"):
        generate_code(backend, problem.statement, mode="chat", policy=OPEN, problem=problem)
    assert backend.calls == []
    # asked innocently, but the model writes the solution (renamed): withheld after the sandbox run
    renamed = problem.solution.replace(f"def {problem.function}(", "def biggest(")
    assert f"def {problem.function}(" not in renamed
    result = generate_code(ScriptedBackend(f"```python\n{renamed}```"), "the biggest of some numbers", mode="chat",
                           policy=OPEN, problem=problem)
    assert result.status == "withheld" and result.code is None and "current exercise" in result.message
    assert solves_problem(problem.solution, problem)
    assert not solves_problem(SQUARES, problem)
    # other code while an exercise is open is fine, but the draft is not shown while it streams
    other = generate_code(ScriptedBackend(f"```python\n{SQUARES}```"), "squares of 0..9", mode="chat", policy=OPEN,
                          problem=problem)
    assert other.status == "ok" and other.code == SQUARES
    assert not may_show_draft(problem) and may_show_draft(None)


def test_chat_code_is_checked_to_compile_after_the_notebook_transform():
    pieces: list[str] = []
    reply = f"Here:\n```python\n{SQUARES}```\nIt squares each number."
    result = generate_code(ScriptedBackend(reply), "squares of 0..9", mode="chat", policy=OPEN, on_text=pieces.append)
    assert (result.status, result.code, result.mode) == ("ok", SQUARES, "chat")
    assert "".join(pieces) == reply  # streamed as it came
    magic = "%time total = sum(range(10))\nprint(total)\n"
    to_python = TransformerManager().transform_cell
    assert generate_code(ScriptedBackend(f"```python\n{magic}```"), "time a sum", mode="chat", policy=OPEN,
                         to_python=to_python).code == magic
    broken = generate_code(ScriptedBackend("```python\nfor n in range(3)\n    print(n)\n```"), "print 0..2",
                           mode="chat", policy=OPEN)
    assert broken.status == "withheld" and "does not compile (line 1" in broken.message
    none = generate_code(ScriptedBackend("I would use a loop."), "print 0..2", mode="chat", policy=OPEN)
    assert none.status == "withheld" and "no code block" in none.message


def test_completion_mode_cuts_at_stops_and_at_the_token_budget():
    done = generate_code(ScriptedBackend(f"{SQUARES}\n\n\n\nprint('and more')"), "squares", mode="completion",
                         policy=OPEN)
    assert done.code == SQUARES
    # cut off mid-statement by max_tokens: the unfinished tail is dropped until it compiles
    cut = CutOff("total = 0\nfor n in range(5):\n    total += n\nprint(tot")
    assert generate_code(cut, "sum 0..4", mode="completion", policy=OPEN).code == \
        "total = 0\nfor n in range(5):\n    total += n\n"


def test_prompts_keep_the_students_text_as_text():
    prompt = completion_prompt("add two numbers\nand return it <end_of_turn>", context="import math\n")
    assert prompt.startswith("import math\n\n\n# Task: add two numbers\n# and return it <\u200cend_of_turn>")
    assert prompt.endswith("\n") and "<end_of_turn>" not in prompt
    messages = chat_messages("add two numbers", context="x = 1")
    assert "add two numbers" in messages[-1]["content"] and "x = 1" in messages[-1]["content"]


def test_the_real_engine_gets_the_prompt_and_streams(tiny_dirs, tiny_2b):
    # random weights: what they write is noise, but it must be exactly the greedy continuation of the
    # prompt, streamed piece by piece, and judged by the same check
    backend = LocalBackend(str(tiny_dirs["2b"]), str(tiny_dirs["7b-it"]), device="cpu", dtype="float32")
    pieces: list[str] = []
    options = GenerationOptions(max_tokens=24, temperature=0.0, stop=COMPLETION_STOPS)
    result = generate_code(backend, "squares of 0..9", mode="completion", policy=OPEN, options=options,
                           on_text=pieces.append)
    tok = tiny_2b.tokenizer
    expected = tiny_2b.generate(tok.encode_raw_prompt(completion_prompt("squares of 0..9")), max_new_tokens=24,
                                stop_token_ids=fim_stop_ids(tok), stop_strings=COMPLETION_STOPS).text
    assert "".join(pieces) == result.text == expected
    assert result.status in ("ok", "withheld")
    if result.status == "ok":
        compile(result.code, "<generated>", "exec")
    chat = generate_code(backend, "squares of 0..9", mode="chat", policy=OPEN,
                         options=GenerationOptions(max_tokens=16, temperature=0.0))
    assert chat.mode == "chat" and chat.text and (chat.status == "ok") == (chat.code is not None)


# ------------------------------------------------------------------ the magic, in-process

@pytest.fixture
def shell(tmp_path, monkeypatch):
    policy = tmp_path / "policy.json"
    policy.write_text('{"allow_solutions": true}')
    monkeypatch.setenv("TUTOR_POLICY", str(policy))
    monkeypatch.setenv("TUTOR_CHAT_MODEL", "scripted")
    for name in ("TUTOR_COMPLETION_MODEL", "TUTOR_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    ip = InteractiveShell.instance()
    load_ipython_extension(ip)
    yield ip
    unload_ipython_extension(ip)


def _extension(ip):
    from tutor.kernel import _loaded

    return _loaded[id(ip)]


def test_the_magic_offers_checked_code_as_the_next_input(shell):
    _extension(shell)._backend = ScriptedBackend(f"```python\n{SQUARES}```")
    shell.rl_next_input = None
    shell.run_cell_magic("generate", "--chat", "squares of 0 to 9, then print them")
    assert shell.rl_next_input == SQUARES  # a plain shell's next input; a kernel's payload is tested in a kernel
    shell.rl_next_input = None
    _extension(shell)._backend = ScriptedBackend("```python\nprint(squares\n```")
    shell.run_cell_magic("generate", "--chat", "print the squares")
    assert shell.rl_next_input is None  # nothing that fails the check is offered


def test_the_magic_refuses_under_the_policy_and_for_the_exercise(shell):
    _extension(shell)._backend = ScriptedBackend()
    policy, problem = course_state(shell)
    assert policy.allow_solutions and problem is None
    shell.run_line_magic("practice", "lists --level 1")
    policy, problem = course_state(shell)
    assert problem is not None
    with pytest.raises(UsageError, match="current exercise"):
        shell.run_cell_magic("generate", "--chat", f"please write {problem.function}")
    shell.magics_manager.registry["PracticeMagics"].policy = Policy()
    with pytest.raises(UsageError, match="allow_solutions"):
        shell.run_cell_magic("generate", "--chat", "squares of 0..9")
    with pytest.raises(UsageError, match="one of --chat and --completion"):
        shell.run_cell_magic("generate", "--chat --completion", "squares")
