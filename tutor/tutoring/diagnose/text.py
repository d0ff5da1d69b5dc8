"""Writing a diagnosis: code spans, plain titles, type names a beginner knows, did-you-mean, proposals."""

from __future__ import annotations

import ast
import difflib
import re
from types import SimpleNamespace

_HTML_UNSAFE = re.compile(r"[<>&]")

# A proposal (code a suggestion offers) is wrapped in these markers by :func:`propose`; the registry
# compiles it before it is shown and turns it into a code span (registry.finish).
PROPOSAL = SimpleNamespace(open="\x02", sep="\x1f", close="\x03")


def propose(source: str, replaces_line: int | None = None) -> str:
    """``source`` as code the suggestion proposes: shown only if it compiles.

    With ``replaces_line``, the cell with that line replaced must also get past that line (for syntax
    errors: the proposal really fixes the line it is offered for).
    """
    source = source.replace(PROPOSAL.open, "").replace(PROPOSAL.close, "").replace(PROPOSAL.sep, "")
    where = f"{replaces_line}{PROPOSAL.sep}" if replaces_line else ""
    return f"{PROPOSAL.open}{where}{source}{PROPOSAL.close}"


def code(value: object, limit: int = 60) -> str:
    """``value`` as a Markdown code span, shortened, on one line; code spans show HTML as text."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    for marker in (PROPOSAL.open, PROPOSAL.close, PROPOSAL.sep):
        text = text.replace(marker, "")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if "`" in text:
        return f"`` {text} ``"
    return f"`{text}`"


def plain(value: object, limit: int = 40) -> str:
    """``value`` for a plain-text title: one line, short, without characters that look like HTML."""
    text = _HTML_UNSAFE.sub("", str(value).replace("\n", " ").replace("`", "'"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def on(line: int | None) -> str:
    return f" on line {line}" if line else ""


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


MAX_COMPARED = 1000  # names compared letter by letter; CPython's own suggestions stop at 750


def comparable(word: str, candidates) -> list[str]:
    """The candidates worth comparing with ``word``: at most MAX_COMPARED, the closest in length first.

    A name of very different length can't be a close match, so nothing is lost by leaving it out; and a
    notebook with 20,000 similar names stays fast (difflib compares each pair letter by letter).
    """
    names = [c for c in candidates if isinstance(c, str) and c != word]
    if len(names) <= MAX_COMPARED:
        return names
    slack = max(2, len(word) // 3)
    near = [c for c in names if abs(len(c) - len(word)) <= slack]
    near.sort(key=lambda c: (abs(len(c) - len(word)), c[:1].lower() != word[:1].lower()))
    return near[:MAX_COMPARED]


def close(word: str, candidates, cutoff: float = 0.7) -> str | None:
    """The best close match for ``word``, trying a case-insensitive match first."""
    if not word:
        return None
    candidates = [c for c in candidates if isinstance(c, str) and c != word]
    lower: dict[str, str] = {}
    for c in candidates:
        lower.setdefault(c.lower(), c)
    if word.lower() in lower:
        return lower[word.lower()]
    for best in difflib.get_close_matches(word, comparable(word, candidates), n=3, cutoff=cutoff):
        # A slip in the first letter is rare; 'Alice' is more likely text than a misspelt 'slice'.
        if best[0].lower() == word[0].lower() or difflib.SequenceMatcher(None, word, best).ratio() >= 0.85:
            return best
    return None


def python_hint(message: str) -> str | None:
    """The name in a "Did you mean: 'x'?" that Python put in the message itself."""
    m = re.search(r"Did you mean:? '?([A-Za-z_][\w.]*)'?\??", message)
    return m.group(1) if m else None


TYPE_WORDS = {
    "str": "text (a `str`)", "int": "a whole number (an `int`)", "float": "a decimal number (a `float`)",
    "list": "a list", "dict": "a dictionary", "tuple": "a tuple", "NoneType": "`None`", "bool": "`True`/`False`",
    "set": "a set", "frozenset": "a frozen set", "function": "a function", "builtin_function_or_method": "a function",
    "method": "a method", "module": "a module", "type": "a class", "range": "a range", "complex": "a complex number",
    "bytes": "bytes", "generator": "a generator", "dict_keys": "the keys of a dictionary",
    "dict_values": "the values of a dictionary", "dict_items": "the items of a dictionary",
    "method-wrapper": "a method", "map": "a `map` object", "filter": "a `filter` object", "zip": "a `zip` object",
}


def type_word(name: str) -> str:
    return TYPE_WORDS.get(name, f"a `{name}`")


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def snippet(node: ast.AST | None) -> str:
    if node is None:
        return ""
    try:
        return ast.unparse(node)
    except Exception:
        return ""


def quoted_text(words: str) -> str:
    """``words`` as a Python string literal a beginner would write."""
    if '"' not in words:
        return f'"{words}"'
    if "'" not in words:
        return f"'{words}'"
    return '"' + words.replace('"', '\\"') + '"'
