"""Syntax errors where Python says only "invalid syntax": read the tokens around where it stopped.

Python reports the position (line and column) of the token where parsing failed. Each rule here looks at
the tokens of that logical line (``tokenize``), at that position, for one beginner's pattern: ``x++``,
``for i in range 3:``, a header without its colon, ``&&``, braces around a block, a shell command typed
into a cell, two statements on one line. Pythons 3.10-3.11 and 3.12+ tokenize stray characters
differently (ERRORTOKEN or OP), so rules compare token strings, not types.
"""

from __future__ import annotations

import keyword
import re
import tokenize
from dataclasses import dataclass

from .context import Context
from .model import Diagnosis
from .registry import compiles, rule
from .syntax import BLOCK_KEYWORDS, PAIRS, is_bare
from .text import code, on, propose

_BINARY = {"+", "-", "*", "/", "//", "%", "**", "@", "==", "!=", "<", ">", "<=", ">=", "&", "|", "^", "<<", ">>",
           "=", "+=", "-=", "*=", "/=", "//=", "%=", "**=", ",", "and", "or", "not", "in", "is", "."}
_SHELL = {"pip", "pip3", "conda", "python", "python3", "cd", "ls", "echo", "mkdir", "git", "apt", "apt-get", "brew",
          "npm", "jupyter", "cat", "rm", "cp", "mv", "sudo", "wget", "curl", "clear", "cls", "dir"}


@dataclass
class Spot:
    """Where Python stopped: the tokens of the logical line and the index of the token it stopped at."""

    toks: list[tokenize.TokenInfo]
    i: int  # len(toks) when it stopped at the end of the line
    line: int
    text: str  # the physical line

    def s(self, k: int) -> str:
        """The string of the token ``k`` places from where Python stopped ('' outside the line)."""
        j = self.i + k
        return self.toks[j].string if 0 <= j < len(self.toks) else ""

    def tok(self, k: int) -> tokenize.TokenInfo | None:
        j = self.i + k
        return self.toks[j] if 0 <= j < len(self.toks) else None

    @property
    def first(self) -> str:
        return self.toks[0].string if self.toks else ""

    def col(self, k: int = 0) -> int:
        """The column (in ``text``) where the token ``k`` places away starts; the line's end after the last."""
        t = self.tok(k)
        if t is None:
            return len(self.text.rstrip())
        return t.start[1] if t.start[0] == self.line else -1

    def adjacent(self, a: int, b: int) -> bool:
        ta, tb = self.tok(a), self.tok(b)
        return ta is not None and tb is not None and ta.end == tb.start


def spot(ctx: Context) -> Spot | None:
    err = ctx.error
    if not is_bare(ctx) or ctx.line is None or err.lineno != ctx.line:
        return None
    offset = err.offset if isinstance(err.offset, int) and err.offset > 0 else None
    toks = ctx.line_tokens(ctx.line)
    if not toks or offset is None:
        return None
    pos = (ctx.line, offset - 1)
    i = len(toks)
    for j, t in enumerate(toks):
        if t.start >= pos or t.start < pos < t.end:
            i = j
            break
    return Spot(toks, i, ctx.line, ctx.text.rstrip("\r\n"))


def _indent(text: str) -> str:
    return text[: len(text) - len(text.lstrip())]


def _diagnosis(kind: str, title: str, explanation: str, line: int, suggestion: str | None) -> Diagnosis:
    return Diagnosis(kind, f"{title}{on(line)}", explanation, line, suggestion)


# ------------------------------------------------------------------------------------- not Python at all

