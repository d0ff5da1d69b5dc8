"""Lesson notebooks: the teacher copy (solutions and hidden tests marked) and the student copy built from it.

A lesson is a notebook written by a teacher, with nbgrader's markers inside code cells:

    def add(a, b):
        ### BEGIN SOLUTION
        return a + b
        ### END SOLUTION

and test cells (tagged ``tests``, or holding a hidden-tests region) with visible asserts and hidden ones:

    assert add(1, 2) == 3
    ### BEGIN HIDDEN TESTS
    assert add(-1, 1) == 0
    ### END HIDDEN TESTS

Roles, from the markers and one cell tag:

- an *exercise* (solution cell) is a code cell with a ``### BEGIN SOLUTION`` region;
- a *test cell* is a code cell tagged ``tests`` (nbgrader's ``"nbgrader": {"grade": true}`` metadata also
  counts) or one with a ``### BEGIN HIDDEN TESTS`` region; it tests the exercise above it, and every
  exercise needs at least one test cell before the next exercise.

The student copy (:func:`build_student_copy`) replaces each solution region with the stub

    # YOUR CODE HERE
    raise NotImplementedError()

indented like the ``BEGIN`` marker (one stub for statements and expressions alike: it is valid wherever a
statement is, and fails loudly instead of silently returning ``None``), drops hidden-test regions, clears
outputs, and tags ``raises-exception`` every cell that will fail on the stubs: the test cells, and the
exercises whose stub runs when the cell runs (not inside a ``def``). nbval and nbclient then expect those
failures and still run everything else. The teacher's own tags stay (a demo cell tagged ``raises-exception``
fails on purpose in both copies), except nbval's output tags: the student copy has no saved outputs.

:func:`check_lesson` validates a lesson: markers balanced and not nested, every exercise tested, the teacher
copy runs top to bottom with every test passing, and in the student copy exactly the tagged cells fail.
Cells are numbered from 1, counting Markdown cells, as they appear in the notebook.
"""

from __future__ import annotations

import ast
import copy
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .engine.errors import TutorError

if TYPE_CHECKING:
    from nbformat import NotebookNode

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
TESTS_TAG = "tests"
RAISES_TAG = "raises-exception"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
DEFAULT_TIMEOUT = 60  # seconds per cell
_OUTPUT_TAGS = ("nbval-check-output", "nbval-ignore-output")
SETUP_TAG = "tutor-setup"  # the student copy's first cell: loads the tutor and registers the exercises
SETUP_CELLS = 1  # student copy cell i + SETUP_CELLS is teacher copy cell i

# Anything that looks like a marker but is not exactly one: a typo would otherwise leak a solution.
_MARKER_LIKE = re.compile(r"(BEGIN|END)\s+(SOLUTION|HIDDEN\s+TESTS)", re.IGNORECASE)


class LessonError(TutorError):
    """A lesson that cannot be built or does not check out; the message names the file and the cell."""


def _nbformat():
    # Imported on use so that the rest of the command line works without Jupyter installed.
    try:
        import nbformat
    except ImportError:
        raise LessonError("lessons need nbformat and nbclient: pip install 'tutor[lab]' (or nbformat nbclient "
                          "ipykernel).") from None
    return nbformat


@dataclass
class Region:
    kind: str  # "solution" or "hidden"
    begin: int  # line index of the BEGIN marker
    end: int  # line index of the END marker
    indent: str


@dataclass
class CellInfo:
    index: int  # 0-based
    role: str  # "markdown", "code", "exercise" or "tests"
    regions: list[Region] = field(default_factory=list)
    exercise: int | None = None  # for a test cell: the index of the exercise it tests

    @property
    def number(self) -> int:
        return self.index + 1


def _lines(source: str) -> list[str]:
    return source.split("\n")


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _is_test_tagged(cell: NotebookNode) -> bool:
    meta = cell.get("metadata", {})
    return TESTS_TAG in _tags(cell) or bool(meta.get("nbgrader", {}).get("grade"))


