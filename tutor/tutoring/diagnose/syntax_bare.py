"""More bare "invalid syntax" errors, read from the tokens where Python stopped (see syntax_tokens.py).

These run after syntax_tokens.py's rules (a higher ``order``), so they only see what those left: a ``def``
or ``class`` line without a name or with something that is not a parameter, ``del`` of something that
can't be removed, ``:=`` as a statement, a pasted ``>>>`` prompt, ``for x range(4):``, ``elseif``, a block
keyword with nothing before its colon, a space inside a name, ``;`` where ``:`` or ``,`` belongs, ``and``
in an import, ``as`` after a parenthesized import, ``a = (b = 2)``, ``len.(...)``, ``obj.pass``. Each rule
checks the exact token pattern and stays silent otherwise.
"""

from __future__ import annotations

import keyword
import re
import tokenize

from .context import Context
from .model import Diagnosis
from .registry import rule
from .syntax import BLOCK_KEYWORDS, is_bare
from .syntax_named import PARAMETERS, bad_parameters, cannot_delete, import_from, parenthesized_parameters
from .syntax_tokens import Spot, spot
from .text import on, propose

_HEADERS = ("if", "elif", "while", "for", "with", "def", "class", "except", "match", "case")


def _names(s: Spot) -> list[str]:
    return [t.string for t in s.toks]


def _def_parens(s: Spot) -> tuple[int, int] | None:
    """For a ``def name(...)`` line, the token indices of its ``(`` and matching ``)`` (or the end)."""
    names = _names(s)
    k = 1 if names[:1] == ["async"] else 0
    if names[k : k + 1] != ["def"] or len(names) < k + 3 or names[k + 2] != "(":
        return None
    depth = 0
    for j in range(k + 2, len(names)):
        if names[j] in "([{" and s.toks[j].type == tokenize.OP:
            depth += 1
        elif names[j] in ")]}" and s.toks[j].type == tokenize.OP:
            depth -= 1
            if depth == 0:
                return k + 2, j
    return k + 2, len(names)


# ------------------------------------------------------------------------------------- def and class lines