@rule(SyntaxError, kinds="shell-command", order=70)
def shell_command(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.first not in _SHELL or len(s.toks) < 2 or ctx.user_value(s.first)[0]:
        return None
    if s.toks[1].type != tokenize.NAME and s.toks[1].string not in ("-", "."):
        return None
    command = s.text.strip()
    magic = "%" + command if s.first in ("pip", "pip3", "conda", "cd", "ls") else "!" + command
    if s.first == "pip3":
        magic = "%pip" + command[4:]
    return _diagnosis(
        "shell-command", "A terminal command in a Python cell",
        f"{code(command)} is a command for a terminal (a shell), not Python code, so Python can't read it. "
        "A notebook can run such commands for you when they start with `%` or `!`.",
        s.line, f"Write {code(magic)} in the cell instead.")


@rule(SyntaxError, kinds="comment-syntax", order=70)
def other_language_comment(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None:
        return None
    stripped = s.text.strip()
    if not (stripped.startswith("//") or stripped.startswith("/*")):
        return None
    body = stripped.lstrip("/*").rstrip("*/").strip()
    return _diagnosis(
        "comment-syntax", "Comments start with # in Python",
        "In Python a comment starts with `#` and runs to the end of the line. `//` and `/* ... */` are "
        "comments in other languages; in Python `//` means whole-number division.",
        s.line, f"Write {propose('# ' + body, replaces_line=s.line)}.")


# ------------------------------------------------------------------------------------- operators of other languages

@rule(SyntaxError, kinds="increment-operator", order=70)
def increment(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None:
        return None
    m = re.fullmatch(r"\s*([A-Za-z_][\w.\[\]]*)\s*(\+\+|--)\s*;?\s*", s.text) \
        or re.fullmatch(r"\s*(\+\+|--)\s*([A-Za-z_][\w.\[\]]*)\s*;?\s*", s.text)
    if not m:
        return None
    name, op = (m.group(1), m.group(2)) if m.group(1)[0] not in "+-" else (m.group(2), m.group(1))
    fixed = f"{name} {op[0]}= 1"
    return _diagnosis(
        "increment-operator", f"Python has no {op} operator",
        f"`{op}` adds or subtracts 1 in languages like C or JavaScript, but Python has no such operator. "
        f"To change a variable by 1, Python writes `{op[0]}= 1`.",
        s.line, f"Write {propose(fixed, replaces_line=s.line)}.")


_REPLACEMENTS = (  # (tokens written together, what Python writes, what they mean)
    (("&", "&"), "and", "`&&` means \"and\" in other languages; Python writes the word `and`"),
    (("|", "|"), "or", "`||` means \"or\" in other languages; Python writes the word `or`"),
    (("==", "="), "==", "`===` compares in JavaScript; Python compares with `==`"),
    (("!", "=="), "!=", "`!==` means \"not equal\" in JavaScript; Python writes `!=`"),
    (("<", ">"), "!=", "`<>` meant \"not equal\" in old Python; Python 3 writes `!=`"),
    (("<>",), "!=", "`<>` meant \"not equal\" in old Python; Python 3 writes `!=`"),
    (("=", "!"), "!=", "\"not equal\" is written `!=` (the `!` first)"),
)


@rule(SyntaxError, kinds="other-language-operator", order=72)
def other_language_operator(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None:
        return None
    for k in (-1, 0, -2):
        for pattern, python, meaning in _REPLACEMENTS:
            if all(s.s(k + n) == p for n, p in enumerate(pattern)) and \
                    all(s.adjacent(k + n, k + n + 1) for n in range(len(pattern) - 1)):
                start, last = s.tok(k), s.tok(k + len(pattern) - 1)
                if start is None or last is None or start.start[0] != s.line or last.end[0] != s.line:
                    continue
                fixed = s.text[: start.start[1]].rstrip() + f" {python} " + s.text[last.end[1]:].lstrip()
                return _diagnosis(
                    "other-language-operator", f"Python writes {python} here",
                    f"{meaning}. Python stopped at that operator{on(s.line)}.",
                    s.line, f"Write {propose(fixed.strip(), replaces_line=s.line)}.")
    if "!" in (s.s(0), s.s(-1)):
        t = s.tok(0) if s.s(0) == "!" else s.tok(-1)
        if t is not None and t.start[0] == s.line and s.text[t.end[1]: t.end[1] + 1] != "=":
            fixed = s.text[: t.start[1]] + "not " + s.text[t.end[1]:].lstrip()
            return _diagnosis(
                "other-language-operator", "Python writes not instead of !",
                "`!` means \"not\" in other languages. Python writes the word `not`, as in `if not done:`; "
                "`!` appears only in `!=` (\"not equal\").",
                s.line, f"Write {propose(fixed.strip(), replaces_line=s.line)}.")
    if "?" in (s.s(0), s.s(-1)):
        m = re.fullmatch(r"(\s*(?:[A-Za-z_][\w.]*\s*=\s*)?)(.+?)\s*\?\s*(.+?)\s*:\s*(.+?)\s*;?", s.text)
        if m:
            fixed = f"{m.group(1).strip()} {m.group(3)} if {m.group(2)} else {m.group(4)}".strip()
            return _diagnosis(
                "other-language-operator", "Python writes a if condition else b",
                "`condition ? a : b` picks one of two values in other languages. Python writes it in words: "
                "`a if condition else b`.",
                s.line, f"Write {propose(fixed, replaces_line=s.line)}.")
    return None


@rule(SyntaxError, kinds="invalid-character", order=72)
def stray_character(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None:
        return None
    for k in (0, -1):
        char = s.s(k)
        if char in ("$", "?", "`") and (t := s.tok(k)) is not None and t.start[0] == s.line:
            why = {"$": "Python names have no `$` in front, and amounts of money are plain numbers",
                   "?": "a question is asked with `if`, and `?` is not an operator",
                   "`": "text goes between straight quotes `'...'` or `\"...\"`"}[char]
            return _diagnosis(
                "invalid-character", f"Python has no use for {char} here",
                f"The character {code(char)}{on(s.line)} is not part of Python's syntax outside text: {why}. "
                "Python stops at the first character it can't read.",
                s.line, f"Remove the `{char}`." if char != "`" else "Use quotes `'` or `\"` instead of backticks.")
    return None


# ------------------------------------------------------------------------------------- blocks

@rule(SyntaxError, kinds="else-if", order=45)
def else_if(ctx: Context) -> Diagnosis | None:
    # Python 3.10-3.13 say "expected ':'" here (after `else` comes its colon), or only "invalid syntax"
    if ctx.line is None or not (is_bare(ctx) or ctx.message == "expected ':'"):
        return None
    if not re.match(r"\s*else\s+if\b", ctx.text):
        return None
    fixed = re.sub(r"^(\s*)else\s+if\b", r"\1elif", ctx.text).strip()
    return _diagnosis(
        "else-if", "Python writes elif, not else if",
        "To test another condition after an `if`, Python uses the single word `elif` (short for \"else if\"). "
        "After `else` comes only a colon.",
        ctx.line, f"Write {propose(fixed, replaces_line=ctx.line)}.")


_OPENERS = {"except": ("try",), "finally": ("try",), "else": ("if", "elif", "for", "while", "try", "except"),
            "elif": ("if", "elif")}


@rule(SyntaxError, kinds="misplaced-clause", order=74)
def misplaced_clause(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None:
        return None
    word = s.s(0)
    if word in ("else", "elif") and s.i > 0 and s.first in ("if", "elif", "for", "while"):
        return _diagnosis(
            "misplaced-clause", f"{word} must start its own line",
            f"After `{s.first} ...:` on one line, Python reads everything up to the end of the line as its block, "
            f"so an `{word}` in the middle of the line doesn't fit. `{word}` must start a new line, lined up "
            f"with its `{s.first}`.",
            s.line, f"Put `{word}:` and what follows on a new line, under the `{s.first}`.")
    if s.i != 0 or word not in _OPENERS:
        return None
    indent = len(_indent(s.text))
    openers = _OPENERS[word]
    above = None
    for n in range(s.line - 2, -1, -1):
        row = ctx.lines[n]
        if not row.strip() or row.lstrip().startswith("#"):
            continue
        first = re.match(r"\s*(\w+)", row)
        if first and first.group(1) in openers:
            above = (n + 1, len(_indent(row)), first.group(1))
            break
    opener = " or ".join(f"`{o}`" for o in openers[:2])
    if above and above[1] != indent:
        return _diagnosis(
            "misplaced-clause", f"{word} is not lined up with its {above[2]}",
            f"`{word}` belongs to the `{above[2]}` on line {above[0]}, and it must start at exactly the same "
            f"indentation. Line {s.line} starts with {indent} spaces and line {above[0]} with {above[1]}.",
            s.line, f"Indent `{word}` like the `{above[2]}` on line {above[0]}.")
    return _diagnosis(
        "misplaced-clause", f"{word} without {'a ' + openers[0] if len(openers) == 1 else 'its block'}",
        f"`{word}` continues a block that starts with {opener}, at the same indentation right above it. "
        f"{ctx.where(True)} there is no such block for it to belong to (perhaps a line in between is not "
        "indented).",
        s.line, f"Put `{word}` right after the indented lines of its {opener} block, lined up with it.")


@rule(SyntaxError, kinds="braces-block", order=74)
def braces_block(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None:
        return None
    stripped = s.text.strip()
    if stripped in ("}", "};"):
        return _diagnosis(
            "braces-block", "Python blocks have no braces",
            "Other languages put blocks between `{` and `}`. Python ends a line that starts a block with `:` and "
            "indents the lines inside; the block ends where the indentation ends.",
            s.line, "Remove the `}` and indent the lines of the block instead.")
    if not stripped.endswith("{") or s.first not in (*BLOCK_KEYWORDS, "function", "func", "fn", "void"):
        return None
    head = stripped[:-1].rstrip()
    m = re.match(r"(?:function|func|fn|void)\s+(\w+\s*\(.*\))$", head)
    fixed = f"def {m.group(1)}:" if m else head + ":"
    fixed = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", fixed))
    suggestion = f"Write {propose(fixed)} and indent the lines of the block below it." if compiles(fixed) else \
        "End the line with `:` instead of `{` and indent the lines of the block."
    return _diagnosis(
        "braces-block", "Python blocks start with a colon, not {",
        "Other languages put blocks between `{` and `}`. Python ends a line that starts a block with `:` and "
        "indents the lines inside; the block ends where the indentation ends.",
        s.line, suggestion)


@rule(SyntaxError, kinds="for-loop-syntax", order=45)
def for_loop_syntax(ctx: Context) -> Diagnosis | None:
    # `for (i = 0; ...)` gets "invalid syntax. Maybe you meant '==' ...?", others a bare "invalid syntax"
    if ctx.line is None or not ctx.message.startswith("invalid syntax"):
        return None
    text = ctx.text.strip()
    if not text.startswith("for"):
        return None
    c = re.match(r"for\s*\(?\s*(?:int\s+|let\s+|var\s+)?([A-Za-z_]\w*)\s*=\s*(\w+)\s*;\s*\1\s*(<=|<)\s*(\w+)", text)
    t = re.match(r"for\s+([A-Za-z_]\w*)\s*(?:=|in)\s*(\w+)\s+to\s+(\w+)", text)
    if not (c or t or re.match(r"for\s*\(|for\s+\w+\s*=", text)):
        return None
    example = "for i in range(10):"
    if c or t:
        name, start, end = (c.group(1), c.group(2), c.group(4)) if c else (t.group(1), t.group(2), t.group(3))
        inclusive = (c.group(3) == "<=") if c else True
        if inclusive:
            end = str(int(end) + 1) if end.isdigit() else f"{end} + 1"
        example = f"for {name} in range({end}):" if start == "0" else f"for {name} in range({start}, {end}):"
    return _diagnosis(
        "for-loop-syntax", "A for loop in another language's style",
        "Python's `for` goes through the items of a sequence: `for i in range(n):` gives `i` the values 0 to "
        "n - 1. Counting with `=`, `;`, `++` or `to` comes from other languages.",
        ctx.line, f"Write {propose(example)}.")


@rule(SyntaxError, kinds="missing-parentheses", order=76)
def call_without_parentheses(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.i == 0:
        return None
    name, arg = s.tok(-1), s.tok(0)
    if name is None or arg is None or name.type != tokenize.NAME or keyword.iskeyword(name.string):
        return None
    if arg.type not in (tokenize.NUMBER, tokenize.STRING, tokenize.NAME) or keyword.iskeyword(arg.string):
        return None
    found, value = ctx.lookup(name.string)
    own = name.string in ctx.function_defs() or re.search(rf"^\s*def\s+{re.escape(name.string)}\s*\(", ctx.source, re.M)
    if not ((found and callable(value)) or own) or name.start[0] != s.line or arg.start[0] != s.line:
        return None
    # the argument runs to a ':' (a header) or the end of the line
    rest = s.text[arg.start[1]:]
    m = re.match(r"(.*?)\s*(:\s*(?:#.*)?)?$", rest)
    args, tail = (m.group(1), m.group(2) or "") if m else (rest, "")
    fixed = s.text[: name.end[1]] + "(" + args.strip() + ")" + tail
    if not compiles(fixed.strip()):
        return None
    return _diagnosis(
        "missing-parentheses", f"{name.string} needs parentheses around its arguments",
        f"`{name.string}` is a function, and calling a function needs parentheses around what it is given: "
        f"`{name.string}(...)`. {ctx.where(True)} the value follows `{name.string}` without them.",
        s.line, f"Write {propose(fixed.strip(), replaces_line=s.line)}.")


@rule(SyntaxError, kinds="missing-colon", order=78)
def header_without_colon(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.first not in BLOCK_KEYWORDS or s.i == 0 or s.col() < 0:
        return None
    depth = 0
    for t in s.toks[: s.i]:
        if t.string in PAIRS:
            depth += 1
        elif t.string in (")", "]", "}"):
            depth -= 1
        elif t.string == ":" and depth == 0:
            return None  # it has its colon: something else is wrong
    if depth != 0:
        return None
    head, rest = s.text[: s.col()].rstrip(), s.text[s.col():].strip()
    if not compiles(head.strip() + ":") or (rest and not compiles(rest)):
        return None
    return _diagnosis(
        "missing-colon", "A colon is missing",
        f"A line that starts a block (`if`, `for`, `while`, `def`, ...) must end its first part with a colon "
        f"`:`. {ctx.where(True)} `{s.first}` has no colon, so Python can't tell where the block begins.",
        s.line, f"Add `:` at the end of the first part: {propose(head.strip() + ':')}"
                + (f", and put {code(rest)} on the next line, indented." if rest else "."))


@rule(SyntaxError, kinds="missing-comma", order=78)
def missing_comma_in_names(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.i == 0:
        return None
    before, here = s.tok(-1), s.tok(0)
    if before is None or here is None or before.type != tokenize.NAME or here.type != tokenize.NAME \
            or keyword.iskeyword(here.string) or here.start[0] != s.line:
        return None
    inside_def = s.first in ("def", "async") and any(t.string == "(" for t in s.toks[: s.i])
    inside_import = s.first == "import"
    if not (inside_def or inside_import):
        return None
    fixed = s.text[: before.end[1]] + "," + s.text[before.end[1]:]
    what = "parameters of a function" if inside_def else "modules of an `import`"
    return _diagnosis(
        "missing-comma", "A comma is missing between names",
        f"The {what} are separated by commas. {ctx.where(True)} `{before.string}` and `{here.string}` stand "
        "next to each other with nothing between them.",
        s.line, f"Write {propose(fixed.strip(), replaces_line=s.line)}.")


@rule(SyntaxError, kinds="python2-syntax", order=78)
def python2_raise(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.first != "raise" or s.s(0) != ",":
        return None
    m = re.fullmatch(r"(\s*)raise\s+(\w+)\s*,\s*(.+?)\s*", s.text)
    fixed = f"raise {m.group(2)}({m.group(3)})" if m else None
    return _diagnosis(
        "python2-syntax", "Python 3 raises an error with parentheses",
        "`raise Error, message` is how Python 2 wrote it. In Python 3 the message goes inside parentheses, as "
        "if you were making the error: `raise ValueError(\"message\")`.",
        s.line, f"Write {propose(fixed, replaces_line=s.line)}." if fixed else "Write `raise Error(message)`.")


@rule(SyntaxError, kinds="python2-syntax", order=30)
def python2_except(ctx: Context) -> Diagnosis | None:
    msg = ctx.message
    text = ctx.text
    m = re.fullmatch(r"(\s*)except\s+(\w+)\s*,\s*(\w+)\s*:\s*", text)
    if not m or not (msg.startswith("multiple exception types must be parenthesized") or is_bare(ctx)):
        return None
    return Diagnosis(
        "python2-syntax", f"Python 3 writes except ... as{on(ctx.line)}",
        "`except Error, e:` is how Python 2 gave the error a name. Python 3 writes `except Error as e:`; with a "
        "comma, it reads a list of error types instead.",
        ctx.line, f"Write {propose(f'except {m.group(2)} as {m.group(3)}:')}.")


@rule(SyntaxError, kinds="two-statements", order=80)
def two_statements(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.i == 0 or s.i >= len(s.toks) or s.col() <= 0:
        return None
    here = s.tok(0)
    if here is None or here.type not in (tokenize.NAME, tokenize.NUMBER, tokenize.STRING):
        return None
    before = s.tok(-1)
    if here.type == tokenize.STRING and before is not None and before.type == tokenize.NAME and s.adjacent(-1, 0):
        return None  # `bf"text"`, `rf"..."` misspelt: a string prefix Python doesn't know, not two statements
    head, rest = s.text[: s.col()].strip(), s.text[s.col():].strip()
    if not ("=" in head or head.endswith(")")) or not compiles(head) or not compiles(rest):
        return None
    if s.first in BLOCK_KEYWORDS:
        return None
    return _diagnosis(
        "two-statements", "Two statements on one line",
        f"Python reads one statement per line. {ctx.where(True)} {code(head)} is complete, and {code(rest)} "
        "follows it on the same line.",
        s.line, f"Put {code(rest)} on a line of its own (or, if it belongs to the first part, join them with "
                "an operator or a comma).")


@rule(SyntaxError, kinds="incomplete-expression", order=82)
def incomplete_expression(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.i == 0:
        return None
    before, here = s.s(-1), s.s(0)
    if before not in _OPERATORS and here in _OPERATORS and s.s(1) in _OPERATORS:
        return _two_operators(s, here, s.s(1), at=1)  # `if x =< 3:`: Python stops at the first of the two
    if before not in _BINARY or before == ".":
        return None
    if here and here not in (")", "]", "}", ":", ",", "=", *_BINARY):
        return None
    if before == "," and here in (")", "]", "}", ""):
        return None  # a trailing comma is fine in Python; something else is wrong
    if before == "," and here in _BINARY and here != ",":
        # `def f(a, *, *)`, `def f(a, /, b, /)`, `import sin, and cos`: the comma does have something after
        # it, and what is wrong (a parameter order, a keyword) is not a missing value
        return None
    if before == "," and here == ",":
        return _diagnosis(
            "incomplete-expression", "Two commas with nothing between them",
            f"{ctx.where(True)} two commas stand next to each other. Each comma separates two items, so there "
            "must be a value between them.",
            s.line, "Remove one of the commas, or put the missing value between them.")
    if before in ("and", "or") and here in ("<", ">", "<=", ">=", "==", "!="):
        return _diagnosis(
            "incomplete-expression", f"Each side of {before} must be a whole comparison",
            f"{ctx.where(True)} `{before}` is followed by `{here}`, as in speech (\"bigger than 5 and smaller than "
            f"10\"). In Python each side of `{before}` is a comparison of its own, so the value must be named "
            "again.",
            s.line, "Write the value on both sides, like `x > 5 and x < 10`, or chain the comparison: `5 < x < 10`.")
    if here in _OPERATORS and before in _OPERATORS:
        return _two_operators(s, before, here)
    after = "the end of the line" if not here else code(here)
    return _diagnosis(
        "incomplete-expression", f"{before} has nothing after it",
        f"{ctx.where(True)} `{before}` is followed by {after}, but it needs a value on its right "
        f"(like `x {before} 1`). Python stopped there because the expression is unfinished.",
        s.line, f"Write the missing value after `{before}`, or remove the `{before}`.")


_OPERATORS = {op for op in _BINARY if not op.isalpha() and op not in (",", ".")}


def _two_operators(s: Spot, before: str, here: str, at: int = 0) -> Diagnosis:
    """``a =< 3``, ``a / = b``, ``2 * * 5``, ``3 */ 4``: an operator followed by another one (not by nothing);
    the second of them is the token ``at`` places from where Python stopped."""
    explanation = (f"On line {s.line}, `{before}` is followed directly by `{here}`. Each operator needs a value on "
                   "both sides, so two operators can't stand next to each other.")
    first, second = s.tok(at - 1), s.tok(at)
    if first is not None and second is not None and first.start[0] == second.end[0] == s.line:
        for joined in (before + here, here + before):  # a space inside `**` or `/=`, or `=<` for `<=`
            fixed = s.text[: first.start[1]] + joined + s.text[second.end[1]:]
            if joined in _OPERATORS and compiles(fixed.strip()):
                return _diagnosis(
                    "incomplete-expression", f"{before} and {here} stand next to each other",
                    explanation + f" Together they make the operator `{joined}`.",
                    s.line, f"Write {propose(fixed.strip(), replaces_line=s.line)}.")
    return _diagnosis(
        "incomplete-expression", f"{before} and {here} stand next to each other", explanation,
        s.line, (f"Remove one of the two `{before}`" if before == here else f"Remove `{before}` or `{here}`")
        + ", or put the missing value between them.")


@rule(SyntaxError, kinds="invalid-number", order=79)
def number_with_two_points(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.i == 0:
        return None
    before, here = s.tok(-1), s.tok(0)
    if before is None or here is None or before.type != tokenize.NUMBER or here.type != tokenize.NUMBER \
            or not here.string.startswith(".") or before.end != here.start:
        return None
    number = before.string + here.string
    return _diagnosis(
        "invalid-number", "A number with two decimal points",
        f"{code(number)} has more than one `.`, but a number has at most one decimal point. A version number or "
        "a date like this one is text.",
        s.line, f"Write it as text in quotes, like {code(repr(number))}, or keep one decimal point.")


# ------------------------------------------------------------------------------------- brackets, last

@rule(SyntaxError, kinds="unclosed-bracket", order=90)
def unbalanced_scan(ctx: Context) -> Diagnosis | None:
    """Find an unclosed bracket ourselves when Python's message is only 'invalid syntax'."""
    if not (is_bare(ctx) or "never closed" in ctx.message or "unexpected EOF" in ctx.message):
        return None
    stack: list[tuple[str, int]] = []
    for tok in ctx.tokens:
        if tok.type == tokenize.OP and tok.string in PAIRS:
            stack.append((tok.string, tok.start[0]))
        elif tok.type == tokenize.OP and tok.string in (")", "]", "}"):
            if not stack or PAIRS[stack[-1][0]] != tok.string:
                return None
            stack.pop()
    if not stack:
        return None
    opening, line = stack[0]
    return Diagnosis(
        "unclosed-bracket", f"An opening {opening} is never closed on line {line}",
        f"Every {code(opening)} needs a matching {code(PAIRS[opening])}. The {code(opening)} on line {line} "
        "is still open, so Python read the next lines as part of the same statement.",
        line, f"Add the missing {code(PAIRS[opening])} where the expression on line {line} ends.")
