"""Syntax errors that Python names in its message: a colon, a bracket, a quote, a keyword, an argument.

The messages of Python 3.10 to 3.13 are matched (they differ: "non-default argument follows default
argument" became "parameter without a default follows parameter with a default" in 3.12, for example).
Where Python says only "invalid syntax", syntax_tokens.py reads the tokens instead.
"""

from __future__ import annotations

import keyword
import re

from .context import Context
from .model import Diagnosis
from .registry import compiles, rule
from .text import code, on, propose, quoted_text

BLOCK_KEYWORDS = ("if", "elif", "else", "for", "while", "def", "class", "try", "except", "finally", "with",
                  "async", "match", "case")
QUOTES = {"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u00ab": '"', "\u00bb": '"',
          "\u201e": '"', "\u2032": "'", "\u00b4": "'"}
LOOKALIKES = {**QUOTES, "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00d7": "*", "\u00f7": "/",
              "\u00a0": " ", "\u2026": "...", "\uff08": "(", "\uff09": ")", "\uff1a": ":", "\uff0c": ",",
              "\u200b": "", "\ufeff": "", "\u3000": " ", "\uff1d": "=", "\u2264": "<=", "\u2265": ">=",
              "\u2260": "!="}
PAIRS = {"(": ")", "[": "]", "{": "}"}


def parts(ctx: Context) -> tuple[str, int | None, str, int]:
    """(message, line, Python's copy of the failing line, 1-based offset or 0)."""
    err = ctx.error
    text = ctx.text.rstrip("\r\n")
    err_text = (err.text if isinstance(getattr(err, "text", None), str) else text).rstrip("\r\n")
    offset = err.offset if isinstance(getattr(err, "offset", None), int) else 0
    return ctx.message, ctx.line, err_text, offset


def is_bare(ctx: Context) -> bool:
    """Python said only "invalid syntax" (nothing more specific)."""
    return ctx.message.strip() in ("invalid syntax", "invalid syntax.")


# ------------------------------------------------------------------------------------- names and words

@rule(SyntaxError, kinds="keyword-as-name", order=10)
def keyword_as_name(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"cannot assign to (True|False|None|__debug__)", msg)
    word = m.group(1) if m else None
    if word is None and (is_bare(ctx) or msg.startswith("expected")):
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


@rule(SyntaxError, kinds="print-statement", order=20)
def print_statement(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"^(\s*)print\s+(?![=(.\[])(.+?)\s*$", err_text)
    if "Missing parentheses in call to 'print'" not in msg and not (m and is_bare(ctx)):
        return None
    explanation = ("In Python 3, `print` is a function, so what you want to show goes inside parentheses. "
                   '`print "hello"` is the old Python 2 style.')
    suggestion = "Put what you want to show inside the parentheses of `print(...)`, with quotes around text."
    if m:
        args = m.group(2).rstrip(";")
        words = re.fullmatch(r"[A-Za-z][\w']*(?:\s+[A-Za-z][\w']*)*\s*[.,!?:;]*", args)
        unknown = [w for w in re.findall(r"[A-Za-z_]\w*", args) if not ctx.lookup(w)[0]]
        if compiles(f"print({args})") and not (words and " " in args.strip() and unknown):
            suggestion = f"Write {propose('print(' + args + ')', replaces_line=line)}."
        elif words and unknown:
            suggestion = (f"To show the words themselves, put them in quotes: "
                          f"{propose('print(' + quoted_text(args) + ')', replaces_line=line)}.")
    return Diagnosis("print-statement", f"print needs parentheses{on(line)}", explanation, line, suggestion)


