"""Practice: the hint ladder, the guard on model replies, generated problems.

The guard is not only a prompt. A model reply is inspected before a student sees it: every piece of
code in it (tutor.tutoring.guard) is compared with the reference solution by normalised AST and run
against the current problem's tests in the sandbox, and one that solves the problem is withheld
unless the policy allows solutions; words the teacher wants avoided are removed. The policy itself
lives in tutor.tutoring.policy (its names are re-exported here for older imports).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..backends.base import Backend, GenerationOptions, Message
from ..grading import HINT_LADDER, Bank, Problem, ProblemFormatError, problem_from_dict, run_reference
from .explain import TUTOR_VOICE
from .guard import withhold_solutions
from .policy import FEATURES, Policy, PolicyError, load_policy

__all__ = ["FEATURES", "Guarded", "Hint", "Policy", "PolicyError", "generate_problem", "guard_reply", "load_policy",
           "next_hint", "pick_problem"]


# ------------------------------------------------------------------ the guard

@dataclass(frozen=True)
class Guarded:
    text: str
    withheld: bool  # code was taken out because it solved the problem
    reason: str = ""


def guard_reply(text: str, problem: Problem | None, policy: Policy) -> Guarded:
    """``text`` as the student may see it under ``policy`` for ``problem``: every piece of code that solves
    the problem, in any form (tutor.tutoring.guard), removed unless solutions are allowed; avoided words too."""
    withheld, reasons = False, []
    if problem is not None and not policy.allow_solutions:
        text, removed, unchecked = withhold_solutions(text, problem)
        if removed:
            withheld = True
            reasons.append("the reply contained a solution" if removed > unchecked else
                           "the reply had more code than the guard can check")
    for word in policy.avoid_words:
        text, count = re.subn(rf"\b{re.escape(word)}\b", "[...]", text, flags=re.IGNORECASE)
        if count:
            reasons.append(f"'{word}' is avoided in this course")
    return Guarded(text, withheld, "; ".join(reasons))


# ------------------------------------------------------------------ hints

@dataclass(frozen=True)
class Hint:
    rung: int  # 0 nudge, 1 concept, 2 pseudo-code, 3 partial code
    name: str
    text: str
    source: str  # "written" (from the problem) or "model"


def hint_messages(problem: Problem, code: str, rung: int) -> list[Message]:
    return [
        {"role": "system", "content": f"{TUTOR_VOICE} Never write the full solution."},
        {"role": "user", "content": f"Exercise: {problem.statement}\n\nMy code so far:\n```python\n{code}\n```\n\n"
                                    f"Give me one hint of the kind '{HINT_LADDER[rung]}' "
                                    f"({_RUNG_HELP[rung]}), in at most three sentences."},
    ]


_RUNG_HELP = ("a question that points at what to look at", "the idea or concept I need",
              "the steps in plain words or pseudo-code", "a small part of the code, not all of it")


def next_hint(problem: Problem, rung: int, policy: Policy, *, code: str = "", backend: Backend | None = None,
              on_text: Callable[[str], None] | None = None) -> Hint:
    """The hint at ``rung``: from the model when there is one (guarded), else the written one."""
    if not policy.allows("hints"):
        raise ValueError("hints are turned off for this course.")
    if rung >= policy.max_hints:
        raise ValueError(f"you have used all {policy.max_hints} hints for this exercise; "
                         "try a small step and run it, or ask your teacher.")
    if backend is None or not code.strip():
        return Hint(rung, HINT_LADDER[rung], problem.hint(rung), "written")
    reply = ""
    for piece in backend.chat(hint_messages(problem, code, rung), GenerationOptions(max_tokens=200, temperature=0)):
        reply += piece
        if on_text:
            on_text(piece)
    guarded = guard_reply(reply, problem, policy)
    if guarded.withheld or not guarded.text.strip():
        return Hint(rung, HINT_LADDER[rung], problem.hint(rung), "written")
    return Hint(rung, HINT_LADDER[rung], guarded.text.strip(), "model")


# ------------------------------------------------------------------ generated problems

def problem_messages(topic: str, level: int) -> list[Message]:
    shape = json.dumps({"id": "snake_case_id", "title": "...", "topic": topic, "level": level,
                        "statement": "Markdown", "function": "name", "starter": "def name(...):\n    ...",
                        "solution": "full code", "public_tests": [{"args": ["..."], "expected": "..."}],
                        "hidden_tests": [{"args": ["..."], "expected": "..."}],
                        "hints": ["nudge", "concept", "pseudo-code", "partial code"]})
    return [
        {"role": "system", "content": "You write small Python practice exercises for students."},
        {"role": "user", "content": f"Write one exercise on '{topic}' at level {level} of 3, as a JSON object "
                                    f"shaped like this, and nothing else:\n{shape}\nGive 3 public and 3 hidden "
                                    "tests whose expected values your solution really returns."},
    ]


def generate_problem(backend: Backend, topic: str, level: int, *, bank: Bank | None = None, attempts: int = 3,
                     seed: int | None = None) -> tuple[Problem, str]:
    """A problem on ``topic``: generated by the model and offered only if its own reference solution
    passes its own tests in the sandbox; else one from the bank. Returns (problem, "model" | "bank")."""
    for attempt in range(attempts):
        options = GenerationOptions(max_tokens=900, temperature=0.7 if attempt else 0.2, seed=attempt)
        reply = backend.chat(problem_messages(topic, level), options).run().text
        problem = _parse_problem(reply)
        if problem is not None and run_reference(problem).ok:
            return problem, "model"
    if bank is None:
        raise ValueError(f"no checked problem on {topic!r} could be generated, and there is no bank to fall back on.")
    return pick_problem(bank, topic, level, seed=seed), "bank"


def _parse_problem(reply: str) -> Problem | None:
    start, end = reply.find("{"), reply.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return problem_from_dict(json.loads(reply[start:end + 1]))
    except (ValueError, ProblemFormatError, TypeError):
        return None


def pick_problem(bank: Bank, topic: str | None, level: int | None, *, seed: int | None = None,
                 avoid: tuple[str, ...] = ()) -> Problem:
    """A bank problem on ``topic`` (closest level first); a clear error for an unknown topic."""
    topics = sorted({p.topic for p in bank})
    if topic is not None and topic not in topics:
        raise ValueError(f"no practice problems on {topic!r}; topics: {', '.join(topics)}.")
    candidates = [p for p in bank.find(topic=topic) if p.id not in avoid] or bank.find(topic=topic)
    if level is not None:
        best = min(abs(p.level - level) for p in candidates)
        candidates = [p for p in candidates if abs(p.level - level) == best]
    return random.Random(seed).choice(candidates)
