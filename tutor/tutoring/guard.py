"""The guard on model replies: a reply that carries the exercise's solution, in any form, is withheld.

Code is found the way the student's screen will show it, by parsing the reply as Markdown
(markdown-it-py, CommonMark): fences of ``` and ~~~, indented code blocks, inline code, and plain
paragraphs that parse as Python definitions. Each piece is compared with the reference solution

- by normalised AST: names bound in the code renamed canonically (v0, v1, ... in order of first
  use; builtins kept), docstrings and annotations dropped, ``f = lambda x: e`` read as
  ``def f(x): return e``; a piece equal to the solution's function, or to the body or returned
  expression of it, is the solution;
- by behaviour: a piece that defines a function or lambda (under any name), or that uses the
  solution's parameters, is run as the exercise's function against the problem's tests in the
  sandbox. The runs are bounded per reply (MAX_RUNS); a piece left unchecked when the budget is
  spent is withheld too, since the guard fails closed.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import re
import textwrap
from dataclasses import dataclass

from markdown_it import MarkdownIt

from ..grading import Problem, check_solution

MAX_RUNS = 8  # sandbox runs per reply, at most
BLOCK_NOTE = "*(code that solves the exercise was removed: try writing it yourself)*"
INLINE_NOTE = "*(code removed)*"
_BUILTINS = frozenset(dir(builtins))
_MARKDOWN = MarkdownIt("commonmark")


@dataclass(frozen=True)
class CodePiece:
    kind: str  # "fence", "indented", "inline" or "plain"
    code: str
    lines: tuple[int, int] | None  # the reply's lines it takes (blocks), for removing it
    markup: str = ""


def code_pieces(text: str) -> list[CodePiece]:
    """Every piece of code in ``text`` as Markdown shows it."""
    pieces = []
    for token in _MARKDOWN.parse(text):
        if token.type in ("fence", "code_block") and token.map:
            kind = "fence" if token.type == "fence" else "indented"
            pieces.append(CodePiece(kind, token.content, (token.map[0], token.map[1]), token.markup))
        elif token.type == "inline" and token.children:
            plain = []
            for child in token.children:
                if child.type == "code_inline":
                    pieces.append(CodePiece("inline", child.content, None, child.markup))
                elif child.type == "text":
                    plain.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    plain.append("\n")
            words = "".join(plain)
            if token.map and re.search(r"\b(def|lambda)\b", words) and _parse(words) is not None:
                pieces.append(CodePiece("plain", words, (token.map[0], token.map[1])))
    return pieces


# ------------------------------------------------------------------ normalised AST

def _parse(code: str) -> ast.Module | None:
    for attempt in (code, textwrap.dedent(code)):
        try:
            return ast.parse(attempt)
        except (SyntaxError, ValueError):
            continue
    return None


class _Lambdas(ast.NodeTransformer):
    """``f = lambda x: e`` becomes ``def f(x): return e``: the same function, written the other way."""

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        self.generic_visit(node)
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Lambda):
            return _def(node.targets[0].id, ast.unparse(node.value.args), [ast.Return(node.value.body)])
        return node


class _Canonical(ast.NodeTransformer):
    """Bound names (and any name not a builtin) renamed v0, v1, ... in order of first use."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        if name in _BUILTINS:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._name(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg, node.annotation = self._name(node.arg), None
        return node

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.name, node.returns = self._name(node.name), None
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        self.generic_visit(node)
        return node

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_alias(self, node: ast.alias) -> ast.AST:
        node.asname = self._name(node.asname or node.name.split(".")[0])
        return node


def _def(name: str, params: str, body: list[ast.stmt]) -> ast.stmt:
    """A ``def`` built from source text, so its node has every field this Python's AST expects."""
    node = ast.parse(f"def {name}({params}):\n    pass\n").body[0]
    node.body = body  # type: ignore[attr-defined]
    return ast.fix_missing_locations(node)


def _canonical(node: ast.AST) -> str:
    node = _Canonical().visit(_Lambdas().visit(ast.parse(ast.unparse(node))))  # a copy: the caller's tree stays
    return ast.dump(node, annotate_fields=False, include_attributes=False)


@dataclass(frozen=True)
class _Solution:
    functions: frozenset[str]  # canonical forms of each function in the solution
    bodies: frozenset[str]  # ... of the exercise function's body, and of its returned expression
    params: tuple[str, ...]  # the exercise function's parameters


def _solution_shapes(problem: Problem) -> _Solution | None:
    tree = _parse(problem.solution)
    if tree is None:
        return None
    tree = _Lambdas().visit(tree)
    functions, bodies, params = set(), set(), ()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.add(_canonical(ast.Module([node], [])))
            if node.name == problem.function:
                params = tuple(a.arg for a in node.args.args)
                body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
                bodies.add(_canonical(ast.Module(body, [])))
                if len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is not None:
                    bodies.add(_canonical(ast.Module([ast.Expr(body[0].value)], [])))
    return _Solution(frozenset(functions), frozenset(bodies), params)