def _is_nbgrader_solution(cell: NotebookNode) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def _regions(source: str, where: str) -> list[Region]:
    """The marked regions of one cell, or a LessonError for unbalanced, nested or misspelt markers."""
    regions: list[Region] = []
    open_: Region | None = None
    for i, line in enumerate(_lines(source)):
        text = line.strip()
        if text in MARKERS:
            kind = "solution" if "SOLUTION" in text else "hidden"
            if text.startswith("### BEGIN"):
                if open_ is not None:
                    raise LessonError(f"{where}: line {i + 1}: '{text}' inside an open '{_begin(open_.kind)}' "
                                      f"(line {open_.begin + 1}); regions cannot nest.")
                open_ = Region(kind, i, -1, line[: len(line) - len(line.lstrip())])
            else:
                if open_ is None:
                    raise LessonError(f"{where}: line {i + 1}: '{text}' without a '{_begin(kind)}' before it.")
                if open_.kind != kind:
                    raise LessonError(f"{where}: line {i + 1}: '{text}' closes '{_begin(open_.kind)}' "
                                      f"(line {open_.begin + 1}); use '{_end(open_.kind)}'.")
                open_.end = i
                regions.append(open_)
                open_ = None
        elif _MARKER_LIKE.search(line):
            raise LessonError(f"{where}: line {i + 1}: {line.strip()!r} looks like a marker but is not one; "
                              f"write exactly one of {', '.join(repr(m) for m in MARKERS)} on its own line.")
    if open_ is not None:
        raise LessonError(f"{where}: line {open_.begin + 1}: '{_begin(open_.kind)}' is never closed with "
                          f"'{_end(open_.kind)}'.")
    return regions


def _begin(kind: str) -> str:
    return BEGIN_SOLUTION if kind == "solution" else BEGIN_HIDDEN


def _end(kind: str) -> str:
    return END_SOLUTION if kind == "solution" else END_HIDDEN


def analyse(nb: NotebookNode, name: str = "lesson") -> list[CellInfo]:
    """Each cell's role and regions; raises LessonError naming the file and cell for a malformed lesson."""
    infos: list[CellInfo] = []
    exercise: int | None = None
    tested = True
    for index, cell in enumerate(nb.cells):
        where = f"{name}: cell {index + 1}"
        if cell.cell_type != "code":
            if cell.cell_type == "markdown" and _is_nbgrader_solution(cell):
                infos.append(CellInfo(index, "answer"))  # a written answer: replaced in the student copy
                continue
            if any(_MARKER_LIKE.search(line) for line in _lines(cell.source)):
                raise LessonError(f"{where}: solution and hidden-test markers belong in code cells, "
                                  f"not {cell.cell_type} cells.")
            infos.append(CellInfo(index, "markdown" if cell.cell_type == "markdown" else cell.cell_type))
            continue
        regions = _regions(cell.source, where)
        if not regions and _is_nbgrader_solution(cell):
            # nbgrader's "solution: true" with no markers: the whole cell is the solution
            regions = [Region("solution", -1, len(_lines(cell.source)), "")]
        kinds = {r.kind for r in regions}
        for r in regions:
            body = _lines(cell.source)[max(0, r.begin + 1): r.end]
            if not any(line.strip() for line in body):
                raise LessonError(f"{where}: line {r.begin + 1}: the '{_begin(r.kind)}' region is empty.")
        if kinds == {"solution", "hidden"}:
            raise LessonError(f"{where}: a cell holds either a solution or hidden tests, not both; "
                              "put the tests in their own cell below the exercise.")
        if kinds or _is_test_tagged(cell):
            for tag in _tags(cell):
                if tag in (RAISES_TAG, "nbval-raises-exception", "nbval-skip"):
                    raise LessonError(f"{where}: an exercise or test cell cannot be tagged '{tag}': a failing "
                                      "test would go unnoticed.")
        if "solution" in kinds:
            if _is_test_tagged(cell):
                raise LessonError(f"{where}: a test cell (tag '{TESTS_TAG}') cannot hold a solution region.")
            if not tested:
                raise LessonError(f"{name}: cell {exercise + 1}: the exercise has no test cell after it "
                                  f"(a code cell tagged '{TESTS_TAG}' before the next exercise).")
            exercise, tested = index, False
            infos.append(CellInfo(index, "exercise", regions))
        elif "hidden" in kinds or _is_test_tagged(cell):
            if exercise is None:
                raise LessonError(f"{where}: a test cell with no exercise above it (no '{BEGIN_SOLUTION}' "
                                  "region in an earlier cell).")
            visible = [line for i, line in enumerate(_lines(cell.source))
                       if not any(r.begin <= i <= r.end for r in regions)]
            if not any(line.strip() and not line.strip().startswith("#") for line in visible):
                raise LessonError(f"{where}: the test cell has no visible test; students need at least one "
                                  "assert outside the hidden region.")
            tested = True
            infos.append(CellInfo(index, "tests", regions, exercise))
        else:
            infos.append(CellInfo(index, "code"))
    if not tested:
        raise LessonError(f"{name}: cell {exercise + 1}: the exercise has no test cell after it "
                          f"(a code cell tagged '{TESTS_TAG}').")
    if exercise is None:
        raise LessonError(f"{name}: no exercise: mark at least one solution with '{BEGIN_SOLUTION}' / "
                          f"'{END_SOLUTION}' in a code cell.")
    return infos


