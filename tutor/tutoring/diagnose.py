"""Model-free explanations of the errors beginners meet most, for a failing notebook cell.

:func:`diagnose` takes the cell's source, the exception it raised and (optionally) the user's
variables, and returns a :class:`Diagnosis`: a stable ``kind``, a one-line ``title``, a short
plain-language ``explanation`` in Markdown (no HTML), the 1-based ``line`` in the cell and a
concrete ``suggestion``. It returns ``None`` when no rule fits (a model may take over then).

Rules are cheap pattern matches on the message, the cell's text, the traceback and the values the
student already has; nothing here imports a package, runs user code or walks the file system
beyond a few ``os.path.isfile`` checks on traceback file names. :func:`diagnose` never raises.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import dis
import io
import keyword
import os
import re
import sys
import tokenize
import types
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Diagnosis", "KINDS", "diagnose"]


@dataclass(frozen=True)
class Diagnosis:
    """One explained error."""

    kind: str  # stable id, e.g. "missing-colon"
    title: str  # one short plain-text line for a panel heading
    explanation: str  # Markdown for a beginner, 2-5 sentences, no HTML
    line: int | None  # 1-based line in the cell source, when known
    suggestion: str | None  # a concrete next step (Markdown), when there is one


KINDS = (
    # syntax
    "missing-colon", "unclosed-bracket", "unmatched-bracket", "unclosed-string", "unexpected-indent",
    "expected-indent", "inconsistent-dedent", "mixed-tabs-spaces", "assign-in-condition", "print-statement",
    "keyword-as-name", "missing-quotes", "missing-comma", "invalid-character",
    # names and attributes
    "name-typo", "name-before-assignment", "missing-import", "name-not-defined", "unbound-local",
    "attribute-typo", "unknown-attribute", "none-from-method", "missing-return", "none-value",
    # run-time values
    "type-mismatch", "compare-types", "not-callable", "not-iterable", "wrong-arg-count", "index-out-of-range",
    "missing-key", "bad-conversion", "unpack-count", "zero-division", "module-not-found", "import-name",
    "recursion",
)

_MAX_NAMES = 20_000  # candidates for did-you-mean; more than any real notebook has
_MAX_FRAMES = 20_000
_BLOCK_KEYWORDS = ("if", "elif", "else", "for", "while", "def", "class", "try", "except", "finally", "with",
                   "async", "match", "case")
_QUOTES = {"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u00ab": '"', "\u00bb": '"'}
_LOOKALIKES = {**_QUOTES, "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00d7": "*", "\u00f7": "/",
               "\u00a0": " ", "\u2026": "...", "\uff08": "(", "\uff09": ")", "\uff1a": ":", "\uff0c": ","}
# Methods that change their object in place and give back None.
_IN_PLACE = {"sort", "reverse", "append", "extend", "insert", "remove", "clear", "update", "add", "discard",
             "shuffle"}
_NONE_FUNCTIONS = {"print", "exec", "setattr", "delattr"}
# Names other languages use for things Python spells differently. A method name is suggested only
# when the value really has it; the others ("len()", "in", ...) are ways of writing it in Python.
_OTHER_LANGUAGES = {
    "push": "append", "add": "append", "push_back": "append", "length": "len()", "size": "len()",
    "len": "len()", "lenght": "len()", "isEmpty": "len()", "toUpperCase": "upper", "toLowerCase": "lower",
    "uppercase": "upper", "lowercase": "lower", "toupper": "upper", "tolower": "lower", "trim": "strip",
    "contains": "in", "includes": "in", "has_key": "in", "indexOf": "index", "charAt": "[ ]", "forEach": "for",
    "substring": "[ : ]", "equals": "==", "toString": "str()",
}
_NOT_METHODS = {"len()", "in", "[ ]", "[ : ]", "for", "==", "str()"}
# Popular packages a student may import, and their names on PyPI when they differ.
_POPULAR_MODULES = (
    "numpy", "pandas", "matplotlib", "seaborn", "scipy", "sklearn", "requests", "bs4", "PIL", "cv2", "torch",
    "tensorflow", "keras", "sympy", "plotly", "nltk", "statsmodels", "ipywidgets", "yaml", "tqdm", "networkx",
    "openpyxl", "pygame", "flask", "django", "transformers", "datasets", "altair", "bokeh", "polars",
    "pytest", "IPython", "jupyter", "numba", "xgboost", "lightgbm", "spacy", "gensim", "folium", "geopandas",
)
_PIP_NAMES = {"sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "pillow", "bs4": "beautifulsoup4",
              "yaml": "pyyaml", "IPython": "ipython"}
_BUILTIN_NAMES = frozenset(n for n in dir(builtins) if not n.startswith("_"))
_HTML_UNSAFE = re.compile(r"[<>&]")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def diagnose(source: str, error: BaseException, namespace: Mapping[str, object] | None = None) -> Diagnosis | None:
    """Explain ``error``, raised by the cell ``source``, for a beginner; ``None`` when no rule applies.

    ``namespace`` holds the user's variables (for did-you-mean and for reading lengths, keys and
    values). Never raises; returns ``None`` for ``KeyboardInterrupt``, ``SystemExit`` and anything
    that is not an ``Exception``.
    """
    try:
        if not isinstance(error, Exception):
            return None
        ctx = _Context(source, error, namespace)
        for kinds, rule in _RULES:
            if isinstance(error, kinds):
                return rule(ctx)
        return None
    except Exception:  # a helper must never turn one error into two
        return None


# --------------------------------------------------------------------------------------------- context

class _Context:
    """What the rules look at: the cell's lines, the failing line, its frame and the user's names."""

    def __init__(self, source: object, error: Exception, namespace: object):
        self.source = source if isinstance(source, str) else ""
        self.lines = self.source.splitlines()
        self.error = error
        self.message = _message(error)
        self.namespace: Mapping = namespace if isinstance(namespace, Mapping) else {}
        self.frames: list[tuple[str, int, types.FrameType]] = []  # the cell's frames, outermost first
        self.code_frames: list[types.FrameType] = []  # frames of any notebook code, this cell's or earlier ones
        self.frame: types.FrameType | None = None
        self.line: int | None = None
        self._tree: ast.AST | None | bool = False
        if isinstance(error, SyntaxError):
            self.line = self._syntax_line(error)
            text = error.text if isinstance(error.text, str) else ""
            self.text = self.lines[self.line - 1] if self.line else text.rstrip("\r\n")
        else:
            self._locate(error)
            self.text = self.lines[self.line - 1] if self.line else ""

    # where -------------------------------------------------------------------------------------------
    def _syntax_line(self, err: SyntaxError) -> int | None:
        lineno, text = err.lineno, err.text if isinstance(err.text, str) else ""
        if isinstance(lineno, int) and 1 <= lineno <= len(self.lines):
            if not text.strip() or self.lines[lineno - 1].strip() == text.strip():
                return lineno
        if text.strip():
            same = [i + 1 for i, line in enumerate(self.lines) if line.strip() == text.strip()]
            if len(same) == 1:
                return same[0]
        return None

    def _locate(self, err: Exception) -> None:
        frames = []
        tb = err.__traceback__
        while tb is not None and len(frames) < _MAX_FRAMES:
            frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno, tb.tb_frame))
            tb = tb.tb_next
        checked: dict[str, bool] = {}

        def is_cell(filename: str) -> bool:
            if filename not in checked:
                checked[filename] = _looks_like_cell_file(filename)
            return checked[filename]

        cell = [f for f in frames if is_cell(f[0])]
        self.code_frames = [f[2] for f in cell]
        if cell:
            # The cell being run is the outermost cell-like frame; frames of other cells (functions
            # defined earlier) have other file names and their line numbers are not this cell's.
            name = cell[0][0]
            cell = [f for f in cell if f[0] == name]
        else:
            cell = [f for f in frames if self._matches_source(f[0], f[1])]
        self.frames = cell
        if not cell:
            return
        filename, lineno, frame = cell[-1]
        self.frame = frame
        if 1 <= lineno <= len(self.lines) and self._matches_source(filename, lineno, missing_ok=True):
            self.line = lineno

    def _matches_source(self, filename: str, lineno: int, missing_ok: bool = False) -> bool:
        if not (isinstance(lineno, int) and 1 <= lineno <= len(self.lines)):
            return False
        import linecache  # only consulted for files that claim to be this cell

        try:
            known = linecache.getline(filename, lineno)
        except Exception:
            known = ""
        if not known.strip():
            return missing_ok
        return known.strip() == self.lines[lineno - 1].strip()

    # what --------------------------------------------------------------------------------------------
    @property
    def tree(self) -> ast.AST | None:
        if self._tree is False:
            try:
                with warnings.catch_warnings():  # e.g. "invalid escape sequence": not ours to report
                    warnings.simplefilter("ignore")
                    self._tree = ast.parse(self.source) if len(self.source) < 200_000 else None
            except Exception:
                self._tree = None
        return self._tree  # type: ignore[return-value]

    def scopes(self) -> list[Mapping]:
        found: list[Mapping] = []
        if self.frame is not None:
            found.append(self.frame.f_locals)
        found.append(self.namespace)
        if self.frame is not None:
            found.append(self.frame.f_globals)
        return found

    def lookup(self, name: str) -> tuple[bool, object]:
        for scope in self.scopes():
            try:
                if name in scope:
                    return True, scope[name]
            except Exception:
                continue
        if name in _BUILTIN_NAMES:
            return True, getattr(builtins, name)
        return False, None

    def user_value(self, name: str) -> tuple[bool, object]:
        """Like :meth:`lookup` but only the student's own variables, not builtins."""
        found, value = self.lookup(name)
        if found and name in _BUILTIN_NAMES and value is getattr(builtins, name, object()):
            return False, None
        return found, value

    def known_names(self) -> list[str]:
        names: set[str] = set(_BUILTIN_NAMES) | {"True", "False", "None"}
        for scope in self.scopes():
            try:
                for i, key in enumerate(scope):
                    if i >= _MAX_NAMES:
                        break
                    if isinstance(key, str) and not key.startswith("_"):
                        names.add(key)
            except Exception:
                continue
        names.update(n for n, _ in self.assignments())
        return sorted(names)

    def assignments(self) -> list[tuple[str, ast.AST]]:
        """(name, node) for every simple name this cell stores, in source order."""
        tree = self.tree
        if tree is None:
            return []
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                found.append((node.id, node))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.append((node.name, node))
            elif isinstance(node, ast.arg):
                found.append((node.arg, node))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    found.append(((alias.asname or alias.name).split(".")[0], node))
        return sorted(found, key=lambda item: getattr(item[1], "lineno", 0))

    def nodes_on_line(self, kind: type | tuple[type, ...]) -> list[ast.AST]:
        tree = self.tree
        if tree is None or self.line is None:
            return []
        return [n for n in ast.walk(tree)
                if isinstance(n, kind) and getattr(n, "lineno", 0) <= self.line <= getattr(n, "end_lineno", 0)]

    def function_defs(self) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
        tree = self.tree
        if tree is None:
            return {}
        return {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def where(self, capital: bool = False) -> str:
        if self.line is None:
            return "In this cell" if capital else "in this cell"
        return f"On line {self.line}" if capital else f"on line {self.line}"


def _looks_like_cell_file(filename: str) -> bool:
    if not isinstance(filename, str) or not filename:
        return False
    if filename.startswith("<frozen") or filename.startswith("<__array_function__"):
        return False
    if filename.startswith("<") and filename.endswith(">"):
        return True  # <cell>, <ipython-input-3-...>, <string>, <stdin>
    if re.search(r"ipykernel_\d+[/\\]\d+\.py$", filename) or "ipython-input-" in filename:
        return True
    try:
        return not os.path.isfile(filename)
    except Exception:
        return False


def _message(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        return str(error.msg or "")
    try:
        if isinstance(error, KeyError):
            return repr(error.args[0]) if error.args else ""
        return str(error)
    except Exception:
        return ""


# --------------------------------------------------------------------------------------------- helpers

def _code(value: object, limit: int = 60) -> str:
    """``value`` as a Markdown code span, shortened, on one line; code spans show HTML as text."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if "`" in text:
        return f"`` {text} ``"
    return f"`{text}`"


def _plain(value: object, limit: int = 40) -> str:
    """``value`` for a plain-text title: one line, short, without characters that look like HTML."""
    text = _HTML_UNSAFE.sub("", str(value).replace("\n", " ").replace("`", "'"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _on(line: int | None) -> str:
    return f" on line {line}" if line else ""


def _close(word: str, candidates, cutoff: float = 0.7) -> str | None:
    """The best close match for ``word``, trying a case-insensitive match first."""
    if not word:
        return None
    candidates = [c for c in candidates if isinstance(c, str) and c != word]
    lower = {}
    for c in candidates:
        lower.setdefault(c.lower(), c)
    if word.lower() in lower:
        return lower[word.lower()]
    for best in difflib.get_close_matches(word, candidates, n=3, cutoff=cutoff):
        # A slip in the first letter is rare; 'Alice' is more likely text than a misspelt 'slice'.
        if best[0].lower() == word[0].lower() or difflib.SequenceMatcher(None, word, best).ratio() >= 0.85:
            return best
    return None


def _python_hint(message: str) -> str | None:
    m = re.search(r"Did you mean:? '?([A-Za-z_][\w.]*)'?\??", message)
    return m.group(1) if m else None


def _type_word(name: str) -> str:
    return {
        "str": "text (a `str`)", "int": "a whole number (an `int`)", "float": "a decimal number (a `float`)",
        "list": "a list", "dict": "a dictionary", "tuple": "a tuple", "NoneType": "`None`", "bool": "`True`/`False`",
        "set": "a set", "function": "a function", "builtin_function_or_method": "a function",
    }.get(name, f"a `{name}`")


def _returns_only_none(func: object) -> bool:
    """True for a plain Python function whose every ``return`` gives back ``None``."""
    if not isinstance(func, types.FunctionType):
        return False
    code = func.__code__
    if code.co_flags & (0x20 | 0x80 | 0x100 | 0x200) or len(code.co_code) > 20_000:  # generators, coroutines
        return False
    previous = None
    for ins in dis.get_instructions(code):
        if ins.opname == "RETURN_CONST" and ins.argval is not None:
            return False
        if ins.opname == "RETURN_VALUE" and not (previous is not None and previous.opname == "LOAD_CONST"
                                                 and previous.argval is None):
            return False
        previous = ins
    return True


def _def_returns_value(node: ast.AST) -> bool:
    stack = list(getattr(node, "body", []))
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Return) and n.value is not None and not (
                isinstance(n.value, ast.Constant) and n.value.value is None):
            return True
        if isinstance(n, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


def _snippet(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:
        return ""


# --------------------------------------------------------------------------------------------- syntax

def _syntax(ctx: _Context) -> Diagnosis | None:
    err: SyntaxError = ctx.error  # type: ignore[assignment]
    msg, line, text = ctx.message, ctx.line, ctx.text.rstrip("\r\n")
    err_text = (err.text if isinstance(err.text, str) else text).rstrip("\r\n")
    offset = err.offset if isinstance(err.offset, int) else 0
    for rule in (_indentation, _keyword_as_name, _print_statement, _unclosed_string, _brackets,
                 _assign_in_condition, _missing_colon, _invalid_character, _forgot_comma):
        found = rule(ctx, msg, line, text, err_text, offset)
        if found is not None:
            return found
    if msg.startswith("invalid syntax") or "never closed" in msg:
        return _unbalanced_scan(ctx)
    return None


def _indentation(ctx, msg, line, text, err_text, offset):
    where = f"Line {line}" if line else "A line"
    if isinstance(ctx.error, TabError) or "inconsistent use of tabs" in msg:
        return Diagnosis(
            "mixed-tabs-spaces", f"Tabs and spaces are mixed in the indentation{_on(line)}",
            f"{where} is indented with a mix of tab characters and spaces. They can look the same on screen, "
            "but Python counts them differently, so it can't tell which block the line belongs to.",
            line, "Indent with spaces only (4 per level): delete the indentation of this block and type it again.")
    if "unexpected indent" in msg:
        return Diagnosis(
            "unexpected-indent", f"{where} is indented but should not be",
            "Python uses the spaces at the start of a line to group lines into blocks. "
            f"{where} starts with spaces, but there is no `if`, `for`, `def` or other line ending in `:` "
            "above it that opens a block for it.",
            line, f"Remove the spaces at the start of {'line ' + str(line) if line else 'that line'} "
                  "so it lines up with the line above.")
    if msg.startswith("expected an indented block"):
        m = re.search(r"after (?:'(\w+)' statement|(function) definition|(class) definition) on line (\d+)", msg)
        header = None
        head_line = None
        if m:
            header = m.group(1) or ("def" if m.group(2) else "class")
            head_line = int(m.group(4))
            head_line = head_line if 1 <= head_line <= len(ctx.lines) else None
        opener = f"the `{header}` line" if header else "a line ending with `:`"
        if head_line is not None and line == head_line:  # nothing at all follows the header
            return Diagnosis(
                "expected-indent", f"The block after line {line} is empty",
                f"A line ending with `:` starts a block, and a block needs at least one indented line. "
                f"Nothing indented follows {opener} on line {line}.",
                line, "Add the indented lines of the block, or `pass` as a placeholder for now.")
        after = f" after {opener}{_on(head_line)}" if header else ""
        return Diagnosis(
            "expected-indent", f"{where} should be indented",
            "A line ending with `:` starts a block, and the lines inside the block must be indented "
            f"(usually by 4 spaces). {where} comes right{after or ' after such a line'} but is not indented.",
            line, f"Indent {'line ' + str(line) if line else 'the lines of the block'} by 4 spaces.")
    if "unindent does not match" in msg:
        levels = sorted({len(row) - len(row.lstrip(" \t")) for row in ctx.lines[: (line or 1) - 1] if row.strip()})
        shown = ", ".join(str(n) for n in levels[:5])
        shown = shown[::-1].replace(" ,", " ro ", 1)[::-1] if len(levels) > 1 else shown
        have = len(text) - len(text.lstrip(" \t"))
        detail = f" It starts with {have} spaces, but the lines above start with {shown} spaces." if levels else ""
        return Diagnosis(
            "inconsistent-dedent", f"{where} does not line up with any block above it",
            "When a block ends, the next line must start exactly where an earlier line started."
            f"{detail}",
            line, "Line it up with the block it belongs to by using the same number of spaces as that block.")
    return None


def _keyword_as_name(ctx, msg, line, text, err_text, offset):
    m = re.match(r"cannot assign to (True|False|None|__debug__)", msg)
    word = m.group(1) if m else None
    if word is None and (msg.startswith("invalid syntax") or msg.startswith("expected")):
        kw = "|".join(k for k in keyword.kwlist if k not in ("True", "False", "None"))
        for pattern in (rf"^\s*({kw})\s*(?:[-+*/%&|^@]|//|\*\*|>>|<<)?=(?!=)",  # class = 3, class += 1
                        rf"^\s*for\s+({kw})\b(?=.*\bin\b)",  # for class in ...
                        rf"^\s*(?:async\s+)?def\s+({kw})\s*\(",  # def class():
                        rf"^\s*(?:async\s+)?def\s+\w+\s*\((?:[^)]*[,(]\s*)?\**({kw})\s*[,)=:]",  # def f(class):
                        rf"^\s*\w+\s*,\s*({kw})\s*=(?!=)"):  # x, class = ...
            m = re.search(pattern, err_text)
            if m:
                word = m.group(1)
                break
    if word is None:
        return None
    if word in ("True", "False", "None", "__debug__"):
        return Diagnosis(
            "keyword-as-name", f"{word} is a fixed value and can't be assigned to",
            f"`{word}` is one of Python's built-in constants, so you can't store something else in it. "
            "To keep a value, choose a name of your own.",
            line, f"Use a different name, such as `is_{word.lower()}` or `my_value`.")
    others = ", ".join(f"`{k}`" for k in ("for", "if", "class", "lambda") if k != word)
    return Diagnosis(
        "keyword-as-name", f"'{word}' is a Python keyword and can't be a name",
        f"Words such as `{word}`, {others} have a special meaning in Python, so you can't use "
        f"them as names of your own variables, functions or parameters. {ctx.where(True)} `{word}` is used "
        "as a name.",
        line, f"Pick another name, such as `{word}_` or `my_{word}`, and use it everywhere you meant `{word}`.")


def _print_statement(ctx, msg, line, text, err_text, offset):
    m = re.match(r"^(\s*)print\s+(?![=(])(.+?)\s*$", err_text)
    if "Missing parentheses in call to 'print'" not in msg and not (m and msg.startswith("invalid syntax")):
        return None
    fixed = f"print({m.group(2)})" if m else 'print("...")'
    return Diagnosis(
        "print-statement", f"print needs parentheses{_on(line)}",
        "In Python 3, `print` is a function, so what you want to show goes inside parentheses. "
        '`print "hello"` is the old Python 2 style.',
        line, f"Write {_code(fixed, 80)}.")


def _unclosed_string(ctx, msg, line, text, err_text, offset):
    if not (("unterminated" in msg and "string" in msg) or "while scanning" in msg):
        return None
    triple = "triple-quoted" in msg
    quote = None
    if 1 <= offset <= len(err_text):
        rest = err_text[offset - 1:]
        for q in ("'''", '"""', "'", '"'):
            if rest.lstrip("rRbBfFuU").startswith(q):
                quote = q
                break
    if quote is None:
        quote = '"""' if triple else '"'
    if triple:
        explanation = (f"A text that starts with {_code(quote)}{_on(line)} is never closed, so Python read "
                       "everything after it as part of the text. It needs the same three quotes at its end.")
    else:
        explanation = (f"Text in Python starts and ends with the same quote mark. The text that starts with "
                       f"{_code(quote)}{_on(line)} has no closing {_code(quote)} before the end of the line.")
    return Diagnosis("unclosed-string", f"A string is never closed{_on(line)}", explanation,
                     line, f"Add the closing {_code(quote)} where the text ends.")


_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _brackets(ctx, msg, line, text, err_text, offset):
    m = re.match(r"'([(\[{])' was never closed", msg)
    if m:
        opening = m.group(1)
        return Diagnosis(
            "unclosed-bracket", f"An opening {opening} is never closed{_on(line)}",
            f"Every {_code(opening)} needs a matching {_code(_PAIRS[opening])}. The {_code(opening)}"
            f"{_on(line)} is still open when the statement should end, so Python read on into the "
            "next lines looking for it.",
            line, f"Add the missing {_code(_PAIRS[opening])} where the expression{_on(line)} ends.")
    m = re.match(r"closing parenthesis '(.)' does not match opening parenthesis '(.)'(?: on line (\d+))?", msg)
    if m:
        closing, opening = m.group(1), m.group(2)
        return Diagnosis(
            "unmatched-bracket", f"A {closing} closes a {opening}{_on(line)}",
            "Brackets must be closed in the reverse order they were opened, each with its own partner. "
            f"Here a {_code(closing)} appears while a {_code(opening)} is still open.",
            line, f"Close the {_code(opening)} with {_code(_PAIRS.get(opening, '?'))}, "
                  f"or remove the extra {_code(closing)}.")
    m = re.match(r"unmatched '([)\]}])'", msg)
    if m:
        closing = m.group(1)
        opening = {v: k for k, v in _PAIRS.items()}[closing]
        return Diagnosis(
            "unmatched-bracket", f"An extra {closing} has no opening {opening}{_on(line)}",
            f"Python found a closing {_code(closing)}{_on(line)} without an opening {_code(opening)} "
            "before it. Brackets always come in pairs.",
            line, f"Remove the extra {_code(closing)}, or add the {_code(opening)} it should close.")
    return None


_LONE_EQUALS = re.compile(r"(?<![=!<>:+\-*/%&|^@])=(?!=)")


def _assign_in_condition(ctx, msg, line, text, err_text, offset):
    m = re.match(r"^(\s*)(if|elif|while)\b(.*)$", err_text)
    if not m or "Maybe you meant '=='" not in msg and not (msg.startswith("invalid syntax")
                                                            and _LONE_EQUALS.search(m.group(3))):
        return None
    fixed = m.group(2) + _LONE_EQUALS.sub("==", m.group(3), count=1)
    return Diagnosis(
        "assign-in-condition", f"Use == to compare{_on(line)}",
        f"A single `=` stores a value in a variable; to check whether two values are equal, Python uses `==`. "
        f"The condition of the `{m.group(2)}`{_on(line)} uses `=`, which is not allowed there.",
        line, f"Change it to {_code(fixed.strip(), 80)}.")


def _missing_colon(ctx, msg, line, text, err_text, offset):
    if msg != "expected ':'":
        return None
    head = err_text[: offset - 1] if 1 < offset <= len(err_text) + 1 else err_text
    head = head.strip()
    first = (head.split() or [""])[0].rstrip(":(")
    if first not in _BLOCK_KEYWORDS:
        return Diagnosis(
            "missing-colon", f"A colon is missing{_on(line)}",
            f"Python expected a colon `:`{_on(line)}, for example between a key and its value in a dictionary, "
            "or at the end of a line that starts a block.",
            line, f"Add `:` after {_code(head, 80)}." if head else "Add the missing `:`.")
    where = f"at the end of line {line}" if line else "at the end of the line"
    return Diagnosis(
        "missing-colon", f"A colon is missing {where}",
        f"A line that starts a block (`if`, `for`, `while`, `def`, `class`, `else`, ...) must end with a colon "
        f"`:`. {'Line ' + str(line) if line else 'The line'} starts with `{first}` but has no colon, so Python "
        "can't tell where the block begins.",
        line, f"Add `:` after {_code(head, 80)}.")


def _invalid_character(ctx, msg, line, text, err_text, offset):
    m = re.match(r"invalid (?:non-printable )?character '?(.)'? \((U\+[0-9A-F]+)\)", msg)
    if not m:
        return None
    char = m.group(1)
    if char in _QUOTES:
        return Diagnosis(
            "invalid-character", f"Curly quotes{_on(line)}",
            f"The quote mark {_code(char)}{_on(line)} is a typographic (curly) quote, usually copied from a "
            "document or web page. Python only understands straight quotes `\"` and `'`.",
            line, f"Replace {_code(char)} with {_code(_QUOTES[char])}, and check the other quotes on the line.")
    plain = _LOOKALIKES.get(char)
    return Diagnosis(
        "invalid-character", f"A character Python can't read{_on(line)}",
        f"The character {_code(char)} ({m.group(2)}){_on(line)} is not part of Python's syntax. It often "
        "comes from copying code out of a document or web page.",
        line, f"Replace it with {_code(plain)}." if plain else "Delete it and type that part again.")


def _forgot_comma(ctx, msg, line, text, err_text, offset):
    if "Perhaps you forgot a comma" not in msg:
        return None
    err = ctx.error
    end = getattr(err, "end_offset", None)
    same_line = getattr(err, "end_lineno", None) in (None, err.lineno)
    span = err_text[offset - 1: end - 1] if same_line and isinstance(end, int) and 1 <= offset < end else ""
    words = span.strip()
    if re.fullmatch(r"[A-Za-z][\w']*(?:\s+[A-Za-z][\w']*)+\s*[.,!?:;]*", words):
        defined = [w for w in re.findall(r"[A-Za-z_]\w*", words) if ctx.lookup(w)[0] and not keyword.iskeyword(w)]
        if len(defined) < len(words.split()):
            quoted = '"' + words.replace('"', '\\"') + '"'
            return Diagnosis(
                "missing-quotes", f"Text needs quotes{_on(line)}",
                f"Python reads words without quotes as names of variables, so {_code(words)} doesn't make sense "
                "to it. Text that should be used as it is must be inside quotes.",
                line, f"Write {_code(quoted, 80)}.")
    return Diagnosis(
        "missing-comma", f"A comma may be missing{_on(line)}",
        f"Two values stand next to each other{_on(line)} with nothing between them"
        f"{' in ' + _code(words) if words else ''}. In a list, a call or a tuple, items are separated by commas.",
        line, "Put a `,` between the items (or an operator such as `+` if you meant to combine them).")


def _unbalanced_scan(ctx: _Context) -> Diagnosis | None:
    """Find an unclosed bracket ourselves when Python's message is only 'invalid syntax'."""
    stack: list[tuple[str, int]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(ctx.source).readline):
            if tok.type == tokenize.OP and tok.string in _PAIRS:
                stack.append((tok.string, tok.start[0]))
            elif tok.type == tokenize.OP and tok.string in (")", "]", "}"):
                if not stack or _PAIRS[stack[-1][0]] != tok.string:
                    return None
                stack.pop()
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    if not stack:
        return None
    opening, line = stack[0]
    return Diagnosis(
        "unclosed-bracket", f"An opening {opening} is never closed on line {line}",
        f"Every {_code(opening)} needs a matching {_code(_PAIRS[opening])}. The {_code(opening)} on line {line} "
        "is still open, so Python read the next lines as part of the same statement.",
        line, f"Add the missing {_code(_PAIRS[opening])} where the expression on line {line} ends.")


# --------------------------------------------------------------------------------------------- names

def _unbound_local(ctx: _Context) -> Diagnosis | None:
    m = re.search(r"local variable '(\w+)'", ctx.message)
    if not m:
        return None
    name = m.group(1)
    func = ctx.frame.f_code.co_name if ctx.frame is not None else None
    in_func = f" inside `{func}`" if func and func != "<module>" else ""
    outside = any(_scope_has(s, name) for s in (ctx.namespace, getattr(ctx.frame, "f_globals", {})))
    if outside:
        explanation = (f"`{name}` is given a value{in_func}, so Python treats it as a new local variable of that "
                       f"function, separate from the `{name}` outside. {ctx.where(True)} the local `{name}` is "
                       "used before it has a value.")
        suggestion = (f"Pass `{name}` in as a parameter and `return` the new value, or write `global {name}` as "
                      f"the first line of `{func or 'the function'}` to change the outer one.")
    else:
        explanation = (f"`{name}` is a variable{in_func}, but {ctx.where()} it is used before any line has given "
                       "it a value. Python runs a function's lines from top to bottom.")
        suggestion = f"Give `{name}` a value before this line, for example a starting value at the top of the function."
    return Diagnosis("unbound-local", f"'{_plain(name)}' is used before it gets a value{_on(ctx.line)}",
                     explanation, ctx.line, suggestion)


def _scope_has(scope: object, name: str) -> bool:
    try:
        return isinstance(scope, Mapping) and name in scope
    except Exception:
        return False


def _name_error(ctx: _Context) -> Diagnosis | None:
    name = getattr(ctx.error, "name", None)
    if not isinstance(name, str):
        m = re.search(r"name '(\w+)' is not defined", ctx.message)
        if not m:
            return None
        name = m.group(1)
    line, shown = ctx.line, _plain(name)
    other_language = {"true": "True", "false": "False", "null": "None", "none": "None", "nil": "None",
                      "NULL": "None", "println": "print", "echo": "print", "printf": "print", "length": "len",
                      "elif_": "elif", "string": "str", "integer": "int"}.get(name)
    # assigned later in this cell?
    later = [getattr(node, "lineno", 0) for n, node in ctx.assignments() if n == name]
    if later and not other_language and line is not None and min(later) > line:
        first = min(later)
        return Diagnosis(
            "name-before-assignment", f"'{shown}' is used before it gets a value{_on(line)}",
            f"`{name}` gets its value on line {first}, but {ctx.where()} it is already used. A cell runs from top "
            "to bottom, so a variable must be given a value before the line that uses it.",
            line, f"Move the line that sets `{name}` above the line that uses it.")
    guess = other_language or _python_hint(ctx.message) or _close(name, ctx.known_names(), cutoff=0.75)
    if guess:
        return Diagnosis(
            "name-typo", f"Unknown name '{shown}'{_on(line)}",
            f"Python doesn't know a name `{name}`. It looks like a small spelling mistake: names must be spelt "
            "exactly the same everywhere, including upper and lower case.",
            line, f"Did you mean `{guess}`?")
    module = name if name in sys.stdlib_module_names or name in _POPULAR_MODULES else None
    module = module or {"np": "numpy", "pd": "pandas", "plt": "matplotlib.pyplot", "sns": "seaborn"}.get(name)
    if module:
        statement = f"import {module}" if module == name else f"import {module} as {name}"
        return Diagnosis(
            "missing-import", f"'{shown}' needs to be imported first",
            f"`{name}` is a module, and a module can only be used after an `import` line has loaded it. "
            "No cell so far has run that import (or the kernel was restarted since).",
            line, f"Add {_code(statement)} at the top of the cell and run it again.")
    in_text_context = re.search(r"print\(|input\(|==|!=|=\s*" + re.escape(name) + r"\s*$", ctx.text)
    if re.fullmatch(r"[A-Za-z]{3,}", name) and (name[0].isupper() or in_text_context):
        return Diagnosis(
            "missing-quotes", f"Unknown name '{shown}'{_on(line)}: text without quotes?",
            f"Python reads a word without quotes as the name of a variable, and there is no variable `{name}`. "
            "If you meant the word itself, it needs quotes around it.",
            line, f"Write `\"{name}\"` if you meant text; if it's a variable, give it a value first.")
    return Diagnosis(
        "name-not-defined", f"Unknown name '{shown}'{_on(line)}",
        f"Python doesn't know a name `{name}`: no line that has run so far gave it a value. A variable only "
        "exists after a line like `name = ...` has run, in this cell or an earlier one.",
        line, f"Check the spelling of `{name}`, or run the cell that defines it first.")


def _attribute_error(ctx: _Context) -> Diagnosis | None:
    err = ctx.error
    attr = getattr(err, "name", None)
    has_obj = False
    obj = None
    try:
        obj = err.obj  # type: ignore[attr-defined]
        has_obj = True
    except Exception:
        pass
    m = re.match(r"'(\w+)' object has no attribute '(\w+)'", ctx.message)
    mm = re.match(r"module '([\w.]+)' has no attribute '(\w+)'", ctx.message)
    if not isinstance(attr, str):
        attr = (m or mm).group(2) if (m or mm) else None
    if attr is None:
        return None
    if m:
        type_name = m.group(1)
    elif mm:
        type_name = "module"
    else:
        type_name = type(obj).__name__ if has_obj and obj is not None else None
    if has_obj and type_name is not None and (type(obj).__name__ != type_name or (mm and obj is None)):
        has_obj, obj = False, None  # AttributeError.obj defaults to None when nobody set it
    if not has_obj:
        if mm and mm.group(1) in sys.modules:
            obj, has_obj = sys.modules[mm.group(1)], True
        elif type_name in ("list", "str", "dict", "tuple", "set", "int", "float"):
            obj, has_obj = getattr(builtins, type_name), True
        elif type_name == "NoneType":
            obj, has_obj = None, True
    if type_name == "NoneType":
        return _none_rule(ctx, f"`None` has no attribute `{attr}`")
    line = ctx.line
    what = f"module `{mm.group(1)}`" if mm else _type_word(type_name or "object")
    shown_type = mm.group(1) if mm else type_name or "This value"
    names = []
    if has_obj:
        try:
            names = [n for n in dir(obj) if isinstance(n, str) and not n.startswith("_")][:_MAX_NAMES]
        except Exception:
            names = []
    guess = _python_hint(ctx.message)
    other = _OTHER_LANGUAGES.get(attr)
    if other and (other in _NOT_METHODS or other in names):
        guess = other
    guess = guess or _close(attr, names, cutoff=0.6)
    if guess:
        if guess in names:
            hint = f"Did you mean `.{guess}`?"
        elif guess == "len()":
            hint = "To get the number of items, use `len(...)` around the value instead of `." + attr + "`."
        elif guess == "in":
            hint = f"To check whether something is inside, use `in`, like `item in values` (not `.{attr}`)."
        elif guess in ("[ ]", "[ : ]"):
            hint = "Use square brackets to get characters: `text[0]`, or `text[2:5]` for a slice."
        elif guess == "for":
            hint = "Use a `for` loop: `for item in values:`."
        elif guess == "==":
            hint = "Compare values with `==`."
        elif guess == "str()":
            hint = "Turn a value into text with `str(...)`."
        else:
            hint = f"Did you mean `.{guess}`?"
        return Diagnosis(
            "attribute-typo", f"{_plain(shown_type)} has no attribute '{_plain(attr)}'{_on(line)}",
            f"{ctx.where(True)} you use `.{attr}` on {what}, but {what} has no method or attribute with that "
            "name. Names after the dot must match exactly, and some names from other languages are different "
            "in Python.",
            line, hint)
    return Diagnosis(
        "unknown-attribute", f"{_plain(shown_type)} has no attribute '{_plain(attr)}'{_on(line)}",
        f"{ctx.where(True)} you use `.{attr}` on {what}, but it has no method or attribute with that name. "
        "Maybe the value is not the type you expected.",
        line, "Print the value and its `type(...)` just before this line to see what it is, "
              "and `dir(...)` to list what it has.")


# --------------------------------------------------------------------------------------------- None values

def _none_rule(ctx: _Context, what: str) -> Diagnosis:
    """Explain an operation on ``None``: which call gave the ``None``, when we can tell."""
    line = ctx.line
    defs = ctx.function_defs()

    def no_return(name: str) -> bool:
        if name in defs:
            return not _def_returns_value(defs[name])
        found, value = ctx.user_value(name)
        return found and _returns_only_none(value)

    def explain_call(call: ast.Call, via: str | None) -> Diagnosis | None:
        func = call.func
        through = f"`{via}` got its value from {_code(_snippet(call))}, and " if via else ""
        if isinstance(func, ast.Name) and func.id in _NONE_FUNCTIONS:
            return Diagnosis(
                "none-from-method", f"{func.id}() gives back None{_on(line)}",
                f"{what} {ctx.where()}. {through[:1].upper() + through[1:] if through else ''}`{func.id}()` shows "
                "or does something but gives back `None`, not a value you can use.",
                line, f"Use the value itself instead of what `{func.id}(...)` returns.")
        if isinstance(func, ast.Name) and no_return(func.id):
            return Diagnosis(
                "missing-return", f"The function {func.id} gives back None{_on(line)}",
                f"{what} {ctx.where()}. {through[:1].upper() + through[1:] if through else ''}`{func.id}` has no "
                "`return` line with a value, so calling it gives back `None` and its result is lost.",
                line, f"Add a `return` line at the end of `{func.id}` that gives back its result.")
        if isinstance(func, ast.Attribute) and func.attr in _IN_PLACE:
            target = _snippet(func.value)
            return Diagnosis(
                "none-from-method", f".{func.attr}() changes the value in place and gives back None{_on(line)}",
                f"{what} {ctx.where()}. {through[:1].upper() + through[1:] if through else ''}"
                f"`.{func.attr}()` changes {_code(target)} itself and gives back `None`, so there is no "
                "new value to use.",
                line, (f"Call {_code(target + '.' + func.attr + '(...)')} on its own line, then keep using "
                       f"{_code(target)}" if isinstance(func.value, ast.Name) else
                       f"Store the value in a variable first, call `.{func.attr}(...)` on it on its own line, "
                       "then use the variable") + (" (or use `sorted(...)` for a sorted copy)." if func.attr == "sort"
                                                  else "."))
        return None

    calls = sorted(ctx.nodes_on_line(ast.Call), key=lambda n: (n.lineno, n.col_offset))
    for call in calls:
        found = explain_call(call, None)
        if found and not _is_statement_call(ctx, call):
            return found
    used = {n.id for n in ctx.nodes_on_line(ast.Name) if isinstance(n.ctx, ast.Load)}
    tree = ctx.tree
    if tree is not None and line is not None:
        latest: dict[str, ast.Call] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and node.lineno < line:
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in used:
                        if target.id not in latest or latest[target.id].lineno < node.lineno:
                            latest[target.id] = node.value
        for name, call in latest.items():
            found = explain_call(call, name)
            if found:
                return found
    for name in sorted(used):  # a variable set to None in an earlier cell by a function without return
        found_value, value = ctx.user_value(name)
        if found_value and value is None:
            break
    else:
        name = None
    subject = f"`{name}` is `None`" if name else "a value is `None`"
    return Diagnosis(
        "none-value", f"A value is None{_on(line)}",
        f"{what} {ctx.where()}: {subject}, Python's value for \"nothing\". That usually comes from a function "
        "without a `return` line, or from a method like `.sort()` or `.append()` that changes a list and gives "
        "back `None`.",
        line, "Print the values used on this line to find the `None`, then check where it got its value.")


def _is_statement_call(ctx: _Context, call: ast.Call) -> bool:
    """A call that is a whole statement (``xs.sort()`` on its own) can't be where the None was used."""
    tree = ctx.tree
    if tree is None:
        return False
    return any(isinstance(n, ast.Expr) and n.value is call for n in ast.walk(tree))


# --------------------------------------------------------------------------------------------- TypeError

def _type_error(ctx: _Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    if "'NoneType'" in msg:
        m = re.search(r"unsupported operand type\(s\) for (\S+?):", msg)
        if m:
            return _none_rule(ctx, f"`{m.group(1)}` can't work with `None`")
        if "not subscriptable" in msg:
            return _none_rule(ctx, "`None` can't be indexed with `[...]`")
        if "not iterable" in msg:
            return _none_rule(ctx, "`None` can't be looped over")
        if "not supported between" in msg:
            return _none_rule(ctx, "`None` can't be compared")
        return _none_rule(ctx, "`None` was used like a value")
    for rule in (_concat, _compare, _not_callable, _arg_count, _not_iterable):
        found = rule(ctx, msg, line)
        if found is not None:
            return found
    return None


def _concat(ctx, msg, line):
    m = re.match(r'can only concatenate (\w+) \(not "(\w+)"\) to (\w+)', msg)
    if m:
        op, left, right = "+", m.group(1), m.group(2)
    else:
        m = re.match(r"unsupported operand type\(s\) for (\S+?): '(\w+)' and '(\w+)'", msg)
        if m:
            op, left, right = m.groups()
        else:
            m = re.match(r"can't multiply sequence by non-int of type '(\w+)'", msg)
            if not m:
                return None
            op, left, right = "*", "str", m.group(1)
    numbers = {"int", "float", "bool", "complex"}
    pair = {left, right}
    if "str" in pair and pair & numbers:
        number = (pair & numbers).pop()
        uses_input = "input(" in ctx.source
        return Diagnosis(
            "type-mismatch", f"Text and a number are combined{_on(line)}",
            f"{ctx.where(True)} {_type_word('str')} and {_type_word(number)} are combined with an operator. "
            "Python won't guess whether you mean text or arithmetic, so both sides must be the same kind."
            + (" Remember that `input()` always gives back text, even when digits are typed." if uses_input else ""),
            line, "To join them as text, wrap the number in `str(...)` (or use an f-string like `f\"age: {age}\"`); "
                  "for arithmetic, turn the text into a number with `int(...)` or `float(...)`.")
    if left == "list" and right != "list" and op == "+":
        suggestion = "To add one item to a list, use `.append(item)`; `+` only joins two lists."
    elif left == "str" and right == "str" and "multiply" in msg:
        suggestion = "Turn the text into a number with `int(...)` before multiplying."
    else:
        suggestion = "Check the types of both values (print `type(...)` of each) and convert one of them."
    return Diagnosis(
        "type-mismatch", f"These types can't be combined{_on(line)}",
        f"{ctx.where(True)} `{op}` is used with {_type_word(left)} and {_type_word(right)}. Python doesn't know "
        f"how to combine those two kinds of value with `{op}`.",
        line, suggestion)


def _compare(ctx, msg, line):
    m = re.match(r"'(\S+)' not supported between instances of '(\w+)' and '(\w+)'", msg)
    if not m:
        return None
    op, left, right = m.groups()
    uses_input = "input(" in ctx.source
    return Diagnosis(
        "compare-types", f"Comparing {_plain(left)} with {_plain(right)}{_on(line)}",
        f"{ctx.where(True)} `{op}` compares {_type_word(left)} with {_type_word(right)}. Python can only order "
        "values of the same kind, such as two numbers or two texts."
        + (" Remember that `input()` always gives back text." if uses_input else ""),
        line, "Turn the text into a number with `int(...)` or `float(...)` before comparing."
        if {"str"} & {left, right} and {"int", "float"} & {left, right}
        else "Convert one side so that both values are the same type.")


def _not_callable(ctx, msg, line):
    m = re.match(r"'(\w+)' object is not callable", msg)
    if not m:
        return None
    type_name = m.group(1)
    called = [c.func.id for c in ctx.nodes_on_line(ast.Call) if isinstance(c.func, ast.Name)]
    if not called:
        called = re.findall(r"([A-Za-z_]\w*)\s*\(", ctx.text)
    for name in called:
        found, value = ctx.lookup(name)
        if not found or callable(value) or type(value).__name__ != type_name:
            continue
        if name in _BUILTIN_NAMES:
            set_on = [getattr(node, "lineno", None) for n, node in ctx.assignments() if n == name]
            where_set = f" on line {set_on[0]}" if set_on and set_on[0] else ""
            return Diagnosis(
                "not-callable", f"'{name}' is no longer the built-in function{_on(line)}",
                f"A variable named `{name}` was created{where_set or ' earlier'}, and it hides Python's built-in "
                f"`{name}()` function. So {ctx.where()} `{name}(...)` tries to call {_type_word(type_name)}, "
                "which is not a function.",
                line, f"Rename your variable (for example `my_{name}`) everywhere, then run `del {name}` once to get "
                      f"the built-in `{name}()` back.")
        if type_name in ("int", "float"):
            return Diagnosis(
                "not-callable", f"'{name}' is a number, not a function{_on(line)}",
                f"{ctx.where(True)} `{name}(...)` uses `{name}` like a function, but it holds "
                f"{_type_word(type_name)}. In Python, brackets right after a value mean \"call it\".",
                line, f"To multiply, write the `*` explicitly: `{name} * (...)`.")
        return Diagnosis(
            "not-callable", f"'{name}' can't be called{_on(line)}",
            f"{ctx.where(True)} `{name}(...)` uses `{name}` like a function, but it holds {_type_word(type_name)}. "
            "Brackets right after a value mean \"call it\".",
            line, f"Check what `{name}` holds; to get an item use square brackets, like `{name}[0]`."
            if type_name in ("list", "tuple", "dict", "str") else f"Check what `{name}` holds.")
    return Diagnosis(
        "not-callable", f"Something that is not a function is called{_on(line)}",
        f"{ctx.where(True)} {_type_word(type_name)} is followed by brackets `(...)`, so Python tries to call it "
        "like a function. This often means a missing operator or comma, such as `2(3)` instead of `2 * (3)`, "
        "or `(1, 2) (3, 4)` instead of `(1, 2), (3, 4)`.",
        line, "Add the missing `*` or `,` before the `(`, or check that the name really holds a function.")


def _arg_count(ctx, msg, line):
    m = re.match(r"([\w.<>]+)\(\) missing (\d+) required (positional|keyword-only) arguments?: (.+)", msg)
    n = re.match(r"([\w.<>]+)\(\) takes (\d+|from \d+ to \d+) positional arguments? but (\d+) (?:were|was) given",
                 msg)
    e = re.match(r"([\w.<>]+)\(\) takes exactly one argument \((\d+) given\)", msg)
    if not (m or n or e):
        return None
    func = (m or n or e).group(1)
    short = func.split(".")[-1]
    shown = short if short != "__init__" else func.split(".")[-2] if "." in func else short
    signature = _signature(ctx, func)
    sig_text = f" Its definition is {_code(shown + signature)}." if signature else ""
    if m:
        missing = [a.strip(" '") for a in re.split(r",\s*|\s+and\s+", m.group(4)) if a.strip(" '")]
        listed = ", ".join(f"`{a}`" for a in missing)
        return Diagnosis(
            "wrong-arg-count", f"{_plain(shown)}() is missing {m.group(2)} argument{'s' if m.group(2) != '1' else ''}"
                               f"{_on(line)}",
            f"{ctx.where(True)} `{shown}` is called without a value for {listed}.{sig_text} Each parameter without "
            "a default needs a value in the call, in the same order as the definition.",
            line, f"Pass a value for {listed} when you call `{shown}`.")
    if e:
        takes, given = "1", e.group(2)
    else:
        takes, given = n.group(2), n.group(3)
    if "." in func and takes.isdigit() and int(given) == int(takes) + 1 and short != "__init__":
        return Diagnosis(
            "wrong-arg-count", f"{_plain(shown)}() is missing its self parameter",
            f"A method receives the object it is called on as its first argument, so "
            f"`{func}` was given {given} argument{'s' if given != '1' else ''} but only accepts {takes}.{sig_text}",
            line, f"Add `self` as the first parameter in the definition of `{short}`.")
    return Diagnosis(
        "wrong-arg-count", f"{_plain(shown)}() is given too many arguments{_on(line)}",
        f"{ctx.where(True)} `{shown}` is called with {given} value{'s' if given != '1' else ''}, but it takes "
        f"{takes}.{sig_text} Each value in the call fills one parameter.",
        line, f"Call `{shown}` with {takes.replace('from ', '')} argument{'s' if takes != '1' else ''}, or add a "
              "parameter to its "
              "definition if it really needs more.")


def _signature(ctx: _Context, func: str) -> str | None:
    parts = func.split(".")
    found, value = ctx.lookup(parts[0])
    if not found:
        return None
    try:
        for part in parts[1:]:
            value = getattr(value, part)
        import inspect

        if not isinstance(value, types.FunctionType):
            return None
        signature = inspect.signature(value)
        if len(parts) > 1 and signature.parameters:  # a method: the object fills the first parameter
            signature = signature.replace(parameters=list(signature.parameters.values())[1:])
        return str(signature)
    except Exception:
        return None


def _not_iterable(ctx, msg, line):
    m = re.match(r"'(\w+)' object is not iterable", msg) or re.match(r"object of type '(\w+)' has no len\(\)", msg)
    if not m:
        return None
    type_name = m.group(1)
    number = type_name in ("int", "float")
    if "len()" in msg:
        explanation = (f"{ctx.where(True)} `len(...)` is used on {_type_word(type_name)}. Only collections such "
                       "as lists, strings and dictionaries have a length.")
    else:
        explanation = (f"{ctx.where(True)} a loop (or a function like `list()` or `sum()`) tries to go through "
                       f"the items of {_type_word(type_name)}. Only collections such as lists, strings and ranges have "
                       "items to go through.")
    return Diagnosis(
        "not-iterable", f"{_type_word(type_name).replace('`', '').capitalize()} has no items{_on(line)}", explanation,
        line, "To repeat something n times, loop over `range(n)`, like `for i in range(n):`." if number
        else "Check that the value is the list or text you expected.")


# --------------------------------------------------------------------------------------------- lookups

_SEQUENCES = (list, tuple, str, bytes, bytearray, range)


def _index_error(ctx: _Context) -> Diagnosis | None:
    m = re.match(r"(\w+) index out of range", ctx.message)
    if not m:
        return None
    kind_of, line = m.group(1), ctx.line
    thing = {"list": "list", "string": "text", "tuple": "tuple"}.get(kind_of, kind_of)
    items = "character" if thing == "text" else "item"
    detail, suggestion = "", None
    for sub in ctx.nodes_on_line(ast.Subscript):
        name = _snippet(sub.value)
        found, value = _evaluate(ctx, sub.value)
        if not found or not isinstance(value, _SEQUENCES):
            continue
        try:
            size = len(value)  # type: ignore[arg-type]
        except Exception:
            continue
        ok_index, index = _evaluate(ctx, sub.slice)
        if ok_index and isinstance(index, int) and -size <= index < size:
            continue  # not the subscript that failed
        asked = f" and position {index} was asked for" if ok_index and isinstance(index, int) else ""
        if size == 0:
            detail = f" `{name}` is empty{asked}, so it has no positions at all."
            suggestion = f"Check that `{name}` has items before using one, e.g. with `if {name}:`."
        else:
            valid = f"the valid positions are 0 to {size - 1}" if size > 1 else "the only valid position is 0"
            detail = f" `{name}` has {size} {items}{'s' if size != 1 else ''}{asked}; {valid}."
            suggestion = (f"Use a position from 0 to {size - 1}; the last {items} is `{name}[{size - 1}]` or "
                          f"`{name}[-1]`." if size > 1 else f"Use position 0: `{name}[0]`.")
        break
    return Diagnosis(
        "index-out-of-range", f"Position outside the {thing}{_on(line)}",
        f"{ctx.where(True)} an item of a {thing} is asked for at a position it doesn't have.{detail} "
        "Positions count from 0, so the last one is the length minus 1.",
        line, suggestion or "Print the length with `len(...)` and the position you use, just before this line; "
                            "a loop with `range(len(...) + 1)` or a position counted from 1 are common causes.")


def _evaluate(ctx: _Context, node: ast.AST) -> tuple[bool, object]:
    """The value of a tiny expression (a name, a constant, ``-n``, ``a.b``), without running code."""
    if isinstance(node, ast.Constant):
        return True, node.value
    if isinstance(node, ast.Name):
        return ctx.lookup(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        ok, value = _evaluate(ctx, node.operand)
        if ok and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, -value
    if isinstance(node, ast.Attribute):
        ok, value = _evaluate(ctx, node.value)
        if ok:
            try:  # only a plain instance attribute: reading it runs no code of the student's
                fields = object.__getattribute__(value, "__dict__")
                if isinstance(fields, dict) and node.attr in fields:
                    return True, fields[node.attr]
            except Exception:
                return False, None
    return False, None


def _key_error(ctx: _Context) -> Diagnosis | None:
    err = ctx.error
    if not err.args:
        return None
    key, line = err.args[0], ctx.line
    name, keys = None, None
    for sub in ctx.nodes_on_line(ast.Subscript):
        found, value = _evaluate(ctx, sub.value)
        if found and isinstance(value, Mapping):
            ok_key, used = _evaluate(ctx, sub.slice)
            if ok_key and used != key:
                continue
            name = _snippet(sub.value)
            try:
                keys = list(value.keys())[:_MAX_NAMES]
            except Exception:
                keys = None
            break
    in_dict = f" in `{name}`" if name else ""
    the_dict = f"the dictionary `{name}`" if name else "the dictionary"
    guess = None
    if keys and isinstance(key, str):
        guess = _close(key, [k for k in keys if isinstance(k, str)], cutoff=0.6)
    elif keys and isinstance(key, (int, float)) and str(key) in keys:
        guess = str(key)
    if guess is not None:
        suggestion = f"Did you mean {_code(repr(guess))}?"
    elif keys is not None and len(keys) <= 8:
        shown = ", ".join(_code(repr(k), 30) for k in keys) or "none"
        suggestion = f"The keys{in_dict} are: {shown}."
    else:
        suggestion = (f"Check with {_code(repr(key) + ' in ' + (name or 'the_dict'))} first, or use "
                      f"{_code((name or 'the_dict') + '.get(' + repr(key) + ')')}, which gives `None` "
                      "instead of an error.")
    return Diagnosis(
        "missing-key", f"The key {_plain(repr(key))} is not{_plain(in_dict.replace('`', ''))}{_on(line)}",
        f"{ctx.where(True)} {the_dict} is asked for the key {_code(repr(key))}, but it has no such "
        "key. Keys must match exactly, including upper and lower case and the type (`1` and `'1'` differ).",
        line, suggestion)


# --------------------------------------------------------------------------------------------- values

def _value_error(ctx: _Context) -> Diagnosis | None:
    msg, line = ctx.message, ctx.line
    m = re.match(r"invalid literal for int\(\) with base \d+: (.+)$", msg, re.S)
    f = re.match(r"could not convert string to float: (.+)$", msg, re.S)
    if m or f:
        target = "int" if m else "float"
        raw = (m or f).group(1)
        try:
            text = ast.literal_eval(raw)
        except Exception:
            text = raw
        text = str(text)
        shown = _code(repr(text))
        from_input = " `input()` always gives back text, exactly as it was typed." if "input(" in ctx.source else ""
        if not text.strip():
            hint = "The text is empty: perhaps nothing was typed before pressing Enter."
            suggestion = "Check that the text is not empty before converting it."
        elif target == "int" and re.fullmatch(r"\s*[-+]?\d*\.\d+\s*", text):
            hint = "It has a decimal point, and `int()` only reads whole numbers."
            suggestion = "Use `float(...)` for numbers with a decimal point."
        elif re.fullmatch(r"\s*[-+]?[\d\s,_.]+\s*", text):
            hint = "It contains spaces or commas that `int()` and `float()` can't read."
            suggestion = "Remove the spaces or commas first, for example with `.replace(',', '')`."
        else:
            hint = "It contains characters that are not part of a number."
            suggestion = ("Check the text before converting it, for example with `.isdigit()`, "
                          "or convert only the part that is a number.")
        return Diagnosis(
            "bad-conversion", f"This text is not a number{_on(line)}",
            f"{ctx.where(True)} `{target}()` is asked to turn {shown} into a number. {hint}{from_input}",
            line, suggestion)
    m = re.match(r"(too many|not enough) values to unpack \(expected (\d+)(?:, got (\d+))?\)", msg)
    if m:
        got = f" but {m.group(3)} came" if m.group(3) else " but more came"
        return Diagnosis(
            "unpack-count", f"{'Too many' if m.group(1) == 'too many' else 'Not enough'} values to unpack{_on(line)}",
            f"{ctx.where(True)} the values on the right are split into {m.group(2)} names on the left{got}. "
            "The number of names must match the number of values.",
            line, "Use as many names on the left as there are values, or check what the right side holds.")
    return None


def _zero_division(ctx: _Context) -> Diagnosis | None:
    line = ctx.line
    divisor = None
    for node in ctx.nodes_on_line((ast.BinOp, ast.AugAssign)):
        op = node.op
        if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)):
            right = node.right if isinstance(node, ast.BinOp) else node.value
            ok, value = _evaluate(ctx, right)
            if ok and isinstance(value, (int, float)) and value == 0:
                divisor = _snippet(right)
                break
    literal = divisor is not None and divisor.lstrip("-").replace(".", "").isdigit()
    subject = f" (`{divisor}` is 0)" if divisor and not literal else ""
    if literal:
        suggestion = "Divide by a number other than 0."
    else:
        suggestion = (f"Check that {_code(divisor) if divisor else 'the number you divide by'} is not 0 before "
                      f"dividing, e.g. with `if {divisor or 'divisor'} != 0:`.")
    return Diagnosis(
        "zero-division", f"Division by zero{_on(line)}",
        f"{ctx.where(True)} a number is divided by zero{subject}, which has no answer, so Python stops. "
        "This also applies to `//` and `%`.",
        line, suggestion)


def _module_not_found(ctx: _Context) -> Diagnosis | None:
    name = getattr(ctx.error, "name", None)
    if not isinstance(name, str):
        m = re.search(r"No module named '([\w.]+)'", ctx.message)
        if not m:
            return None
        name = m.group(1)
    top = name.split(".")[0]
    line = ctx.line
    if "." in name and top in sys.modules:
        parent, part = name.rsplit(".", 1)
        try:
            names = [n for n in dir(sys.modules.get(parent)) if not n.startswith("_")]
        except Exception:
            names = []
        guess = _close(part, names + ["pyplot"] * (parent == "matplotlib"), cutoff=0.7)
        return Diagnosis(
            "module-not-found", f"{_plain(parent)} has no module {_plain(part)}",
            f"`{parent}` is installed, but it has no part called `{part}`. Module names must be spelt exactly.",
            line, f"Did you mean `{parent}.{guess}`?" if guess else f"Check the spelling of `{part}`.")
    if top in _POPULAR_MODULES or top in _PIP_NAMES:
        package = _PIP_NAMES.get(top, top)
        return Diagnosis(
            "module-not-found", f"The package {_plain(top)} is not installed",
            f"`{top}` is a package that doesn't come with Python, and it is not installed in the environment this "
            "notebook runs in." + (f" On PyPI its name is `{package}`." if package != top else ""),
            line, f"Run `%pip install {package}` in a cell, then run this cell again.")
    guess = _close(top, list(_POPULAR_MODULES) + sorted(getattr(sys, "stdlib_module_names", ())), cutoff=0.75)
    if guess:
        return Diagnosis(
            "module-not-found", f"No module named {_plain(top)}: a spelling mistake?",
            f"Python can't find a module called `{top}`. Module names must be spelt exactly, and `{guess}` is a "
            "well-known module with a very similar name.",
            line, f"Did you mean `{guess}`?")
    return Diagnosis(
        "module-not-found", f"No module named {_plain(name)}",
        f"Python can't find a module called `{name}`. Either the name is misspelt, or it's a package that is not "
        "installed in the environment this notebook runs in.",
        line, f"Check the spelling; if it's a package from PyPI, run `%pip install {top}` in a cell "
              "(the name to install is sometimes different).")


def _import_name(ctx: _Context) -> Diagnosis | None:
    m = re.match(r"cannot import name '(\w+)' from '([\w.]+)'", ctx.message)
    if not m:
        return None
    name, module = m.groups()
    names = []
    mod = sys.modules.get(module)
    if mod is not None:
        try:
            names = [n for n in dir(mod) if not n.startswith("_")]
        except Exception:
            names = []
    guess = _close(name, names, cutoff=0.6)
    return Diagnosis(
        "import-name", f"{_plain(module)} has no {_plain(name)}",
        f"The module `{module}` was found, but it has nothing called `{name}` to import. Names must be spelt "
        "exactly as the module spells them.",
        ctx.line, f"Did you mean `{guess}`?" if guess else f"Look up what `{module}` offers with `dir({module})` "
                                                           "after `import " + module + "`.")


def _recursion(ctx: _Context) -> Diagnosis | None:
    counts: dict[str, int] = {}
    for frame in ctx.code_frames or [f[2] for f in ctx.frames]:
        counts[frame.f_code.co_name] = counts.get(frame.f_code.co_name, 0) + 1
    counts.pop("<module>", None)
    func = max(counts, key=counts.get) if counts else None
    line = ctx.line
    if func is None:
        return Diagnosis(
            "recursion", "Too many nested calls",
            "A function kept calling itself (or functions kept calling each other) until Python gave up. "
            "Recursion needs a base case: a situation where the function returns without calling itself again.",
            line, "Check that the recursive function has a base case, and that every call moves closer to it.")
    node = ctx.function_defs().get(func)
    has_if = node is not None and any(isinstance(n, (ast.If, ast.IfExp)) for n in ast.walk(node))
    params = [a.arg for a in node.args.args] if node is not None else []
    param = params[0] if params and params[0] != "self" else (params[1] if len(params) > 1 else None)
    if has_if:
        suggestion = (f"Check that each call of `{func}` gets closer to the base case"
                      f"{' (for example that `' + param + '` gets smaller)' if param else ''}, "
                      "and that the base case can really be reached.")
    else:
        suggestion = (f"Add a base case at the start of `{func}`: an `if` that returns a value without calling "
                      f"`{func}` again{' (for example when `' + param + '` is 0)' if param else ''}.")
    return Diagnosis(
        "recursion", f"The function {_plain(func)} never stops calling itself",
        f"`{func}` calls itself, and every call makes another call, so they never end; after about "
        f"{sys.getrecursionlimit()} nested calls Python stops. A recursive function needs a base case where it "
        "returns without calling itself.",
        line, suggestion)


_RULES: tuple[tuple[type | tuple[type, ...], object], ...] = (
    (SyntaxError, _syntax),
    (UnboundLocalError, _unbound_local),
    (NameError, _name_error),
    (AttributeError, _attribute_error),
    (ModuleNotFoundError, _module_not_found),
    (ImportError, _import_name),
    (RecursionError, _recursion),
    (TypeError, _type_error),
    (IndexError, _index_error),
    (KeyError, _key_error),
    (ValueError, _value_error),
    (ZeroDivisionError, _zero_division),
)
