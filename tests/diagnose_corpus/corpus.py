"""The corpus of beginner error programs: load it, run each program for real, diagnose what it raised.

Each ``*.txt`` file here holds programs, one after another, each under a header line::

    === missing-colon line=2 | an if header without its colon
    x = 5
    if x > 3
        print(x)

The header gives the expected diagnosis kind (``unexplained`` for a program no rule should claim, like
an error the student raised on purpose), and optionally ``line=N`` (the line the diagnosis must point
at), ``input=<python literal>`` (the line a student types when ``input()`` asks) and ``known=unexplained``
(a beginner's error of that kind that no rule explains yet: it may stay unexplained, but must never be
explained wrongly). A line ``# --- next cell ---`` splits a program into notebook
cells: the earlier cells must run without error, and the last one fails. Everything runs in the real
interpreter (compile, then exec in a fresh namespace, in a temporary folder, with a time limit).

Run as a script to print one JSON line per program (``--standalone`` loads only the diagnose package, so
that any Python 3.10+ can run it without the project's dependencies); ``--record`` prints the exceptions
only; ``--write-messages python3.10 python3.11 ...`` records them with each interpreter into
messages.json, which tests/test_diagnose_versions.py replays on machines that have only one Python.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import linecache
import os
import re
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CELL_BREAK = "# --- next cell ---"
UNEXPLAINED = "unexplained"
_HEADER = re.compile(r"^=== (\S+)((?:\s+\w+=\S+)*)\s*\|\s*(.*)$")


class ProgramTimeout(BaseException):
    """A corpus program ran longer than its limit (not an error of the program's own)."""


class CorpusError(Exception):
    """The corpus itself is wrong: a program that doesn't fail, or fails in an earlier cell."""


@dataclass
class Program:
    id: str
    kind: str
    description: str
    cells: list[str]
    line: int | None = None
    input: str | None = None
    known_unexplained: bool = False  # a real beginner's error that no rule explains yet (counted, not hidden)

    @property
    def source(self) -> str:
        return self.cells[-1]


@dataclass
class Outcome:
    program: Program
    error: BaseException
    found: object  # a Diagnosis or None
    namespace: dict = field(repr=False, default_factory=dict)

    @property
    def error_type(self) -> str:
        return type(self.error).__name__

    @property
    def verdict(self) -> str:
        """"right", "wrong" or "unexplained"."""
        found, expected = self.found, self.program.kind
        if found is None:
            return "right" if expected == UNEXPLAINED else "unexplained"
        if found.kind != expected:
            return "wrong"
        if self.program.line is not None and found.line != self.program.line:
            return "wrong"
        return "right"


def _program(header: dict, body: list[str]) -> Program:
    text = "\n".join(body).strip("\n") + "\n"
    cells = [c.strip("\n") + "\n" for c in text.split(CELL_BREAK + "\n")]
    return Program(cells=cells, **header)


def load(directory: Path = HERE) -> list[Program]:
    programs: list[Program] = []
    for path in sorted(directory.glob("*.txt")):
        header: dict | None = None
        body: list[str] = []
        for number, raw in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            m = _HEADER.match(raw)
            if raw.startswith("=== ") and not m:
                raise CorpusError(f"{path.name}:{number}: a header must look like '=== kind [line=N] | what'")
            if m:
                if header is not None:
                    programs.append(_program(header, body))
                options = dict(part.split("=", 1) for part in m.group(2).split())
                unknown = set(options) - {"line", "input", "known"}
                if unknown:
                    raise CorpusError(f"{path.name}:{number}: unknown option(s) {sorted(unknown)}")
                header = {"id": f"{path.stem}:{number}", "kind": m.group(1), "description": m.group(3),
                          "line": int(options["line"]) if "line" in options else None,
                          "input": ast.literal_eval(options["input"]) if "input" in options else None,
                          "known_unexplained": options.get("known") == "unexplained"}
                body = []
            elif header is not None:
                body.append(raw)
        if header is not None:
            programs.append(_program(header, body))
    return programs


@contextlib.contextmanager
def _time_limit(seconds: float):
    if not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum, frame):
        raise ProgramTimeout(f"ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(program: Program, timeout: float = 5.0, then: Callable | None = None) -> tuple[BaseException, dict, object]:
    """Run ``program`` as notebook cells: (the exception its last cell raised, the namespace, ``then(error,
    namespace)``). ``then`` runs while the program's folder and modules are still there, as in a notebook."""
    namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
    modules = set(sys.modules)
    cwd = os.getcwd()
    stdin = sys.stdin
    hidden: dict = {}

    with tempfile.TemporaryDirectory(prefix="corpus-") as folder:
        os.chdir(folder)
        sys.path.insert(0, folder)
        # input() reads what a student would type from stdin (nothing at all: EOFError, as with no stdin)
        sys.stdin = io.StringIO("" if program.input is None else program.input + "\n")
        try:
            for n, cell in enumerate(program.cells, 1):
                for mine in Path(folder).glob("*.py"):  # a file the program wrote, named like a loaded module
                    if mine.stem in sys.modules and mine.stem not in hidden:
                        hidden[mine.stem] = sys.modules.pop(mine.stem)
                name = f"<cell-{program.id}-{n}>"
                linecache.cache[name] = (len(cell), None, cell.splitlines(True), name)  # as IPython does
                last = n == len(program.cells)
                try:
                    with warnings.catch_warnings(), _time_limit(timeout), \
                            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                        warnings.simplefilter("ignore")
                        exec(compile(cell, name, "exec"), namespace)
                except Exception as exc:  # noqa: BLE001 - the program's own error is what we study
                    if not last:
                        raise CorpusError(f"{program.id}: cell {n} of {len(program.cells)} failed: {exc!r}") from exc
                    sys.stdin = stdin
                    return exc, namespace, then(exc, namespace) if then is not None else None
            raise CorpusError(f"{program.id} ({program.description}) did not fail")
        finally:
            sys.stdin = stdin
            sys.path.remove(folder)
            os.chdir(cwd)
            for name in set(sys.modules) - modules:  # a module the program wrote itself must not stay
                if str(getattr(sys.modules.get(name), "__file__", "") or "").startswith(folder):
                    del sys.modules[name]
            sys.modules.update(hidden)


def diagnose_all(diagnose: Callable, programs: list[Program] | None = None, strict: bool = False) -> list[Outcome]:
    outcomes = []
    for program in programs if programs is not None else load():
        error, namespace, found = run(program, then=lambda e, ns, p=program: diagnose(p.source, e, ns, strict=strict))
        outcomes.append(Outcome(program, error, found, namespace))
    return outcomes


FOLDER, STDLIB = "<folder>", "<stdlib>"  # paths in messages, recorded without this machine's names


def _places() -> list[tuple[str, str]]:
    import sysconfig

    return [(os.path.realpath(os.getcwd()), FOLDER), (os.getcwd(), FOLDER),
            (os.path.realpath(sysconfig.get_paths()["stdlib"]), STDLIB), (sysconfig.get_paths()["stdlib"], STDLIB)]


def _strip(value: object) -> object:
    if isinstance(value, str):
        for path, name in _places():
            value = value.replace(path, name)
    return value


def restore(value: object) -> object:
    """A recorded string with this machine's paths put back (run in the program's folder)."""
    if isinstance(value, str):
        for path, name in _places()[::2]:
            value = value.replace(name, path)
    return value


def describe_error(error: BaseException) -> dict:
    """The parts of an exception that differ between Python versions, as JSON (run in the program's folder)."""
    if isinstance(error, SyntaxError):
        return {"type": type(error).__name__, "msg": error.msg, "lineno": error.lineno, "offset": error.offset,
                "text": error.text, "end_lineno": getattr(error, "end_lineno", None),
                "end_offset": getattr(error, "end_offset", None)}
    args = []
    for a in error.args:
        try:
            ast.literal_eval(repr(a))
        except Exception:
            return {"type": type(error).__name__, "args": None, "str": _strip(str(error))}
        args.append(repr(_strip(a)))
    return {"type": type(error).__name__, "args": args, "str": _strip(str(error))}


def _standalone_diagnose() -> Callable:
    """Import tutor.tutoring.diagnose without tutor.tutoring's other modules (and their dependencies)."""
    import types

    root = HERE.parents[1]
    for name, path in (("tutor", root / "tutor"), ("tutor.tutoring", root / "tutor" / "tutoring")):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            sys.modules[name] = module
    from tutor.tutoring.diagnose import diagnose

    return diagnose


MESSAGES = HERE / "messages.json"


def write_messages(interpreters: list[str]) -> None:
    """Record, with each interpreter, what every corpus program raises; write MESSAGES (sorted, stable)."""
    import subprocess

    table: dict[str, dict] = {}
    for python in interpreters:
        version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, check=True, timeout=60).stdout.strip()
        out = subprocess.run([python, "-W", "ignore", __file__, "--record"], capture_output=True, text=True,
                             check=True, timeout=600).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        table[version] = {row.pop("id"): row for row in rows}
    lines = []  # one program a line, so that a new recording shows as a readable diff
    for version in sorted(table):
        rows = ",\n".join(f"  {json.dumps(pid)}: {json.dumps(row, sort_keys=True, ensure_ascii=False)}"
                           for pid, row in sorted(table[version].items()))
        lines.append(f" {json.dumps(version)}: {{\n{rows}\n }}")
    MESSAGES.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write-messages"]:
        write_messages(argv[1:])
        return 0
    if "--record" in argv:  # needs no diagnose at all
        for program in load():
            _, _, described = run(program, then=lambda error, ns: describe_error(error))
            print(json.dumps({"id": program.id, **described}))
        return 0
    if "--standalone" in argv:
        diagnose = _standalone_diagnose()
    else:
        from tutor.tutoring.diagnose import diagnose
    for outcome in diagnose_all(diagnose):
        found = outcome.found
        print(json.dumps({"id": outcome.program.id, "expected": outcome.program.kind, "error": outcome.error_type,
                          "message": str(outcome.error)[:200], "found": found.kind if found else None,
                          "line": found.line if found else None, "verdict": outcome.verdict}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
