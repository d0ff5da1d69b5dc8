"""Code from a description, offered only after it passes a check, and only where the policy allows.

Two ways to ask:
- the completion model (pretrained): a plain prompt, the description as a comment block, which
  the model continues with code;
- the chat model (instruction-tuned): the description in a request for one code block.
The candidate must compile (after the notebook's own transform, as a fix must), and must not be
the current practice problem's solution. Writing code for a description is handing over a
solution, so it is off unless the teacher's policy allows solutions; and never for the exercise
the student is working on, whatever the policy.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..backends.base import Backend, CompletionStream, GenerationOptions, Message
from ..grading import Problem, check_solution
from ..prompts import neutralize
from .explain import TUTOR_VOICE
from .fix import extract_code
from .policy import Policy
from .practice import guard_reply

MODES = ("completion", "chat")
# The pretrained model would go on past the code (more examples, another task): these end it.
COMPLETION_STOPS = ("\n\n\n\n", "\nif __name__", "\n```", "\n# Task:")
MAX_TOKENS = 384
CONTEXT_CHARS = 2000  # the notebook's recent code shown to the model, nearest first


class GenerationRefused(ValueError):
    """Code is not written for this request; the message says why and what the student can do."""


@dataclass(frozen=True)
class GeneratedCode:
    status: str  # "ok" or "withheld"
    code: str | None  # the checked code ("ok" only)
    mode: str  # "completion" or "chat"
    text: str  # what the model wrote
    problems: tuple[str, ...] = field(default=())  # why the candidate was withheld

    @property
    def message(self) -> str:
        if self.status == "ok":
            return "Checked: it compiles. It is in a new cell below; read it, then run it."
        reasons = "; ".join(dict.fromkeys(self.problems)) or "no code came back"
        return f"No code is offered: it did not pass the check ({reasons})."


# ------------------------------------------------------------------ policy

def check_allowed(policy: Policy, problem: Problem | None, description: str) -> None:
    """Raise GenerationRefused unless ``policy`` lets the tutor write code for ``description`` now."""
    if not policy.allow_solutions:
        raise GenerationRefused("Writing code for you is off in this course: its policy does not allow the tutor "
                                "to give solutions (a teacher can set \"allow_solutions\": true in the policy file "
                                "named by TUTOR_POLICY). Try %hint, or ask %tutor how to start.")
    if not policy.allows("generate"):
        raise GenerationRefused("Writing code for you is turned off in this course (\"generate\" is not among the "
                                "policy's features).")
    if problem is not None and about_problem(description, problem):
        raise GenerationRefused(f"That is your current exercise ({problem.title}): write `{problem.function}` "
                                "yourself. %hint gives a hint; %practice starts another exercise.")


def about_problem(description: str, problem: Problem) -> bool:
    """Whether ``description`` asks for the exercise itself: it names its function, or restates it."""
    if re.search(rf"\b{re.escape(problem.function)}\b", description):
        return True
    asked, statement = _words(description), _words(problem.statement)
    return bool(asked) and difflib.SequenceMatcher(None, asked, statement).ratio() > 0.6


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9_]+", text.lower())


def solves_problem(code: str, problem: Problem) -> bool:
    """Whether ``code`` is the exercise's solution: it defines the exercise's function, the practice guard
    finds it (close to the reference), or one of its functions, under any name, passes the exercise's
    tests in the sandbox."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return guard_reply(f"```python\n{code}\n```", problem, Policy(allow_solutions=False)).withheld
    defined = [node.name for node in tree.body if isinstance(node, _DEFINITIONS)]
    if problem.function in defined or any(isinstance(node, _DEFINITIONS) and node.name == problem.function
                                          for node in ast.walk(tree)):
        return True
    if guard_reply(f"```python\n{code}\n```", problem, Policy(allow_solutions=False)).withheld:
        return True
    # A renamed solution: run it as the exercise's function.
    return any(check_solution(problem, f"{code}\n\n{problem.function} = {name}\n").ok for name in defined[:3])


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def may_show_draft(problem: Problem | None) -> bool:
    """Whether the text may be shown while it streams, before the check: not while an exercise is open,
    since a draft could be its solution."""
    return problem is None


# ------------------------------------------------------------------ prompts

