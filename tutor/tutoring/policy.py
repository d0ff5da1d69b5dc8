"""The teacher's policy: one validated schema, the strictest fallback, and how two policies combine.

A policy comes from a JSON file (TUTOR_POLICY or ``c.Tutor.policy``) and, for one lesson or
assignment, from the notebook's metadata (``metadata.tutor.policy``). Types are checked strictly
(``"false"`` is not a boolean), unknown keys are named with the nearest known one, and every error
carries the file and line. Where two policies apply, the stricter wins per field; where a file is
broken, the strictest policy applies and the reason is said once.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Every surface that reaches a model, by the name the policy's `features` uses.
FEATURES = ("explain", "fix", "chat", "hints", "practice", "generate", "completion")
FEATURE_HELP = {
    "explain": "%explain, %%explain and 'Explain more' under a failing cell",
    "fix": "'Suggest a fix' under a failing cell and %tutor apply",
    "chat": "%tutor, the chat about the notebook",
    "hints": "%hint and the Hint button",
    "practice": "%practice problems from the bank",
    "generate": "%practice --new (problems written by the model) and %%generate (code from a description)",
    "completion": "inline completion (ghost text) in JupyterLab",
}
MAX_HINTS = 4  # the rungs of the ladder: nudge, concept, pseudo-code, partial code (tutor.grading.HINT_LADDER)
FIELDS = ("allow_solutions", "max_hints", "avoid_words", "avoid_topics", "features")


@dataclass(frozen=True)
class Policy:
    """A course's rules for the tutor (see docs/practice.md)."""

    allow_solutions: bool = False
    max_hints: int = MAX_HINTS  # rungs of the ladder a student may climb per problem
    avoid_words: tuple[str, ...] = ()
    avoid_topics: tuple[str, ...] = ()
    features: frozenset[str] = field(default_factory=lambda: frozenset(FEATURES))

    def allows(self, feature: str) -> bool:
        if feature not in FEATURES:
            raise ValueError(f"unknown feature {feature!r}; the features are {', '.join(FEATURES)}.")
        return feature in self.features

    def stricter(self, other: Policy, fields: Iterable[str] = FIELDS) -> Policy:
        """Per field in ``fields``, the stricter of the two: no solutions wins, fewer hints, features
        intersect, avoid lists join."""
        changes: dict[str, Any] = {}
        for name in fields:
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "allow_solutions":
                changes[name] = mine and theirs
            elif name == "max_hints":
                changes[name] = min(mine, theirs)
            elif name == "features":
                changes[name] = mine & theirs
            else:
                changes[name] = tuple(dict.fromkeys((*mine, *theirs)))
        return replace(self, **changes)

    def summary(self) -> str:
        on = [f for f in FEATURES if f in self.features]
        parts = [f"solutions {'allowed' if self.allow_solutions else 'not allowed'}",
                 f"up to {self.max_hints} hint{'s' * (self.max_hints != 1)} per exercise",
                 f"features on: {', '.join(on) or 'none'}"]
        if off := [f for f in FEATURES if f not in self.features]:
            parts.append(f"off: {', '.join(off)}")
        if self.avoid_words:
            parts.append(f"avoided words: {', '.join(self.avoid_words)}")
        if self.avoid_topics:
            parts.append(f"avoided topics: {', '.join(self.avoid_topics)}")
        return "; ".join(parts)


# The policy that applies when the teacher's file cannot be read: nothing that writes code for the
# student (no solutions, fixes, chat, generated code or inline completion); explanations, bank problems
# and the first two rungs of the hint ladder (nudge, concept) stay, since they give no code away.
STRICTEST = Policy(allow_solutions=False, max_hints=2, features=frozenset({"explain", "hints", "practice"}))


# ------------------------------------------------------------------ errors

@dataclass(frozen=True)
class PolicyProblem:
    line: int | None
    message: str


class PolicyError(ValueError):
    """A policy that cannot be used; ``problems`` each say where (the file and line) and what to do."""

    def __init__(self, source: str, problems: list[PolicyProblem]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.source}{f':{p.line}' if p.line else ''}: {p.message}" for p in self.problems]


# ------------------------------------------------------------------ the schema