def _replace_regions(source: str, regions: list[Region], stub: bool) -> str:
    lines = _lines(source)
    out: list[str] = []
    i = 0
    for r in sorted(regions, key=lambda r: r.begin):
        out.extend(lines[i: max(r.begin, 0)])  # begin -1: the whole cell (nbgrader's solution cell)
        if stub:
            out.extend(r.indent + s for s in STUB)
        i = r.end + 1
    out.extend(lines[i:])
    text = "\n".join(out)
    return text.rstrip() if not stub else text


def _stub_runs_at_top_level(source: str) -> bool:
    """Whether running the cell reaches a stub, i.e. a stub that is not inside a function body."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        tree = ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ImportError):
        return True  # cannot tell: expect the failure; `tutor lesson check` verifies it

    def visit(node: ast.AST) -> bool:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return False
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                and getattr(node.exc.func, "id", None) == "NotImplementedError":
            return True
        return any(visit(child) for child in ast.iter_child_nodes(node))

    return visit(tree)


def visible_tests(source: str, regions: list[Region]) -> str:
    """A test cell's source without its hidden-test regions."""
    return _replace_regions(source, regions, stub=False)


def read_lesson(path: str | Path) -> NotebookNode:
    nbformat = _nbformat()
    path = Path(path)
    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise LessonError(f"{path}: no such file.") from None
    except Exception as exc:  # nbformat raises several kinds for a file that is not a notebook
        raise LessonError(f"{path}: not a readable notebook ({exc.__class__.__name__}: {exc}).") from exc


# What the student copy keeps of metadata: everything else can carry a solution (a teacher's notes,
# an extension's saved state, nbgrader's checksum of the solution cell) and is removed.
_KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info")
_KEEP_CELL_METADATA = ("tags", "editable", "deletable")
_KEEP_NBGRADER = {"grade": bool, "solution": bool, "locked": bool, "task": bool, "grade_id": str,
                  "points": (int, float), "schema_version": int}
ANSWER_STUB = "YOUR ANSWER HERE"
GENERIC_HINTS = (
    "Read the exercise again, and the visible test under it: what must your code give for that input?",
    "Look back at the worked examples above this exercise: which of them does something like it?",
    "Write the steps in plain words first, one per line, then turn each line into Python.",
    "Make the first visible test pass first, run the tests, then make your code general.",
)


@dataclass
class Removed:
    """What the build took out of the teacher copy: said in one line by `tutor lesson build`."""

    solutions: int = 0
    hidden_tests: int = 0
    answers: int = 0  # nbgrader solution cells with no markers (code and Markdown)
    outputs: int = 0
    attachments: int = 0
    cell_metadata: set[str] = field(default_factory=set)
    notebook_metadata: set[str] = field(default_factory=set)

    def summary(self) -> str:
        parts = [f"{self.solutions} solution region{'s' * (self.solutions != 1)}",
                 f"{self.hidden_tests} hidden-test region{'s' * (self.hidden_tests != 1)}"]
        if self.answers:
            parts.append(f"{self.answers} nbgrader solution cell{'s' * (self.answers != 1)} without markers")
        parts.append(f"{self.outputs} output{'s' * (self.outputs != 1)}")
        if self.attachments:
            parts.append(f"{self.attachments} attachment{'s' * (self.attachments != 1)}")
        if self.cell_metadata:
            parts.append(f"cell metadata {', '.join(sorted(self.cell_metadata))}")
        if self.notebook_metadata:
            parts.append(f"notebook metadata {', '.join(sorted(self.notebook_metadata))}")
        return "removed " + "; ".join(parts)