@rule(SyntaxError, kinds=("missing-colon", "missing-quotes", "missing-comma"), order=60)
def forgot_comma(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if "Perhaps you forgot a comma" not in msg:
        return None
    err = ctx.error
    end = getattr(err, "end_offset", None)
    same_line = getattr(err, "end_lineno", None) in (None, err.lineno)
    span = err_text[offset - 1: end - 1] if same_line and isinstance(end, int) and 1 <= offset < end else ""
    words = span.strip()
    head = err_text[: max(offset - 1, 0)]
    item = re.split(r"[{,]", head)[-1]  # the dictionary item Python stopped in, up to where it stopped
    if head.count("{") > head.count("}") and ":" not in item and ":" in err_text[head.rfind("{"):]:
        return Diagnosis(  # {"apple" 1.5, "pear": 2}: Python guesses a comma, but the other items have colons
            "missing-colon", f"A dictionary key needs a colon{on(line)}",
            "In a dictionary, each key is followed by a colon `:` and then its value, like `{'a': 1, 'b': 2}`. "
            f"{ctx.where(True)} a key and its value stand next to each other with no `:` between them.",
            line, "Put a `:` between the key and its value.")
    after = err_text[end - 1:].lstrip() if span else ""
    assigned = after.startswith((":=", "=")) and not after.startswith("==")  # `var start := ...`: names, not text
    if not assigned and re.fullmatch(r"[A-Za-z][\w']*(?:\s+[A-Za-z][\w']*)+\s*[.,!?:;]*", words):
        defined = [w for w in re.findall(r"[A-Za-z_]\w*", words) if ctx.lookup(w)[0] and not keyword.iskeyword(w)]
        if len(defined) < len(words.split()):
            return Diagnosis(
                "missing-quotes", f"Text needs quotes{on(line)}",
                f"Python reads words without quotes as names of variables, so {code(words)} doesn't make sense "
                "to it. Text that should be used as it is must be inside quotes.",
                line, f"Write {propose(quoted_text(words))}.")
    return Diagnosis(
        "missing-comma", f"A comma may be missing{on(line)}",
        f"Two values stand next to each other{on(line)} with nothing between them"
        f"{' in ' + code(words) if words else ''}. In a list, a call or a tuple, items are separated by commas.",
        line, "Put a `,` between the items (or an operator such as `+` if you meant to combine them).")


# ------------------------------------------------------------------------------------- strings

@rule(SyntaxError, kinds="unclosed-string", order=30)
def unclosed_string(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
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
    if not triple and quote == "'" and re.search(r"[A-Za-z]'[A-Za-z]", err_text):
        # 'don't': the apostrophe ends the text early
        first, last = err_text.find("'"), err_text.rfind("'")
        inner = err_text[first + 1: last]
        fixed = err_text[:first].lstrip() + '"' + inner + '"' + err_text[last + 1:]
        suggestion = (f"Use double quotes around text that has an apostrophe: {propose(fixed, replaces_line=line)}."
                      if '"' not in inner else "Put a `\\` before the apostrophe, like `'don\\'t'`.")
        return Diagnosis(
            "unclosed-string", f"An apostrophe ends the text early{on(line)}",
            f"The text{on(line)} starts with `'`, and the apostrophe inside it is the same character, so Python "
            "thinks the text ends there. What follows doesn't make sense to it, and the last `'` opens a new "
            "text that is never closed.",
            line, suggestion)
    if triple:
        explanation = (f"A text that starts with {code(quote)}{on(line)} is never closed, so Python read "
                       "everything after it as part of the text. It needs the same three quotes at its end.")
    else:
        explanation = (f"Text in Python starts and ends with the same quote mark. The text that starts with "
                       f"{code(quote)}{on(line)} has no closing {code(quote)} before the end of the line.")
    return Diagnosis("unclosed-string", f"A string is never closed{on(line)}", explanation,
                     line, f"Add the closing {code(quote)} where the text ends.")


@rule(SyntaxError, kinds="backslash-in-path", order=30)
def backslash_in_path(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if not re.match(r"\(unicode error\) 'unicodeescape' codec can't decode", msg):
        return None
    m = re.search(r"""(?<![rR\w])(['"])([^'"]*\\[^'"]*)\1""", err_text)
    suggestion = ("Put an `r` before the opening quote (a raw string keeps every `\\` as it is), or use `/` "
                  "between folders: Python understands `C:/Users/...` on Windows too.")
    if m:
        fixed = (err_text[: m.start()] + "r" + err_text[m.start():]).strip()
        suggestion = (f"Write the path as a raw string: {propose(fixed, replaces_line=line)}, or use `/` between "
                      "folders.")
    return Diagnosis(
        "backslash-in-path", f"A backslash in text starts an escape{on(line)}",
        f"Inside quotes, `\\` starts a special character: `\\n` is a new line and `\\U` must be followed by a "
        f"character code. The text{on(line)} looks like a Windows path, and one of its `\\` is read that way.",
        line, suggestion)


@rule(SyntaxError, kinds="fstring-error", order=30)
def fstring_error(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if not msg.startswith("f-string"):
        return None
    if "expecting '}'" in msg or "unmatched" in msg:
        detail = "Every `{` in an f-string must be closed by a `}` after the expression inside it."
        fix = "Add the missing `}`, or write `{{` to show a `{` itself."
    elif "empty expression" in msg or "valid expression required" in msg:
        detail = "Each `{}` in an f-string must have a name or an expression inside, like `{name}`."
        fix = "Put the name of the value inside the braces, or write `{{}}` to show the braces themselves."
    elif "single '}'" in msg:
        detail = "A `}` in an f-string closes an expression, and this one has no `{` before it."
        fix = "Write `}}` to show a `}` itself, or add the `{` it belongs to."
    else:
        detail = "The part inside `{...}` of an f-string must be a valid Python expression."
        fix = "Check the expressions inside the braces of this f-string."
    return Diagnosis(
        "fstring-error", f"A problem inside an f-string{on(line)}",
        f"An f-string (text that starts with `f\"`) puts the values of expressions inside `{{...}}` into the "
        f"text. {detail}",
        line, fix)


# ------------------------------------------------------------------------------------- brackets

@rule(SyntaxError, kinds=("unclosed-bracket", "unmatched-bracket"), order=40)
def brackets(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"'([(\[{])' was never closed", msg)
    if m:
        opening = m.group(1)
        return Diagnosis(
            "unclosed-bracket", f"An opening {opening} is never closed{on(line)}",
            f"Every {code(opening)} needs a matching {code(PAIRS[opening])}. The {code(opening)}"
            f"{on(line)} is still open when the statement should end, so Python read on into the "
            "next lines looking for it.",
            line, f"Add the missing {code(PAIRS[opening])} where the expression{on(line)} ends.")
    m = re.match(r"closing parenthesis '(.)' does not match opening parenthesis '(.)'(?: on line (\d+))?", msg)
    if m:
        closing, opening = m.group(1), m.group(2)
        return Diagnosis(
            "unmatched-bracket", f"A {closing} closes a {opening}{on(line)}",
            "Brackets must be closed in the reverse order they were opened, each with its own partner. "
            f"Here a {code(closing)} appears while a {code(opening)} is still open.",
            line, f"Close the {code(opening)} with {code(PAIRS.get(opening, '?'))}, "
                  f"or remove the extra {code(closing)}.")
    m = re.match(r"unmatched '([)\]}])'", msg)
    if m:
        closing = m.group(1)
        opening = {v: k for k, v in PAIRS.items()}[closing]
        return Diagnosis(
            "unmatched-bracket", f"An extra {closing} has no opening {opening}{on(line)}",
            f"Python found a closing {code(closing)}{on(line)} without an opening {code(opening)} "
            "before it. Brackets always come in pairs.",
            line, f"Remove the extra {code(closing)}, or add the {code(opening)} it should close.")
    return None


# ------------------------------------------------------------------------------------- = and :

_LONE_EQUALS = re.compile(r"(?<![=!<>:+\-*/%&|^@])=(?!=)")


@rule(SyntaxError, kinds="assign-in-condition", order=50)
def assign_in_condition(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"^(\s*)(if|elif|while)\b(.*)$", err_text)
    if m and re.search(r"(?<![=!<>])=\s*[!<>]", m.group(3)):
        return None  # `x =! 2`, `x =< 2`: a comparison written backwards (syntax_tokens.py)
    if not m or "Maybe you meant '=='" not in msg and not (is_bare(ctx) and _LONE_EQUALS.search(m.group(3))):
        return None
    fixed = m.group(2) + _LONE_EQUALS.sub("==", m.group(3), count=1)
    return Diagnosis(
        "assign-in-condition", f"Use == to compare{on(line)}",
        f"A single `=` stores a value in a variable; to check whether two values are equal, Python uses `==`. "
        f"The condition of the `{m.group(2)}`{on(line)} uses `=`, which is not allowed there.",
        line, f"Change it to {propose(fixed.strip(), replaces_line=line)}.")


@rule(SyntaxError, kinds=("missing-colon", "assign-to-expression"), order=50)
def assign_to_expression(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"cannot assign to (literal|expression|function call|comparison|conditional expression|"
                 r"subscript|attribute|f-string expression|lambda|set display|dict literal|dict display|"
                 r"list comprehension|generator expression|await expression|yield expression|named expression|"
                 r"[\w ]+?)(?: here)?(?:\.|$)", msg)
    if not m:
        return None
    what = m.group(1)
    head = err_text[: max(offset - 1, 0)]
    if head.count("{") > head.count("}"):  # {'a' = 1}: a dictionary written with = instead of :
        start = head.rfind("{")
        fixed = err_text[:start] + re.sub(r"\s*(?<![=!<>])=(?!=)\s*", ": ", err_text[start:])
        return Diagnosis(
            "missing-colon", f"A dictionary uses : between key and value{on(line)}",
            "In a dictionary, each key is followed by a colon `:` and then its value, like `{'a': 1}`. "
            f"The dictionary{on(line)} uses `=` instead.",
            line, f"Write {propose(fixed.strip(), replaces_line=line)}.")
    if not re.match(r"^\s*[^=]+?=(?!=)", err_text):
        return None
    pieces = [s.strip() for s in _LONE_EQUALS.split(err_text.strip(), maxsplit=1)]
    left, right = (pieces + [""])[:2]
    article = "an" if what[:1] in "aeiou" else "a"
    explanation = (f"A single `=` stores the value on its right in the name on its left, so the left side must be "
                   f"a name (like `total = 5`). {ctx.where(True)} the left side is {article} {what}, "
                   "which can't hold a value.")
    suggestion = "Put the name of the variable alone on the left of `=`; to compare two values, use `==`."
    if what == "literal" and re.fullmatch(r"[A-Za-z_]\w*", right):
        suggestion = f"Write the name first: {propose(f'{right} = {left}', replaces_line=line)}."
    elif what == "function call" and re.fullmatch(r"[A-Za-z_]\w*\(\)", left):
        suggestion = (f"A function call gives a value; it can't be given one. To store {code(right)}, pick a "
                      f"variable name: {propose('result = ' + right)}.")
    elif what == "expression":
        suggestion = ("Python doesn't solve equations: compute the value on the right and store it in a name, "
                      "like `x = 2 - 1`.")
    return Diagnosis("assign-to-expression", f"The left side of = must be a name{on(line)}", explanation,
                     line, suggestion)


@rule(SyntaxError, kinds="missing-colon", order=50)
def missing_colon(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if msg.startswith("':' expected after dictionary key"):
        return Diagnosis(
            "missing-colon", f"A dictionary key needs a colon{on(line)}",
            "In a dictionary, each key is followed by a colon `:` and then its value, like `{'a': 1, 'b': 2}`. "
            f"One of the keys{on(line)} has no `:` and value after it.",
            line, "Add `:` and a value after the key, or use a set `{1, 2}` if you meant only values.")
    if msg != "expected ':'":
        return None
    head = err_text[: offset - 1] if 1 < offset <= len(err_text) + 1 else err_text
    head = head.strip()
    first = (head.split() or [""])[0].rstrip(":(")
    if first not in BLOCK_KEYWORDS:
        return Diagnosis(
            "missing-colon", f"A colon is missing{on(line)}",
            f"Python expected a colon `:`{on(line)}, for example between a key and its value in a dictionary, "
            "or at the end of a line that starts a block.",
            line, f"Add `:` after {code(head, 80)}." if head else "Add the missing `:`.")
    where = f"at the end of line {line}" if line else "at the end of the line"
    rest = err_text[offset - 1:].strip() if 1 < offset <= len(err_text) else ""
    add = f"Add `:` after {code(head, 80)}"
    if compiles(head + ":"):
        add = f"Add `:` after {code(head, 80)}: {propose(head + ':')}"
    if rest.startswith(";") and not rest.lstrip(";").strip():  # `def f();`: a semicolon typed for the colon
        add = "Write `:` instead of `;`" + (f": {propose(head + ':')}" if compiles(head + ":") else "")
    elif rest and not rest.startswith("#") and compiles(rest):  # only a statement can move to the next line
        add += f", and put {code(rest, 60)} on the next line, indented"
    return Diagnosis(
        "missing-colon", f"A colon is missing {where}",
        f"A line that starts a block (`if`, `for`, `while`, `def`, `class`, `else`, ...) must end with a colon "
        f"`:`. {'Line ' + str(line) if line else 'The line'} starts with `{first}` but has no colon, so Python "
        "can't tell where the block begins.",
        line, add + ".")


@rule(SyntaxError, kinds="missing-else", order=50)
def missing_else(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if not msg.startswith("expected 'else' after 'if' expression"):
        return None
    return Diagnosis(
        "missing-else", f"An if inside an expression needs an else{on(line)}",
        f"{ctx.where(True)} an `if` stands inside an expression, like `a if condition else b`. That form picks "
        "one of two values, so it always needs the `else` part.",
        line, "Add `else` and the other value; or, to run a line only when a condition holds, write an `if` block: "
              "`if condition:` with the line indented below it.")


# ------------------------------------------------------------------------------------- characters and numbers

@rule(SyntaxError, kinds="invalid-character", order=30)
def invalid_character(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"invalid (?:non-printable )?character '?(.)'? \((U\+[0-9A-Fa-f]+)\)", msg) \
        or re.match(r"invalid non-printable character (U\+[0-9A-Fa-f]+)", msg)
    if not m:
        return None
    point = m.group(m.lastindex or 1)
    char = chr(int(point[2:], 16))
    if char in QUOTES:
        return Diagnosis(
            "invalid-character", f"Curly quotes{on(line)}",
            f"The quote mark {code(char)}{on(line)} is a typographic (curly) quote, usually copied from a "
            "document or web page. Python only understands straight quotes `\"` and `'`.",
            line, f"Replace {code(char)} with {code(QUOTES[char])}, and check the other quotes on the line.")
    replacement = LOOKALIKES.get(char)
    import unicodedata

    visible = char.isprintable() and not char.isspace()
    shown = f"The character {code(char)} ({point})" if visible else \
        f"An invisible character ({point}, {unicodedata.name(char, 'unnamed').lower()})"
    if replacement == "":
        fix = "Delete it: put the cursor just before the next character and press Backspace, then retype it."
    elif replacement:
        fix = f"Replace it with {code(replacement)}." if replacement.strip() else "Replace it with a normal space."
    else:
        fix = "Delete it and type that part again."
    return Diagnosis(
        "invalid-character", f"A character Python can't read{on(line)}",
        f"{shown}{on(line)} is not part of Python's syntax. It often "
        "comes from copying code out of a document or web page.",
        line, fix)


@rule(SyntaxError, kinds="stray-backslash", order=30)
def stray_backslash(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if not msg.startswith("unexpected character after line continuation character"):
        return None
    return Diagnosis(
        "stray-backslash", f"A backslash outside of text{on(line)}",
        f"Outside quotes, a `\\` at the very end of a line means \"this line goes on\". {ctx.where(True)} a `\\` "
        "stands in the middle of the line, where it means nothing to Python.",
        line, "To divide, use `/`; inside text, keep the `\\` within the quotes; otherwise remove it.")


_DIGIT_NAME = re.compile(r"(?<![\w.])(\d+)([A-Za-z_]\w*)")


@rule(SyntaxError, kinds=("starts-with-digit", "invalid-number"), order=30)
def invalid_number(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"invalid (decimal|hexadecimal|octal|binary|imaginary) literal", msg) \
        or re.match(r"invalid digit '(\d)' in (\w+) literal", msg)
    if not m:
        return None
    start = max(offset - 1, 0)
    around = err_text[max(0, start - 12): start + 12]
    name = _DIGIT_NAME.search(err_text[max(0, start - 12):])
    if m.group(1) == "decimal" and name and name.group(2)[0] not in "eEjJ_" \
            and not (name.group(1) == "0" and name.group(2)[0] in "xXoObB"):
        word = name.group(0)
        is_target = re.match(rf"\s*{re.escape(word)}\s*=(?!=)", err_text) is not None
        ordinal = {"1st": "first", "2nd": "second", "3rd": "third", "4th": "fourth", "5th": "fifth"}.get(
            (name.group(1) + name.group(2)[:2]).lower())
        better = ordinal + name.group(2)[2:] if ordinal else name.group(2) + name.group(1)
        explanation = (f"{code(word)} starts with a digit. Names of variables and functions must start with a "
                       "letter or `_`; digits may come after that.")
        if is_target:
            suggestion = f"Rename it, for example {code(better)}, everywhere it is used."
        else:
            suggestion = (f"If {code(word)} is a name, rename it (for example {code(better)}); if you meant to "
                          f"multiply, write {code(name.group(1) + ' * ' + name.group(2))}.")
        return Diagnosis("starts-with-digit", f"A name can't start with a digit{on(line)}", explanation,
                         line, suggestion)
    detail = ""
    if re.search(r"\d\.\d+\.\d", around):
        detail = " A number has at most one decimal point; to write a version or a date, use text in quotes."
    elif re.search(r"\d_(?!\d)", around):
        detail = " An `_` may stand only between digits, as in `1_000`."
    return Diagnosis(
        "invalid-number", f"This number is not written the way Python reads numbers{on(line)}",
        f"{ctx.where(True)} something starts like a number but goes on with characters a number can't have "
        f"({msg}).{detail} Python reads anything that starts with a digit as a number.",
        line, "Write the number with digits only (and one `.` for decimals), or put it in quotes if it is text.")


@rule(SyntaxError, kinds="leading-zero", order=30)
def leading_zero(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if not msg.startswith("leading zeros in decimal integer literals are not permitted"):
        return None
    start = max(offset - 1, 0)
    m = re.match(r"0+(\d+)", err_text[start:]) or re.search(r"(?<![\w.])0+(\d+)", err_text)
    if not m:
        return None
    number, digits = m.group(0), m.group(1)
    fixed = re.sub(r"(?<![\w.])0+(\d+)(?![\w.])", r"\1", err_text)
    suggestion = (f"Write {code(digits)} without the leading zero"
                  + (f": {propose(fixed.strip(), replaces_line=line)}" if fixed else "")
                  + f". If the zeros matter (a postcode, a phone number), it is text: write {code(repr(number))}.")
    return Diagnosis(
        "leading-zero", f"A number can't start with 0{on(line)}",
        f"{code(number)}{on(line)} starts with a zero. Python doesn't allow leading zeros in whole numbers, "
        "because in older Pythons they meant a number in base 8.",
        line, suggestion)


# ------------------------------------------------------------------------------------- where a statement may be

@rule(SyntaxError, kinds=("outside-function", "outside-loop"), order=30)
def outside_block(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"'(return|yield|await)' outside (?:async )?function", msg)
    if m:
        word = m.group(1)
        return Diagnosis(
            "outside-function", f"'{word}' outside a function{on(line)}",
            f"`{word}` can only be used inside a function (a block that starts with `def`). {ctx.where(True)} "
            "it is not inside one: either there is no `def` above it, or the line is not indented under it.",
            line, f"Indent the line so that it is inside the function, or, outside a function, use `print(...)` "
                  f"to show a value instead of `{word}`.")
    m = re.match(r"'(break|continue)' (?:outside loop|not properly in loop)", msg)
    if m:
        word = m.group(1)
        return Diagnosis(
            "outside-loop", f"'{word}' outside a loop{on(line)}",
            f"`{word}` only works inside a `for` or `while` loop. {ctx.where(True)} it is not inside one "
            "(check that it is indented under the loop).",
            line, f"Indent `{word}` so that it is inside the loop, or remove it.")
    return None


@rule(SyntaxError, kinds="try-without-except", order=30)
def try_without_except(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if not msg.startswith("expected 'except' or 'finally' block"):
        return None
    return Diagnosis(
        "try-without-except", f"A try block needs an except{on(line)}",
        "A `try:` block must be followed, at the same indentation, by an `except` block (what to do when an "
        f"error happens) or a `finally` block. {ctx.where(True)} the code goes on without one.",
        line, "Add `except Exception:` (or the error you expect, like `except ValueError:`) lined up with "
              "`try:`, with the lines to run on an error indented below it.")


# ------------------------------------------------------------------------------------- arguments and parameters

@rule(SyntaxError, kinds="positional-after-keyword", order=30)
def positional_after_keyword(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if not msg.startswith("positional argument follows keyword argument"):
        return None
    return Diagnosis(
        "positional-after-keyword", f"A plain argument comes after a named one{on(line)}",
        f"In a call, values given by position (`f(1, 2)`) must come before values given by name "
        f"(`f(1, b=2)`). {ctx.where(True)} a value without a name follows one with a name.",
        line, "Move the values without names before the named ones, or give this one its name too.")


@rule(SyntaxError, kinds="duplicate-argument", order=30)
def duplicate_argument(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"keyword argument repeated(?:: (\w+))?", msg)
    if m:
        name = m.group(1)
        shown = f"`{name}`" if name else "one argument"
        return Diagnosis(
            "duplicate-argument", f"An argument is given twice{on(line)}",
            f"{ctx.where(True)} the call gives {shown} a value twice by name. Each parameter takes one value.",
            line, f"Keep only one `{name}=...` in the call." if name else "Keep only one of them.")
    m = re.match(r"duplicate argument '(\w+)' in function definition", msg)
    if m:
        name = m.group(1)
        return Diagnosis(
            "duplicate-argument", f"Two parameters are named {name}{on(line)}",
            f"The parameters of a function need different names, and `{name}` appears twice in the `def` line"
            f"{on(line)}. Python couldn't tell which value `{name}` means.",
            line, f"Rename one of the `{name}` parameters.")
    return None


@rule(SyntaxError, kinds="parameter-order", order=30)
def parameter_order(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    if not (msg.startswith("non-default argument follows default argument")
            or msg.startswith("parameter without a default follows parameter with a default")):
        return None
    return Diagnosis(
        "parameter-order", f"A parameter without a default comes after one with a default{on(line)}",
        f"In a `def` line, parameters with a default value (like `b=1`) must come after all parameters without "
        f"one. {ctx.where(True)} a plain parameter follows one with a default.",
        line, "Move the parameters without defaults to the front, or give this one a default too.")


@rule(SyntaxError, kinds="missing-parentheses", order=30)
def def_without_parentheses(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"^\s*def\s+(\w+)\s*:", err_text)
    if not m or not (msg.startswith("expected '('") or is_bare(ctx)):
        return None
    return Diagnosis(
        "missing-parentheses", f"A def line needs parentheses{on(line)}",
        f"A function definition always has parentheses after its name, even when the function takes no "
        f"values. {ctx.where(True)} `def {m.group(1)}` has none.",
        line, f"Write {propose('def ' + m.group(1) + '():', replaces_line=line)}.")


@rule(SyntaxError, kinds="incomplete-expression", order=30)
def expected_value(ctx: Context) -> Diagnosis | None:
    msg, line, err_text, offset = parts(ctx)
    m = re.match(r"expected (default value|argument value) expression", msg)
    if not m:
        return None
    return Diagnosis(
        "incomplete-expression", f"An = has no value after it{on(line)}",
        f"{ctx.where(True)} a name is followed by `=` and then nothing. After `=` in a "
        f"{'`def` line' if m.group(1) == 'default value' else 'call'} comes the value, as in `f(x=1)`.",
        line, "Write the value after the `=`, or remove the `=`.")