def completion_prompt(description: str, context: str = "") -> str:
    """A plain prompt for the pretrained model: the notebook's recent code, then the description as a
    comment block. Both are the student's text, so control-token strings in them are broken first."""
    lines = description.strip().splitlines() or [""]
    comment = "\n".join("# Task: " + lines[0] if i == 0 else "# " + line for i, line in enumerate(lines))
    context = context.strip()[-CONTEXT_CHARS:]
    return neutralize((context + "\n\n\n" if context else "") + comment + "\n")


def chat_messages(description: str, context: str = "") -> list[Message]:
    shown = f"\n\nThe notebook's code so far:\n```python\n{context.strip()[-CONTEXT_CHARS:]}\n```" if context.strip() \
        else ""
    return [
        {"role": "system", "content": TUTOR_VOICE},
        {"role": "user", "content": "Write Python code for a notebook cell that does what this description says. "
                                    "Reply with the code in ONE ```python code block, with a few short comments, "
                                    f"then one sentence on how it works.\n\nDescription: {description.strip()}"
                                    f"{shown}"},
    ]


# ------------------------------------------------------------------ generation

def generate_code(backend: Backend, description: str, *, mode: str, policy: Policy, problem: Problem | None = None,
                  context: str = "", to_python: Callable[[str], str] = lambda code: code,
                  on_text: Callable[[str], None] | None = None,
                  options: GenerationOptions | None = None) -> GeneratedCode:
    """Ask the model for code for ``description`` and check it; refusals raise GenerationRefused.

    ``on_text`` receives the model's text as it streams (see may_show_draft before showing it);
    ``to_python`` turns notebook syntax into Python before the compile check (IPython's transform).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: use completion or chat.")
    if not description.strip():
        raise GenerationRefused("Describe the code you want in the cell, under %%generate.")
    check_allowed(policy, problem, description)
    if mode == "completion":
        options = options or GenerationOptions(max_tokens=MAX_TOKENS, temperature=0.0, stop=COMPLETION_STOPS)
        stream = backend.complete(completion_prompt(description, context), options)
    else:
        options = options or GenerationOptions(max_tokens=MAX_TOKENS + 128, temperature=0.0)
        stream = backend.chat(chat_messages(description, context), options)
    text, finish = _follow(stream, on_text)
    if mode == "chat":
        code, _ = extract_code(text)
        if code is None:
            return GeneratedCode("withheld", None, mode, text, ("the reply had no code block",))
    else:
        code = _cut_to_compile(_strip_stops(text), to_python) if finish == "length" else _strip_stops(text)
    problems = _check(code, to_python, problem)
    if problems:
        return GeneratedCode("withheld", None, mode, text, tuple(problems))
    return GeneratedCode("ok", code.strip("\n") + "\n", mode, text)


def _follow(stream: CompletionStream, on_text: Callable[[str], None] | None) -> tuple[str, str]:
    text = ""
    try:
        for piece in stream:
            text += piece
            if on_text is not None:
                on_text(piece)
    except BaseException:  # an interrupt or a broken connection: stop the model now, not when collected
        stream.close()
        raise
    result = stream.result
    return text, result.finish_reason if result is not None else "stop"


def _strip_stops(text: str) -> str:
    cut = min((i for i in (text.find(s) for s in COMPLETION_STOPS) if i >= 0), default=len(text))
    return text[:cut]


def _cut_to_compile(code: str, to_python: Callable[[str], str]) -> str:
    """Code cut off by the token budget: drop its last lines until what is left compiles."""
    lines = code.splitlines(keepends=True)
    while lines and not _compiles(to_python("".join(lines))):
        lines.pop()
    return "".join(lines)


def _compiles(code: str) -> bool:
    try:
        compile(code, "<generated code>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _check(code: str, to_python: Callable[[str], str], problem: Problem | None) -> list[str]:
    if not any(line.strip() and not line.lstrip().startswith("#") for line in code.splitlines()):
        return ["no code came back"]
    try:
        compile(to_python(code), "<generated code>", "exec")
    except (SyntaxError, ValueError) as exc:
        where = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, SyntaxError) else str(exc)
        return [f"it does not compile ({where})"]
    if problem is not None and solves_problem(code, problem):
        return [f"it is the solution of your current exercise, {problem.title}: write that one yourself"]
    return []