def lesson_id(name: str) -> str:
    """The lesson's id, from the teacher copy's file name: '04-loops.ipynb' -> 'lesson_04_loops'."""
    stem = re.sub(r"[^a-z0-9]+", "_", Path(name).stem.lower()).strip("_")
    return f"lesson_{stem or 'x'}"


def exercise_name(source: str) -> str | None:
    """The name an exercise defines: its first function or class, else its first assigned variable."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        tree = ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ImportError):
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return node.name
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name):
                return target.id
    return None


def _exercise_hints(cell: NotebookNode) -> list[str]:
    hints = cell.get("metadata", {}).get("tutor", {}).get("hints")
    if isinstance(hints, list) and all(isinstance(h, str) and h.strip() for h in hints) and hints:
        return (list(hints) + list(GENERIC_HINTS))[:len(GENERIC_HINTS)]
    return list(GENERIC_HINTS)


def _nbgrader_value_ok(key: str, value) -> bool:
    """nbgrader keys the student copy keeps, with values of their own type only (ids, flags, points)."""
    kind = _KEEP_NBGRADER.get(key)
    if kind is None:
        return False
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, kind):
        return False
    return not isinstance(value, str) or (len(value) <= 100 and "\n" not in value)


def _lesson_policy(nb: NotebookNode, name: str) -> dict | None:
    """The teacher copy's ``metadata.tutor.policy``, checked (a mistake stops the build), or None."""
    from .tutoring.policy import PolicyError, validate

    tutor = nb.metadata.get("tutor", {})
    data = tutor.get("policy") if isinstance(tutor, dict) else None
    if data is None:
        return None
    try:
        validate(data, f"{name}: metadata.tutor.policy")
    except PolicyError as exc:
        raise LessonError(str(exc)) from None
    return dict(data)


def _clean_metadata(meta: dict, removed: Removed) -> dict:
    kept = {}
    for key, value in meta.items():
        if key in _KEEP_CELL_METADATA:
            kept[key] = value
        elif key == "nbgrader" and isinstance(value, dict):
            nb = {k: v for k, v in value.items() if _nbgrader_value_ok(k, v)}
            if set(value) - set(nb):
                removed.cell_metadata.update(f"nbgrader.{k}" for k in set(value) - set(nb))
            if nb:
                kept["nbgrader"] = nb
        else:
            removed.cell_metadata.add(key)
    return kept


