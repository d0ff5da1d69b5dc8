"""What the rules look at: the cell's lines and tokens, the failing line, its frame and the user's names.

Nothing here runs user code: names are read from the frames' and the namespace's mappings, the cell is
parsed (``ast``) and tokenized (``tokenize``) but never executed, and the only file system access is an
``os.path.isfile`` check on traceback file names (to tell notebook cells from library files).
"""

from __future__ import annotations

import ast
import builtins
import io
import itertools
import linecache
import os
import re
import tokenize
import types
import warnings
from collections.abc import Mapping

MAX_NAMES = 20_000  # candidates for did-you-mean; more than any real notebook has
MAX_FRAMES = 20_000
MAX_SOURCE = 200_000  # characters of a cell that are parsed or tokenized at all
BUILTIN_NAMES = frozenset(n for n in dir(builtins) if not n.startswith("_"))
_SKIP_TOKENS = (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING)


class Context:
    """One failing cell: ``source``, ``error``, ``namespace``, and what can be read from them."""

    def __init__(self, source: object, error: Exception, namespace: object):
        self.source = source if isinstance(source, str) else ""
        self.lines = self.source.splitlines()
        self.error = error
        self.message = error_message(error)
        self.namespace: Mapping = namespace if isinstance(namespace, Mapping) else {}
        self.frames: list[tuple[str, int, types.FrameType]] = []  # the cell's frames, outermost first
        self.code_frames: list[types.FrameType] = []  # frames of any notebook code, this cell's or earlier ones
        self.all_frames: list[tuple[str, int, types.FrameType]] = []  # every frame, outermost first
        self.frame: types.FrameType | None = None
        self.line: int | None = None
        self._tree: ast.AST | None | bool = False
        self._tokens: list[tokenize.TokenInfo] | None = None
        if isinstance(error, SyntaxError):
            self.line = self._syntax_line(error)
            text = error.text if isinstance(error.text, str) else ""
            self.text = self.lines[self.line - 1] if self.line else text.rstrip("\r\n")
        else:
            self._locate(error)
            self.text = self.lines[self.line - 1] if self.line else ""

    def match(self, pattern: str, flags: int = 0) -> re.Match | None:
        """``pattern`` matched at the start of the error message."""
        return re.match(pattern, self.message, flags)

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
        while tb is not None and len(frames) < MAX_FRAMES:
            frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno, tb.tb_frame))
            tb = tb.tb_next
        self.all_frames = frames
        checked: dict[str, bool] = {}

        def is_cell(filename: str) -> bool:
            if filename not in checked:
                checked[filename] = looks_like_cell_file(filename)
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
        try:
            known = linecache.getline(filename, lineno)
        except Exception:
            known = ""
        if not known.strip():
            return missing_ok
        return known.strip() == self.lines[lineno - 1].strip()

    def raised_in_user_code(self) -> bool:
        """Whether the innermost frame is notebook code (not a library or a built-in function's caller)."""
        return bool(self.all_frames) and bool(self.code_frames) and self.all_frames[-1][2] is self.code_frames[-1]

    def innermost_source_line(self) -> tuple[str, int | None]:
        """The source line where the error was raised (this cell or an earlier one), when it is known."""
        if not self.all_frames:
            return "", None
        filename, lineno, _ = self.all_frames[-1]
        if self.frames and self.frames[-1][2] is self.all_frames[-1][2] and self.line:
            return self.text, self.line
        try:
            return linecache.getline(filename, lineno).rstrip("\r\n"), None
        except Exception:
            return "", None

    # what --------------------------------------------------------------------------------------------
    @property
    def tree(self) -> ast.AST | None:
        if self._tree is False:
            try:
                with warnings.catch_warnings():  # e.g. "invalid escape sequence": not ours to report
                    warnings.simplefilter("ignore")
                    self._tree = ast.parse(self.source) if len(self.source) < MAX_SOURCE else None
            except Exception:
                self._tree = None
        return self._tree  # type: ignore[return-value]

    @property
    def tokens(self) -> list[tokenize.TokenInfo]:
        """The cell's tokens, up to where the tokenizer gives up (comments, NL and indents left out)."""
        if self._tokens is None:
            found: list[tokenize.TokenInfo] = []
            if len(self.source) < MAX_SOURCE:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        for tok in tokenize.generate_tokens(io.StringIO(self.source).readline):
                            if tok.type in _SKIP_TOKENS or (tok.type == tokenize.ERRORTOKEN and not tok.string.strip()):
                                continue  # Pythons before 3.12 give a space before a stray character as a token
                            found.append(tok)
                except (tokenize.TokenError, SyntaxError, ValueError):
                    pass
            self._tokens = found
        return self._tokens

    def line_tokens(self, line: int | None = None) -> list[tokenize.TokenInfo]:
        """The tokens of the logical line (a statement, across brackets) that holds ``line``, NEWLINE left out."""
        line = self.line if line is None else line
        if line is None:
            return []
        current: list[tokenize.TokenInfo] = []
        for tok in self.tokens:
            if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                if current and current[0].start[0] <= line <= current[-1].end[0]:
                    return current
                current = []
                continue
            current.append(tok)
        if current and current[0].start[0] <= line <= current[-1].end[0]:
            return current
        # the tokenizer stopped inside this line (an unclosed bracket or string): take what it read
        return [t for t in current if t.start[0] <= line] if current and current[0].start[0] <= line else []

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
        if name in BUILTIN_NAMES:
            return True, getattr(builtins, name)
        return False, None

    def user_value(self, name: str) -> tuple[bool, object]:
        """Like :meth:`lookup` but only the student's own variables, not builtins."""
        found, value = self.lookup(name)
        if found and name in BUILTIN_NAMES and value is getattr(builtins, name, object()):
            return False, None
        return found, value

    def known_names(self) -> list[str]:
        """Candidates for did-you-mean: the scopes of :meth:`lookup`, and the locals of the function (maybe of
        an earlier cell) where the error happened."""
        names: set[str] = set(BUILTIN_NAMES) | {"True", "False", "None"}
        inner = [self.code_frames[-1].f_locals] if self.code_frames and self.code_frames[-1] is not self.frame else []
        for scope in self.scopes() + inner:
            try:
                for key in itertools.islice(scope, MAX_NAMES):
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

    def statement_on_line(self) -> ast.stmt | None:
        """The innermost statement that starts on the failing line."""
        tree = self.tree
        if tree is None or self.line is None:
            return None
        best = None
        for n in ast.walk(tree):
            if isinstance(n, ast.stmt) and n.lineno == self.line:
                best = n
        return best

    def function_defs(self) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
        tree = self.tree
        if tree is None:
            return {}
        return {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def where(self, capital: bool = False) -> str:
        if self.line is None:
            return "In this cell" if capital else "in this cell"
        return f"On line {self.line}" if capital else f"on line {self.line}"


def looks_like_cell_file(filename: str) -> bool:
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


def error_message(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        return str(error.msg or "")
    try:
        if isinstance(error, KeyError):
            return repr(error.args[0]) if error.args else ""
        return str(error)
    except Exception:
        return ""