def same_as_solution(code: str, problem: Problem) -> bool:
    """Whether ``code`` is the solution up to names, layout, comments, docstrings and lambda-vs-def."""
    shapes = _solution_shapes(problem)
    tree = _parse(code)
    if shapes is None or tree is None:
        return _text_ratio(code, problem.solution) > 0.8
    tree = _Lambdas().visit(tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _canonical(ast.Module([node], [])) \
                in shapes.functions:
            return True
    return _canonical(tree) in shapes.bodies or _canonical(tree) in shapes.functions


def _text_ratio(a: str, b: str) -> float:
    def normal(code: str) -> str:
        return "\n".join(s.strip() for s in code.splitlines() if s.strip() and not s.strip().startswith("#"))

    return difflib.SequenceMatcher(None, normal(a), normal(b)).ratio()


# ------------------------------------------------------------------ behaviour

def _runnable(code: str, problem: Problem, params: tuple[str, ...]) -> list[str]:
    """Programs that run ``code`` as the exercise's function (one sandbox run each), or [] if it is no
    candidate: it defines no callable and does not use the solution's parameters."""
    tree = _parse(code)
    if tree is None:
        return []
    code = ast.unparse(tree)
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    names += [n.targets[0].id for n in tree.body if isinstance(n, ast.Assign) and len(n.targets) == 1
              and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Lambda)]
    if problem.function in names:
        return [code]
    if names:
        return [f"{code}\n\n{problem.function} = {name}\n" for name in names]
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Lambda):
        return [f"{problem.function} = {code}\n"]
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr) \
            and isinstance(tree.body[0].value, (ast.Name, ast.Constant)):
        return []  # `numbers` or `0` in a sentence: no behaviour to compare (the AST check still sees it)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    if params and used & set(params):  # the solution's body or expression, without its def
        body = tree.body
        if len(body) == 1 and isinstance(body[0], ast.Expr):
            body = [ast.Return(body[0].value)]
        return [ast.unparse(ast.Module([_def(problem.function, ", ".join(params), body)], []))]
    return []


class Checker:
    """Decides, piece by piece, whether code in one reply solves ``problem``; at most MAX_RUNS sandbox runs."""

    def __init__(self, problem: Problem, max_runs: int = MAX_RUNS):
        self.problem = problem
        self.runs_left = max_runs
        self.unchecked = 0  # pieces withheld only because the run budget was spent
        self._seen: dict[str, bool] = {}
        shapes = _solution_shapes(problem)
        self.params = shapes.params if shapes else ()

    def solves(self, code: str) -> bool:
        if code not in self._seen:
            self._seen[code] = self._solves(code)
        return self._seen[code]

    def _solves(self, code: str) -> bool:
        if not code.strip():
            return False
        if same_as_solution(code, self.problem):
            return True
        tree = _parse(code)
        for node in ast.walk(tree) if tree is not None else ():  # the solution's text inside a string literal
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "\n" in node.value \
                    and same_as_solution(node.value, self.problem):
                return True
        for program in _runnable(code, self.problem, self.params):
            if self.runs_left <= 0:
                self.unchecked += 1
                return True  # fail closed: it could be a solution and was not run
            self.runs_left -= 1
            if check_solution(self.problem, program).ok:
                return True
        return False


def withhold_solutions(text: str, problem: Problem, max_runs: int = MAX_RUNS) -> tuple[str, int, int]:
    """(``text`` with every piece of code that solves ``problem`` replaced by a note, how many were removed,
    how many of those only because the run budget was spent)."""
    checker = Checker(problem, max_runs)
    pieces = code_pieces(text)
    # Blocks first, then the longest inline code: the run budget goes to what most likely is a solution.
    ranked = sorted(pieces, key=lambda piece: (piece.kind == "inline", -len(piece.code)))
    solving = [piece for piece in ranked if checker.solves(piece.code)]
    if not solving:
        return text, 0, 0
    lines = text.splitlines(keepends=True)
    for piece in sorted((p for p in solving if p.lines), key=lambda p: p.lines[0], reverse=True):
        start, end = piece.lines  # type: ignore[misc]
        indent = re.match(r"[ \t>]*", lines[start]).group(0) if start < len(lines) else ""  # type: ignore[union-attr]
        if piece.kind == "indented":
            indent = ""
        lines[start:end] = [f"{indent}{BLOCK_NOTE}\n"]
    text = "".join(lines)
    for piece in (p for p in solving if p.kind == "inline"):
        body = r"\s+".join(re.escape(word) for word in piece.code.split())
        text = re.sub(rf"(?<!`){re.escape(piece.markup)}\s*{body}\s*{re.escape(piece.markup)}(?!`)",
                      INLINE_NOTE, text)
    return text, len(solving), checker.unchecked