def build_student_copy(nb: NotebookNode, name: str = "lesson", *, notebook_name: str | None = None,
                       removed: Removed | None = None) -> NotebookNode:
    """The student copy of a teacher notebook (which is left untouched).

    Its first cell loads the tutor and registers the lesson's exercises with it (`%lesson
    NOTEBOOK`, NOTEBOOK being the student copy's file name, default `name`'s), so that `%check`
    and `%hint` work on them; exercise and test cells carry what the tutor needs in their
    metadata ("tutor": the exercise's id, name, hints and how many hidden tests it has).
    """
    nbformat = _nbformat()
    removed = removed if removed is not None else Removed()
    infos = analyse(nb, name)
    student = nbformat.from_dict(nbformat.v4.new_notebook())
    lesson = lesson_id(name)
    meta = {k: v for k, v in nb.metadata.items() if k in _KEEP_NOTEBOOK_METADATA}
    removed.notebook_metadata.update(k for k in nb.metadata if k not in _KEEP_NOTEBOOK_METADATA)
    meta["tutor"] = {"lesson": lesson, "student_copy": True}
    if (policy := _lesson_policy(nb, name)) is not None:
        meta["tutor"]["policy"] = policy  # the lesson's own policy travels: it can only make the tutor stricter
    student.metadata = nbformat.from_dict(meta)
    setup = nbformat.v4.new_code_cell(f"%load_ext tutor\n%lesson {notebook_name or Path(name).name}")
    setup.metadata = nbformat.from_dict({"tags": [SETUP_TAG]})
    student.cells.append(setup)
    exercises = {info.index: n for n, info in enumerate((i for i in infos if i.role == "exercise"), start=1)}
    hidden_counts: dict[int, int] = {}
    for info in infos:
        if info.role == "tests":
            hidden = sum(len(_hidden_cases(nb.cells[info.index].source, r)) for r in info.regions)
            hidden_counts[info.exercise] = hidden_counts.get(info.exercise, 0) + hidden
    for cell, info in zip(nb.cells, infos, strict=True):
        new = nbformat.from_dict(dict(cell))
        new.metadata = nbformat.from_dict(_clean_metadata(dict(cell.get("metadata", {})), removed))
        if "attachments" in new:
            removed.attachments += len(new.attachments or {})
            del new["attachments"]
        if info.role == "answer":
            new.source = ANSWER_STUB
            removed.answers += 1
        if new.cell_type == "code":
            removed.outputs += len(new.get("outputs", []))
            new.outputs = []
            new.execution_count = None
            # nbval's output tags are about the teacher copy's saved outputs, which the student copy does not have.
            tags = [t for t in _tags(new) if t not in _OUTPUT_TAGS]
            if info.role == "exercise":
                new.source = _replace_regions(cell.source, info.regions, stub=True)
                if info.regions and info.regions[0].begin < 0:
                    removed.answers += 1
                else:
                    removed.solutions += len(info.regions)
                if _stub_runs_at_top_level(new.source):
                    tags.append(RAISES_TAG)
                new.metadata["tutor"] = {
                    "exercise": f"{lesson}_{exercises[info.index]}", "name": exercise_name(cell.source),
                    "hints": _exercise_hints(cell), "hidden_tests": hidden_counts.get(info.index, 0)}
            elif info.role == "tests":
                new.source = visible_tests(cell.source, info.regions)
                removed.hidden_tests += len(info.regions)
                tags.append(RAISES_TAG)
                new.metadata["tutor"] = {"tests": f"{lesson}_{exercises[info.exercise]}"}
            if tags:
                new.metadata["tags"] = tags
            else:
                new.metadata.pop("tags", None)
        student.cells.append(new)
    nbformat.validate(student)
    return student


def build(src: str | Path, out: str | Path | None = None, force: bool = False) -> tuple[Path, Removed]:
    """Write the student copy of the lesson ``src``; returns where, and what was removed.
    Never overwrites the teacher copy."""
    nbformat = _nbformat()
    src = Path(src)
    nb = read_lesson(src)
    if out is None:
        out = Path("build") / "lessons" / src.name
    as_folder = str(out).endswith(("/", "\\"))  # "-o handout/" names a folder, made if needed
    out = Path(out)
    if out.is_dir() or as_folder:
        out = out / src.name
    if out.resolve() == src.resolve() or (out.exists() and src.exists() and out.samefile(src)):
        raise LessonError(f"{out}: is the teacher copy; the student copy must go elsewhere (-o OUT).")
    if out.exists() and not force:
        raise LessonError(f"{out}: already exists; choose another name or pass --force to replace it.")
    removed = Removed()
    student = build_student_copy(nb, str(src), notebook_name=out.name, removed=removed)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(student, out)
    return out, removed


# --- exercises as problems: what %check and the class server grade --------------------------------------------------

def _statements(source: str) -> list[tuple[ast.stmt, str]]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [(node, ast.get_source_segment(source, node) or ast.unparse(node)) for node in tree.body]