@rule(SyntaxError, kinds="missing-name", order=80)
def definition_without_name(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None:
        return None
    names = _names(s)
    k = 1 if names[:1] == ["async"] else 0
    word = names[k] if k < len(names) else ""
    if word not in ("def", "class") or s.i != k + 1:
        return None
    nxt = s.tok(0)
    if nxt is not None and nxt.type == tokenize.NAME and not keyword.iskeyword(nxt.string):
        return None
    thing = "function" if word == "def" else "class"
    example = "def greet(name):" if word == "def" else "class Dog:"
    string = nxt is not None and nxt.type == tokenize.STRING
    detail = " The name is written in quotes: a name is written without them." if string else ""
    return Diagnosis(
        "missing-name", f"The {word} line has no {thing} name{on(s.line)}",
        f"After `{word}` comes the name of the new {thing}, a single word of letters, digits and `_`, as in "
        f"`{example}`. {ctx.where(True)} something else follows `{word}`.{detail}", s.line,
        f"Write a name after `{word}`, for example {propose(example)}.")


@rule(SyntaxError, kinds="bad-parameters", order=80)
def not_a_parameter(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None:
        return None
    parens = _def_parens(s)
    if parens is None or not parens[0] < s.i <= parens[1]:
        return None
    names = _names(s)
    inside = names[parens[0] + 1 : s.i + 1]
    here = s.s(0)
    tok = s.tok(0)
    slot = s.s(-1) in (",", "(", "*", "**")  # where a parameter's name belongs
    # the stars that mark a parameter (after `(` or `,`), not a multiplication inside a default value
    stars = {names[j] for j in range(parens[0] + 1, s.i) if names[j] in ("*", "**", "/") and names[j - 1] in "(,"}
    if here not in (")", ":") and "**" in stars and s.s(-1) == ",":  # Python 3.10 says only "invalid syntax"
        return bad_parameters(ctx, "something comes after `**...`, which collects every extra named value "
                                   "and so must be the last parameter.",
                              "Move the `**...` parameter to the end of the list.")
    if here == "/" and s.s(-1) == "," and stars & {"*", "/"}:
        twice = "/" in stars
        return bad_parameters(ctx, "`/` appears more than once; a `def` line may have only one." if twice else
                              "a `/` comes after `*`. A `/` marks the end of the parameters that can only be given "
                              "by position, so it must come before any `*`.",
                              "Keep only one `/` in the parameter list." if twice else
                              "Move the `/` before the `*`, or remove it.")
    after_name = s.tok(-1) is not None and s.tok(-1).type == tokenize.NAME and s.s(-2) in (",", "(")
    if not slot and not after_name and s.s(-1) != ".":
        return None
    if slot and tok is not None and tok.type in (tokenize.NUMBER, tokenize.STRING):
        what = f"a value (`{here}`) stands where a parameter name belongs."
    elif slot and here in ("[", "{", "("):
        what = "a bracket stands where a parameter name belongs: parameters can't be lists, sets or dicts."
    elif here == "." and after_name or s.s(-1) == ".":
        what = "a parameter name contains a dot; a parameter is a single plain name."
    elif here == "*" and inside.count("*") > 1 or here == "**":
        what = "there is more than one `*` (or a `*` after `**`)."
    elif slot and keyword.iskeyword(here):
        what = f"the keyword `{here}` stands where a parameter name belongs; keywords can't be names."
    elif tok is not None and tok.type == tokenize.OP and here not in (",", ")", "=", ":", "*", "**", "/"):
        what = f"an operator `{here}` stands in the parameter list; parameters are names separated by commas."
    else:
        return None
    return Diagnosis(
        "bad-parameters", f"Something in this def line is not a parameter{on(s.line)}",
        f"{ctx.where(True)} {what} Each parameter is a plain name, optionally with a default (`count=0`)."
        + (f" {PARAMETERS}" if here.startswith("*") else ""), s.line,
        "Write plain names in the parentheses; values go in the call, like `greet(\"Ada\")`, not in the `def` "
        "line.")


@rule(SyntaxError, kinds="bad-parameters", order=80)
def lambda_parenthesized(ctx: Context) -> Diagnosis | None:
    # Python 3.11+ say "Lambda expression parameters cannot be parenthesized", 3.10 only "invalid syntax"
    s = spot(ctx)
    if s is None or s.s(0) != "(" or s.s(-1) not in ("lambda", ","):
        return None
    names = _names(s)[: s.i]
    if "lambda" not in names:
        return None
    start = len(names) - 1 - names[::-1].index("lambda")
    if any(n in (":", "(", ")", "[", "]", "{", "}") for n in names[start + 1 :]):
        return None  # the spot is not among this lambda's parameters
    return parenthesized_parameters(ctx, "`lambda`")


# ------------------------------------------------------------------------------------- statements

@rule(SyntaxError, kinds="cannot-delete", order=80)
def delete_statement(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.first != "del" or s.i < 2 or s.tok(0) is None or s.tok(0).type != tokenize.OP:
        return None  # `del x y` is more likely a missing comma
    if s.s(0) in (",", "(", "[", ".", ")", "]"):
        return None
    return cannot_delete(ctx, None)


@rule(SyntaxError, kinds="walrus-misuse", order=80)
def walrus_statement(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.s(0) != ":=" or s.i != 1 or s.toks[0].type != tokenize.NAME:
        return None
    fixed = re.sub(r":=", "=", s.text.strip(), count=1)
    return Diagnosis(
        "walrus-misuse", f"Use = to give a variable a value{on(s.line)}",
        f"`:=` gives a value to a name *inside* an expression, like `if (n := len(xs)) > 3:`. "
        f"{ctx.where(True)} it starts a statement of its own, where Python uses a plain `=`.", s.line,
        f"Write {propose(fixed, replaces_line=s.line)}.")


@rule(SyntaxError, kinds="pasted-prompt", order=60)
def pasted_prompt(ctx: Context) -> Diagnosis | None:
    if not is_bare(ctx) or ctx.line is None:
        return None
    m = re.match(r"(\s*)(>>>|\.\.\.)( |$)(.*)$", ctx.text.rstrip("\r\n"))
    if not m or (m.group(2) == "..." and not any(re.match(r"\s*>>>", ln) for ln in ctx.lines)):
        return None
    rest = m.group(4).strip()
    fix = (f"Delete the prompt at the start of each line: {propose(rest, replaces_line=ctx.line)}."
           if rest else "Delete the prompts at the start of the lines.")
    return Diagnosis(
        "pasted-prompt", f"A >>> prompt was copied with the code{on(ctx.line)}",
        f"`>>>` and `...` are what the interactive Python shell shows before each line you type; they are not "
        f"part of the code. {ctx.where(True)} the line starts with `{m.group(2)}`, so it was probably copied "
        "from a shell session or a tutorial.", ctx.line,
        fix + " Lines without a prompt in the copied text are output, not code: leave them out.")


@rule(SyntaxError, kinds="missing-in", order=80)
def for_without_in(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.first != "for" or s.i < 2 or "in" in _names(s):  # `for x y in z`: a comma is missing
        return None
    tok = s.tok(0)
    if s.s(-1) in (",", "(", "[") or tok is None or tok.type != tokenize.NAME or keyword.iskeyword(tok.string):
        return None
    fixed = s.text[: s.col(0)].rstrip() + " in " + s.text[s.col(0):].lstrip()
    return Diagnosis(
        "missing-in", f"This for loop has no in{on(s.line)}",
        f"A `for` loop reads `for variable in values:`, with the word `in` between the loop variable and what "
        f"it goes through. {ctx.where(True)} `{tok.string}` follows the variable, without `in` before it.", s.line,
        f"Write {propose(fixed.strip(), replaces_line=s.line)}.")


@rule(SyntaxError, kinds="else-if", order=80)
def elseif(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.first not in ("elseif", "elsif", "elif_") or s.i != 1:
        return None
    return Diagnosis(
        "else-if", f"Python writes elif, not {s.first}{on(s.line)}",
        f"To test another condition after an `if`, Python uses the word `elif`. `{s.first}` is another "
        "language's spelling, so Python reads it as a name and can't make sense of the line.", s.line,
        f"Write `elif` in place of `{s.first}`.")


@rule(SyntaxError, kinds="missing-condition", order=80)
def header_without_condition(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.first not in ("if", "elif", "while", "for", "with") or s.i != 1 or s.s(0) != ":":
        return None
    what = {"for": "a variable, `in` and what to go through (`for x in xs:`)",
            "with": "what to open (`with open(\"notes.txt\") as f:`)"}.get(s.first, "a condition (`if x > 0:`)")
    fix = {"for": "Write the loop variable, `in` and the values before the `:`.",
           "with": "Write what to open before the `:`."}.get(s.first, "Write the condition to test before the `:`.")
    if s.first == "while":
        what = "a condition (`while count < 10:`)"
    return Diagnosis(
        "missing-condition", f"{s.first} has nothing before its colon{on(s.line)}",
        f"After `{s.first}` comes {what}, and then the colon. {ctx.where(True)} the colon follows `{s.first}` "
        "straight away.", s.line, fix)


@rule(SyntaxError, kinds="space-in-name", order=80)
def space_in_name(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.i < 1 or len(s.toks) < s.i + 2:
        return None
    names = _names(s)
    # name name ... = value: the names before the first `=` are all plain words
    if "=" not in names or names.index("=") != s.i + 1 or s.i != 1:
        return None
    words = names[: s.i + 1]
    if not all(t.type == tokenize.NAME and not keyword.iskeyword(t.string) for t in s.toks[: s.i + 1]):
        return None
    joined = "_".join(words)
    return Diagnosis(
        "space-in-name", f"A variable name can't contain a space{on(s.line)}",
        f"{ctx.where(True)} the name before `=` is {' '.join(words)!r}, with a space in it. A name is one word; "
        "Python reads two words in a row as two names and doesn't know what to do with them.", s.line,
        f"Join the words with `_`: `{joined}`, and use that name everywhere.")


@rule(SyntaxError, kinds="semicolon", order=80)
def semicolon(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.s(0) != ";":
        return None
    names = _names(s)
    if s.first in _HEADERS and ":" not in names[: s.i] and all(n in (";",) for n in names[s.i:]):
        return Diagnosis(
            "semicolon", f"A ; where the colon of {s.first} belongs{on(s.line)}",
            f"A line starting with `{s.first}` ends with a colon `:`. {ctx.where(True)} it ends with a semicolon "
            "`;` instead.", s.line, "Replace the `;` with `:`.")
    if s.s(-1) == ":" and s.i == len(names) - 1 and s.first in _HEADERS:
        return Diagnosis(
            "semicolon", f"A ; after the colon{on(s.line)}",
            f"{ctx.where(True)} a `;` follows the colon that ends the line. After the colon comes the block "
            "(the indented lines below), not a `;`.", s.line, "Remove the `;`.")
    depth = 0
    for t in s.toks[: s.i]:
        if t.type == tokenize.OP and t.string in "([{":
            depth += 1
        elif t.type == tokenize.OP and t.string in ")]}":
            depth -= 1
    if depth <= 0:
        return None
    return Diagnosis(
        "semicolon", f"Items are separated by commas, not ;{on(s.line)}",
        f"{ctx.where(True)} a `;` stands inside brackets. In Python, items of a list, tuple or call are separated "
        "by commas; a `;` only separates two statements on one line.", s.line,
        "Replace each `;` inside the brackets with `,`.")


@rule(SyntaxError, kinds="import-syntax", order=80)
def import_words(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.first not in ("import", "from") or "import" not in _names(s):
        return None
    if s.first == "import" and s.s(0) == "from" and s.i >= 2:
        return import_from(ctx, s.text, s.line)
    follows = s.tok(1)
    if s.s(0) == "and" and follows is not None and follows.type == tokenize.NAME:
        fixed = re.sub(r",?\s+and\s+", ", ", s.text.strip())
        return Diagnosis(
            "import-syntax", f"Imported names are separated by commas, not and{on(s.line)}",
            f"{ctx.where(True)} `and` joins two names in an import. In Python, `and` combines conditions; the "
            "names of an import are separated by commas.", s.line,
            f"Write {propose(fixed, replaces_line=s.line)}.")
    if s.s(0) == "as" and s.s(-1) == ")":
        return Diagnosis(
            "import-syntax", f"as renames one name, not a group{on(s.line)}",
            f"{ctx.where(True)} `as` follows the closing parenthesis of a group of imported names. `as` gives a "
            "new name to one imported thing, so it goes right after that name, inside the parentheses: "
            "`from math import (sin as s, cos as c)`.", s.line,
            "Move each `as ...` after the name it renames, or import the module itself: `import math as m`.")
    return None


def spot_after_hint(ctx: Context) -> Spot | None:
    """Like spot(), also where Python adds only "Maybe you meant '==' or ':=' instead of '='?"."""
    if not ctx.message.startswith("invalid syntax. Maybe you meant '==' or ':='"):
        return spot(ctx)
    err = ctx.error
    if ctx.line is None or err.lineno != ctx.line or not isinstance(err.offset, int) or err.offset < 1:
        return None
    toks = ctx.line_tokens(ctx.line)
    pos = (ctx.line, err.offset - 1)
    i = next((j for j, t in enumerate(toks) if t.start >= pos or t.start < pos < t.end), len(toks))
    return Spot(toks, i, ctx.line, ctx.text.rstrip("\r\n")) if toks else None


@rule(SyntaxError, kinds="assign-in-parentheses", order=80)
def assign_in_parentheses(ctx: Context) -> Diagnosis | None:
    s = spot_after_hint(ctx)
    if s is None:
        return None
    k = 0 if s.s(0) == "=" else 1  # the hinted message points at the name before `=`, the bare one at `=`
    name = s.tok(k - 1)
    if s.s(k) != "=" or s.s(k - 2) != "(" or name is None or name.type != tokenize.NAME:
        return None
    before = s.tok(k - 3)
    if before is not None and (before.type == tokenize.NAME and not keyword.iskeyword(before.string)
                               or before.string in (")", "]")):
        return None  # f(x = 1) is a call's named argument, not this
    return Diagnosis(
        "assign-in-parentheses", f"= inside parentheses{on(s.line)}",
        f"{ctx.where(True)} `{name.string} =` stands inside parentheses. A plain `=` is a statement of its own; it "
        f"can't be part of a bigger expression. To compare, write `==`; to give two names one value, write "
        "`a = b = 2`.", s.line, "Use `==` to compare, or move the assignment to a line of its own.")


@rule(SyntaxError, kinds=("dot-syntax", "keyword-as-name"), order=80)
def dot_followed_by_nothing(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.s(-1) != "." or not s.adjacent(-2, -1):
        return None
    here = s.s(0)
    if here == "(" and s.tok(-2) is not None and s.tok(-2).type == tokenize.NAME:
        fixed = s.text[: s.col(-1)] + s.text[s.col(0):]
        return Diagnosis(
            "dot-syntax", f"A dot before the parentheses of a call{on(s.line)}",
            f"{ctx.where(True)} `{s.s(-2)}.(` has a dot right before the parentheses. A dot is followed by the "
            f"name of an attribute or method (`text.upper()`); to call `{s.s(-2)}` itself, write the parentheses "
            "straight after the name.", s.line, f"Write {propose(fixed.strip(), replaces_line=s.line)}.")
    if keyword.iskeyword(here) and here not in ("True", "False", "None"):
        return Diagnosis(
            "keyword-as-name", f"'{here}' is a Python keyword and can't be an attribute name{on(s.line)}",
            f"{ctx.where(True)} `{here}` follows a dot, as the name of an attribute. `{here}` is one of Python's "
            "keywords, which can't be used as names, not even after a dot.", s.line,
            f"Choose another name, such as `{here}_`.")
    return None


@rule(SyntaxError, kinds="comprehension-syntax", order=80)
def comprehension_else(ctx: Context) -> Diagnosis | None:
    s = spot(ctx)
    if s is None or s.s(0) != "else":
        return None
    names = _names(s)[: s.i]
    if "for" not in names or "if" not in names[names.index("for"):] or names[0] in BLOCK_KEYWORDS:
        return None
    return Diagnosis(
        "comprehension-syntax", f"An if at the end of a comprehension can't have else{on(s.line)}",
        f"{ctx.where(True)} a comprehension ends with `if ... else ...`. An `if` after the `for` only filters "
        "(it keeps some items), so it has no `else`. To choose between two values for every item, put the "
        "choice before `for`: `[x if x > 0 else 0 for x in xs]`.", s.line,
        "Move `... if ... else ...` before the `for`, or drop the `else` part to filter.")


@rule(SyntaxError, kinds="missing-parentheses", order=80)
def def_name_not_followed_by_parentheses(ctx: Context) -> Diagnosis | None:
    # "expected '('" (3.11+ for most), or a bare "invalid syntax" at the token after the name (3.10)
    if not (ctx.message.startswith("expected '('") or is_bare(ctx)) or ctx.line is None:
        return None
    toks = ctx.line_tokens(ctx.line)
    names = [t.string for t in toks]
    k = 1 if names[:1] == ["async"] else 0
    if names[k : k + 1] != ["def"] or len(names) < k + 3 or toks[k + 1].type != tokenize.NAME:
        return None
    if names[k + 2] == "(" or keyword.iskeyword(names[k + 1]):
        return None
    err = ctx.error
    if is_bare(ctx) and not (isinstance(err.offset, int) and err.offset - 1 == toks[k + 2].start[1]):
        return None  # Python stopped elsewhere on the line
    name = names[k + 1]
    return Diagnosis(
        "missing-parentheses", f"The name of a function is followed by parentheses{on(ctx.line)}",
        f"A `def` line is written `def name(parameters):` - the name is one word (letters, digits and `_`, no "
        f"dots or spaces), followed straight away by parentheses, even when the function takes no values. "
        f"{ctx.where(True)} `{names[k + 2]}` comes after `{name}` instead of `(`.", ctx.line,
        f"Put the parameters in parentheses right after the name, like `def {name}(width, height):`, or "
        f"`def {name}():` for none.")