def _json_name(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _check_field(name: str, value: Any) -> tuple[Any, str | None]:
    """(the value as Policy holds it, None) or (None, what is wrong)."""
    if name == "allow_solutions":
        if not isinstance(value, bool):
            return None, (f"'allow_solutions' must be true or false (without quotes), not {_json_name(value)} "
                          f"{json.dumps(value)}.")
        return value, None
    if name == "max_hints":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_HINTS:
            return None, (f"'max_hints' must be a whole number from 0 to {MAX_HINTS} (the rungs of the hint "
                          f"ladder), not {_json_name(value)} {json.dumps(value)}.")
        return value, None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None, f"'{name}' must be a list of strings, not {_json_name(value)} {json.dumps(value)}."
    if name == "features":
        unknown = [v for v in value if v not in FEATURES]
        if unknown:
            near = [difflib.get_close_matches(v, FEATURES, n=1) for v in unknown]
            said = ", ".join(f"{v!r}" + (f" (did you mean {m[0]!r}?)" if m else "") for v, m in zip(unknown, near,
                                                                                                     strict=True))
            return None, f"'features' has unknown entries {said}; the features are: {', '.join(FEATURES)}."
        return frozenset(value), None
    return tuple(value), None


def _key_line(text: str | None, key: str, *, last: bool = False) -> int | None:
    """The line of ``key`` in the JSON text (its first appearance as an object key, or its last)."""
    if text is None:
        return None
    matches = list(re.finditer(re.escape(json.dumps(key)) + r"\s*:", text))
    if not matches:
        return None
    match = matches[-1] if last else matches[0]
    return text.count("\n", 0, match.start()) + 1


def validate(data: Any, source: str, text: str | None = None) -> tuple[Policy, frozenset[str]]:
    """A policy from parsed JSON (a file's or a notebook's metadata): (the policy, the keys it sets).
    All problems are collected, so a teacher fixes them in one go; raises PolicyError."""
    if not isinstance(data, Mapping):
        raise PolicyError(source, [PolicyProblem(1 if text is not None else None,
                                                 f"the policy must be a JSON object ({{...}}), not "
                                                 f"{_json_name(data)}.")])
    problems, values = [], {}
    for key, value in data.items():
        if key not in FIELDS:
            near = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f" did you mean {near[0]!r}?" if near else ""
            problems.append(PolicyProblem(_key_line(text, str(key)),
                                          f"unknown key {key!r};{hint} the keys are: {', '.join(FIELDS)}."))
            continue
        checked, wrong = _check_field(key, value)
        if wrong:
            problems.append(PolicyProblem(_key_line(text, key), wrong))
        else:
            values[key] = checked
    if problems:
        raise PolicyError(source, problems)
    return Policy(**values), frozenset(values)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice")
        seen[key] = value
    return seen


def parse_policy(text: str, source: str = "<policy>") -> tuple[Policy, frozenset[str]]:
    """A policy file's text: (the policy, the keys it sets); raises PolicyError with the line."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise PolicyError(source, [PolicyProblem(exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno}).")]) \
            from None
    except ValueError as exc:  # a duplicate key: the second would silently win
        key = str(exc).split("'")[1] if "'" in str(exc) else ""
        raise PolicyError(source, [PolicyProblem(_key_line(text, key, last=True), f"{exc}; keep one.")]) from None
    return validate(data, source, text)


def load_policy(path: str | Path) -> Policy:
    """Read and check a policy file; raises PolicyError (a ValueError) naming the file and line."""
    return read_policy_file(path)[0]


def read_policy_file(path: str | Path) -> tuple[Policy, frozenset[str]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), [PolicyProblem(None, f"cannot read the policy file ({exc.__class__.__name__}: "
                                                          f"{exc}).")]) from None
    return parse_policy(text, str(path))


# ------------------------------------------------------------------ the policy in force

@dataclass(frozen=True)
class Layer:
    source: str  # where it came from, as `%tutor status` says it
    policy: Policy
    keys: frozenset[str]  # the fields it sets; the others it leaves to the other layers


@dataclass(frozen=True)
class PolicyInForce:
    """The policy that applies, the layers it was made of, and (when a file was broken) why the strictest."""

    layers: tuple[Layer, ...] = ()
    notice: str = ""  # said once to the student and teacher: the file was broken, the strictest applies

    @property
    def policy(self) -> Policy:
        """Per field: the default where no layer sets it, else the strictest value of the layers that do."""
        values: dict[str, Any] = {}
        for name in FIELDS:
            setting = [layer.policy for layer in self.layers if name in layer.keys]
            if setting:
                combined = setting[0]
                for other in setting[1:]:
                    combined = combined.stricter(other, (name,))
                values[name] = getattr(combined, name)
        return Policy(**values)

    def allows(self, feature: str) -> bool:
        return self.policy.allows(feature)

    def with_layer(self, layer: Layer) -> PolicyInForce:
        kept = tuple(existing for existing in self.layers if existing.source != layer.source)
        return replace(self, layers=(*kept, layer))

    def origin(self, name: str) -> str:
        """Where a field's value came from: the layers that set it and gave the value in force."""
        value = getattr(self.policy, name)
        setting = [layer for layer in self.layers if name in layer.keys]
        if name in ("allow_solutions", "max_hints"):
            setting = [layer for layer in setting if getattr(layer.policy, name) == value]
        elif name == "features":
            setting = [layer for layer in setting if layer.policy.features != frozenset(FEATURES)] or setting
        return "; ".join(layer.source for layer in setting) or "default"

    def describe(self) -> list[str]:
        p = self.policy
        shown = {"allow_solutions": str(p.allow_solutions).lower(), "max_hints": str(p.max_hints),
                 "avoid_words": ", ".join(p.avoid_words) or "(none)",
                 "avoid_topics": ", ".join(p.avoid_topics) or "(none)",
                 "features": ", ".join(f for f in FEATURES if f in p.features) or "(none)"}
        lines = [f"{name}: {shown[name]}  [{self.origin(name)}]" for name in FIELDS]
        if self.notice:
            lines.append(self.notice)
        return lines


def policy_from_file(path: str | None) -> PolicyInForce:
    """The policy of the course file (None: the defaults); a broken file gives the strictest policy and a
    notice that says why and what to do, never an exception."""
    if not path:
        return PolicyInForce()
    try:
        policy, keys = read_policy_file(path)
    except PolicyError as exc:
        errors = "\n".join("    " + line for line in exc.lines())
        notice = (f"tutor: the course policy file {path} has a mistake, so the tutor uses its strictest settings "
                  "until it is fixed: no solutions, no chat, no suggested fixes, no code writing and no inline "
                  "completion; explanations, practice problems and the first two hints stay. Teacher: fix the file "
                  f"(check it with `tutor policy check {path}`) and restart the kernel.\n{errors}")
        return PolicyInForce((Layer(f"strictest, because {path} has a mistake", STRICTEST, frozenset(FIELDS)),),
                             notice=notice)
    return PolicyInForce((Layer(f"file {path}", policy, keys),))


def notebook_layer(metadata: Mapping[str, Any], name: str) -> Layer | None:
    """The layer of a notebook's ``metadata.tutor.policy`` (None if it has none). A broken one counts as the
    strictest policy: a lesson that meant to restrict must not end up with fewer limits."""
    tutor = metadata.get("tutor") if isinstance(metadata, Mapping) else None
    data = tutor.get("policy") if isinstance(tutor, Mapping) else None
    if data is None:
        return None
    source = f"notebook metadata of {name}"
    try:
        policy, keys = validate(data, source)
    except PolicyError as exc:
        return Layer(f"strictest, because the {source} has a mistake ({exc.problems[0].message})", STRICTEST,
                     frozenset(FIELDS))
    return Layer(source, policy, keys)


def notebook_policy_layer(path: str | Path) -> Layer | None:
    """The policy layer of the notebook file at ``path`` (None if unreadable or without a policy)."""
    path = Path(path)
    try:
        metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError, AttributeError, UnicodeDecodeError):
        return None
    return notebook_layer(metadata, path.name)


def check_report(path: str | Path) -> tuple[bool, str]:
    """What `tutor policy check FILE` prints: (ok, text)."""
    try:
        policy, keys = read_policy_file(path)
    except PolicyError as exc:
        count = len(exc.problems)
        return False, "\n".join([*exc.lines(), f"{count} problem{'s' * (count != 1)}: the tutor would use its "
                                                "strictest settings with this file."])
    unset = [name for name in FIELDS if name not in keys]
    note = f" (not set, so the default: {', '.join(unset)})" if unset else ""
    return True, f"OK {path}: {policy.summary()}{note}"