def cases_from_tests(source: str, *, hidden: bool = False) -> list:
    """Test cases from a test cell's asserts: `assert CALL == LITERAL` becomes a call with its expected value
    (compared in the grader, never in the student's process); any other assert is a check snippet, with the
    cell's other statements before it as setup. In hidden tests a check snippet runs where the student's code
    could see what it compares against: write hidden tests as `assert f(x) == value`."""
    from .grading.problem import Case

    cases, setup = [], []
    for node, text in _statements(source):
        if not isinstance(node, ast.Assert):
            setup.append(text)
            continue
        test = node.test
        prelude = "\n".join(setup)
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
            try:
                expected = ast.literal_eval(test.comparators[0])
            except (ValueError, SyntaxError, TypeError):
                expected = _NO_LITERAL
            if expected is not _NO_LITERAL:
                cases.append(Case(call=ast.unparse(test.left), expected=expected, setup=prelude))
                continue
        cases.append(Case(check=text, setup=prelude))
    return cases


_NO_LITERAL = object()


def _hidden_cases(source: str, region: Region) -> list:
    return cases_from_tests("\n".join(_lines(source)[region.begin + 1: region.end]), hidden=True)


def _prelude(nb: NotebookNode, index: int, plain: list[int]) -> str:
    """The worked examples (plain code cells, in `plain`) above cell `index`: a lesson's tests may use
    what they define. Cells that fail on purpose, are skipped, or are not plain Python stay out."""
    parts = []
    for i in plain:
        if i >= index:
            break
        cell = nb.cells[i]
        if set(_tags(cell)) & {RAISES_TAG, "nbval-raises-exception", "nbval-skip", SETUP_TAG} or _skipped(cell):
            continue
        try:
            ast.parse(cell.source)
        except SyntaxError:
            continue
        parts.append(cell.source)
    return "\n\n".join(parts)


def _statement_above(nb: NotebookNode, index: int) -> str:
    for cell in reversed(nb.cells[:index]):
        if cell.cell_type == "markdown" and cell.source.strip():
            return cell.source
    return "Write the code this exercise asks for."


def lesson_problems(path: str | Path) -> list:
    """The teacher copy's exercises as grading problems, hidden tests and solutions included: for the class
    server (`tutor serve --problems`), never for a student's kernel."""
    from .grading.problem import Problem

    path = Path(path)
    nb = read_lesson(path)
    infos = analyse(nb, str(path))
    lesson = lesson_id(path.name)
    problems = []
    for n, info in enumerate((i for i in infos if i.role == "exercise"), start=1):
        cell = nb.cells[info.index]
        tests = [i for i in infos if i.role == "tests" and i.exercise == info.index]
        public, hidden = [], []
        for t in tests:
            source = nb.cells[t.index].source
            public += cases_from_tests(visible_tests(source, t.regions))
            for r in t.regions:
                hidden += _hidden_cases(source, r)
        name = exercise_name(cell.source) or "solution"
        problems.append(Problem(
            id=f"{lesson}_{n}", title=f"{path.stem}: exercise {n}", topic="functions", level=1,
            statement=_statement_above(nb, info.index), function=name,
            starter=_replace_regions(cell.source, info.regions, stub=True), solution=cell.source,
            public_tests=tuple(public), hidden_tests=tuple(hidden), hints=tuple(_exercise_hints(cell)), source=path,
            prelude=_prelude(nb, info.index, [i.index for i in infos if i.role == "code"])))
    return problems


def student_exercises(path: str | Path) -> list:
    """A student copy's exercises as the tutor in the student's kernel may know them: public tests (the
    visible asserts), hints and how many hidden tests there are; no solution, no hidden test."""
    from .grading.student import StudentProblem

    path = Path(path)
    nb = read_lesson(path)
    meta = nb.metadata.get("tutor", {})
    if not isinstance(meta, dict) or not meta.get("student_copy"):
        raise LessonError(f"{path}: not a student copy built by `tutor lesson build` (it has no exercises "
                          "for the tutor).")
    exercises, tests, plain = [], {}, []
    for index, cell in enumerate(nb.cells):
        info = cell.get("metadata", {}).get("tutor", {})
        if cell.cell_type != "code" or not isinstance(info, dict):
            continue
        if not info:
            plain.append(index)
        elif info.get("tests"):
            tests.setdefault(info["tests"], []).extend(cases_from_tests(cell.source))
        elif info.get("exercise"):
            exercises.append((index, cell, info))
    problems = []
    for index, cell, info in exercises:
        hints = info.get("hints") if isinstance(info.get("hints"), list) else list(GENERIC_HINTS)
        hints = [str(h) for h in hints][:len(GENERIC_HINTS)] + list(GENERIC_HINTS)[len(hints):]
        count = info.get("hidden_tests") if isinstance(info.get("hidden_tests"), int) else 0
        problems.append(StudentProblem(
            id=str(info["exercise"]), title=f"exercise {len(problems) + 1}", topic="functions", level=1,
            statement=_statement_above(nb, index), function=str(info.get("name") or ""), starter=cell.source,
            public_tests=tuple(tests.get(info["exercise"], ())), hints=tuple(hints), hidden_total=count,
            origin="lesson", source=path, prelude=_prelude(nb, index, plain)))
    return problems


# --- running notebooks ---------------------------------------------------------------------------------------------

def _client(nb: NotebookNode, cwd: Path, timeout: int):
    try:
        from ipykernel.kernelspec import RESOURCES, get_kernel_dict
        from jupyter_client.kernelspec import KernelSpec
        from jupyter_client.manager import AsyncKernelManager
        from nbclient import NotebookClient
    except ImportError as exc:
        raise LessonError(f"running a lesson needs nbclient and ipykernel ({exc}): pip install nbclient "
                          "ipykernel.") from None

    class CurrentEnvKernelManager(AsyncKernelManager):  # asynchronous, as nbclient expects: cell timeouts work
        """A Python kernel in this process's environment, whatever kernels are installed (like nbval's)."""

        @property
        def kernel_spec(self):
            return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())

    return NotebookClient(nb, timeout=timeout, kernel_manager_class=CurrentEnvKernelManager,
                          resources={"metadata": {"path": str(cwd)}})


def _skipped(cell: NotebookNode) -> bool:
    """Cells nbval skips (tag nbval-skip, or a first line '# NBVAL_SKIP') are skipped here too."""
    first = cell.source.lstrip().split("\n", 1)[0].replace(" ", "")
    return "nbval-skip" in _tags(cell) or first == "#NBVAL_SKIP"


@dataclass
class CellRun:
    index: int
    error: str | None  # "Name: value" of the exception the cell raised, if any


def run_notebook(nb: NotebookNode, cwd: str | Path = ".", timeout: int = DEFAULT_TIMEOUT,
                 stop_on_error: bool = True) -> list[CellRun]:
    """Run the code cells top to bottom in a fresh kernel; which raised what.

    With ``stop_on_error`` the run stops at the first cell that raises and is not tagged ``raises-exception``.
    A cell that runs past ``timeout`` seconds is reported as raising ``TimeoutError`` and ends the run.
    """
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbclient.util import run_sync

    client = _client(nb, Path(cwd), timeout)
    runs: list[CellRun] = []

    # nbclient's asynchronous API, on one event loop, run to the end here.
    async def run_all() -> None:
        client.reset_execution_trackers()
        async with client.async_setup_kernel(stderr=subprocess.DEVNULL):  # the kernel's start-up warnings are noise
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code" or _skipped(cell):
                    continue
                try:
                    await client.async_execute_cell(cell, index)
                except CellTimeoutError:
                    runs.append(CellRun(index, f"TimeoutError: the cell ran longer than {timeout} s"))
                    return
                except DeadKernelError:
                    runs.append(CellRun(index, "DeadKernelError: the kernel died"))
                    return
                except CellExecutionError as exc:
                    runs.append(CellRun(index, f"{exc.ename}: {exc.evalue}".rstrip(": ")))
                    if stop_on_error:
                        return
                    continue
                errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
                runs.append(CellRun(index, f"{errors[0]['ename']}: {errors[0]['evalue']}".rstrip(": ")
                                    if errors else None))

    run_sync(run_all)()
    return runs


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_lesson(path: str | Path, timeout: int = DEFAULT_TIMEOUT) -> NotebookNode:
    """Validate a lesson; returns its student copy. Raises LessonError with the file, the cell and the cause."""
    nbformat = _nbformat()
    path = Path(path)
    nb = read_lesson(path)
    infos = analyse(nb, str(path))
    cwd = path.parent

    # The teacher copy, with each test cell run twice: its visible tests alone (what students will have:
    # they must pass on a right solution without anything from the hidden region), then the whole cell.
    teacher = nbformat.v4.new_notebook()
    origin: list[tuple[int, str]] = []
    for info, cell in zip(infos, nb.cells, strict=True):
        if info.role == "tests":
            teacher.cells.append(nbformat.v4.new_code_cell(visible_tests(cell.source, info.regions)))
            origin.append((info.index, "visible"))
        teacher.cells.append(copy.deepcopy(cell))
        origin.append((info.index, "whole"))
    for run in run_notebook(teacher, cwd, timeout):
        index, part = origin[run.index]
        if run.error is None or RAISES_TAG in _tags(nb.cells[index]):
            continue
        role = infos[index].role
        if role == "tests":
            what = "the tests fail on the teacher's solution"
            if part == "visible" and run.error.startswith("NameError"):
                what = "the visible tests fail without the hidden region (do they use a name defined there?)"
        else:
            what = "the teacher's solution fails" if role == "exercise" else "the teacher copy fails here"
        raise LessonError(f"{path}: cell {index + 1}: {what}: {_short(run.error)}")

    student = build_student_copy(nb, str(path))
    runs = {run.index: run for run in run_notebook(student, cwd, timeout, stop_on_error=False)}
    setup = runs.get(0)
    if setup is not None and setup.error:
        raise LessonError(f"{path}: the student copy's first cell (which loads the tutor) fails: "
                          f"{_short(setup.error)}; is tutor installed in the kernel's environment?")
    for info in infos:
        if info.role not in ("code", "exercise", "tests"):
            continue
        run = runs.get(info.index + SETUP_CELLS)
        if run is None:  # the run ended early (a timeout or a dead kernel was reported before)
            continue
        tagged = RAISES_TAG in _tags(student.cells[info.index + SETUP_CELLS])
        if run.error and run.error.startswith(("TimeoutError", "DeadKernelError")):
            raise LessonError(f"{path}: cell {info.number}: the student copy does not finish: {run.error}")
        if info.role == "tests" and not run.error:
            raise LessonError(f"{path}: cell {info.number}: the tests pass on the stub of the exercise in cell "
                              f"{info.exercise + 1}; their visible asserts must call the exercise's code.")
        if run.error and not tagged and info.role == "exercise":
            raise LessonError(f"{path}: cell {info.number}: the exercise cell itself fails in the student copy "
                              f"({_short(run.error)}); move the code that calls the exercise into its test cell.")
        if run.error and not tagged:
            raise LessonError(f"{path}: cell {info.number}: fails in the student copy, where only exercises and "
                              f"their tests may fail ({_short(run.error)}); does it use an exercise's result?")
    return student


# --- command line --------------------------------------------------------------------------------------------------

def cmd_build(args) -> None:
    out, removed = build(args.src, args.out, force=args.force)
    print(f"wrote the student copy of {args.src} to {out}")
    print(removed.summary())


def cmd_check(args) -> None:
    for src in args.src:
        check_lesson(src, timeout=args.timeout)
        print(f"{src}: ok")
        sys.stdout.flush()


def add_parser(sub) -> None:
    p = sub.add_parser("lesson", help="lesson notebooks: build the student copy, check a lesson")
    lesson = p.add_subparsers(dest="lesson_command", required=True)

    b = lesson.add_parser("build", help="write the student copy: stubs for solutions, no hidden tests, no outputs")
    b.add_argument("src", help="the teacher copy (.ipynb)")
    b.add_argument("-o", "--out", help="a file, or a folder (existing or ending in /); default build/lessons/")
    b.add_argument("--force", action="store_true", help="replace OUT if it exists (never the teacher copy)")
    b.set_defaults(func=cmd_build)

    c = lesson.add_parser("check", help="check markers and tests, run the teacher copy and the student copy")
    c.add_argument("src", nargs="+", help="teacher copies (.ipynb)")
    c.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per cell (default 60)")
    c.set_defaults(func=cmd_check)
