"""Lessons: the student copy keeps no solution or hidden test, check names broken lessons, student copies run.

The teacher copies in lessons/ run under nbval with the rest of the suite (pyproject's testpaths).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tutor.cli import main
from tutor.lessons import (
    RAISES_TAG,
    SETUP_CELLS,
    STUB,
    LessonError,
    Removed,
    analyse,
    build_student_copy,
    run_notebook,
)

LESSONS = sorted((Path(__file__).resolve().parent.parent / "lessons").glob("*.ipynb"))


def test_there_are_lessons():
    assert len(LESSONS) >= 6


def write(path: Path, *cells: tuple[str, str] | tuple[str, str, list[str]]) -> Path:
    """A notebook from ("md" | "code", source[, tags]) triples."""
    nb = nbformat.v4.new_notebook()
    for kind, source, *tags in cells:
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags[0]} if tags else {}))
    nbformat.write(nb, path)
    return path


ADD = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"
ADD_TESTS = "assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0\n### END HIDDEN TESTS"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# --- build ---------------------------------------------------------------------------------------------------------

def _region_lines(source: str, begin: str, end: str) -> list[str]:
    lines, inside, found = source.split("\n"), False, []
    for line in lines:
        if line.strip() == begin:
            inside = True
        elif line.strip() == end:
            inside = False
        elif inside and line.strip():
            found.append(line.strip())
    return found


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_student_copy_has_stubs_and_no_solution_or_hidden_test(path):
    teacher = nbformat.read(path, as_version=4)
    before = path.read_bytes()
    student = build_student_copy(teacher, str(path))
    assert path.read_bytes() == before
    text = nbformat.writes(student)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"):
        assert marker not in text

    infos = analyse(teacher)
    exercises = [i for i in infos if i.role == "exercise"]
    assert len(exercises) >= 2
    for info in infos:
        cell, new = teacher.cells[info.index], student.cells[info.index + SETUP_CELLS]
        if info.role == "exercise":
            assert all(line in new.source for line in STUB)
            solution = _region_lines(cell.source, "### BEGIN SOLUTION", "### END SOLUTION")
            distinctive = max(solution, key=len)  # e.g. "return c * 9 / 5 + 32"
            assert distinctive not in text, f"cell {info.number}: solution text {distinctive!r} left in"
        if info.role == "tests":
            assert RAISES_TAG in new.metadata["tags"]
            hidden = _region_lines(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
            for line in hidden:
                assert line not in text, f"cell {info.number}: hidden test {line!r} left in"
            assert new.source.strip() and "assert" in new.source  # the visible tests stay
        if new.cell_type == "code":
            assert new.outputs == [] and new.execution_count is None
            assert not [t for t in new.metadata.get("tags", []) if t.startswith("nbval-")]


def test_stub_indentation_and_which_exercises_fail_when_run(tmp_path):
    src = write(tmp_path / "l.ipynb",
                ("code", ADD), ("code", ADD_TESTS, ["tests"]),
                ("code", "### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\nprint(answer)"),
                ("code", "assert answer == 42\n### BEGIN HIDDEN TESTS\nassert type(answer) is int\n"
                         "### END HIDDEN TESTS", ["tests"]))
    student = build_student_copy(nbformat.read(src, as_version=4))
    cells = student.cells[SETUP_CELLS:]
    assert cells[0].source == "def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert "tags" not in cells[0].metadata  # the stub runs only when add() is called
    assert cells[1].source == "assert add(1, 2) == 3" and cells[1].metadata.tags == ["tests", RAISES_TAG]
    assert cells[2].source == "# YOUR CODE HERE\nraise NotImplementedError()\nprint(answer)"
    assert cells[2].metadata.tags == [RAISES_TAG]  # a top-level stub raises as the cell runs
    assert cells[3].source == "assert answer == 42"


def test_build_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    src = write(tmp_path / "lesson.ipynb", ("md", "# A"), ("code", ADD), ("code", ADD_TESTS, ["tests"]))
    teacher = src.read_bytes()
    out = tmp_path / "student" / "lesson.ipynb"

    rc, stdout, _ = run_cli(capsys, "lesson", "build", str(src), "-o", str(out))
    assert rc == 0 and str(out) in stdout
    assert "raise NotImplementedError()" in out.read_text()

    rc, _, err = run_cli(capsys, "lesson", "build", str(src), "-o", str(out))
    assert rc == 2 and err.startswith("tutor: error: ") and "already exists" in err and "--force" in err
    rc, _, err = run_cli(capsys, "lesson", "build", str(src), "-o", str(out), "--force")
    assert rc == 0

    for target in (src, tmp_path / "." / "lesson.ipynb", tmp_path):  # the file itself, another spelling, its folder
        rc, _, err = run_cli(capsys, "lesson", "build", str(src), "-o", str(target), "--force")
        assert rc == 2 and "teacher copy" in err, err
    assert src.read_bytes() == teacher

    rc, _, _ = run_cli(capsys, "lesson", "build", str(src), "-o", str(tmp_path / "handout") + "/")
    assert rc == 0 and (tmp_path / "handout" / "lesson.ipynb").is_file()

    rc, _, err = run_cli(capsys, "lesson", "build", str(tmp_path / "missing.ipynb"), "-o", str(tmp_path / "x.ipynb"))
    assert rc == 2 and "missing.ipynb: no such file" in err


# --- check: broken lessons ----------------------------------------------------------------------------------------

BROKEN = {
    "never_closed": ([("md", "# A"), ("code", "def f():\n    ### BEGIN SOLUTION\n    return 1"),
                      ("code", "assert f() == 1", ["tests"])],
                     "cell 2: line 2: '### BEGIN SOLUTION' is never closed"),
    "end_without_begin": ([("code", "def f():\n    return 1\n    ### END SOLUTION"),
                           ("code", "assert f() == 1", ["tests"])],
                          "cell 1: line 3: '### END SOLUTION' without a '### BEGIN SOLUTION'"),
    "nested": ([("code", "### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### END SOLUTION"),
                ("code", "assert x == 1", ["tests"])],
               "cell 1: line 2: '### BEGIN SOLUTION' inside an open '### BEGIN SOLUTION' (line 1)"),
    "crossed": ([("code", ADD), ("code", "assert add(1, 1) == 2\n### BEGIN HIDDEN TESTS\nassert add(0, 0) == 0\n"
                                         "### END SOLUTION", ["tests"])],
                "cell 2: line 4: '### END SOLUTION' closes '### BEGIN HIDDEN TESTS' (line 2)"),
    "misspelt": ([("code", "def f():\n    ### BEGIN SOLUTON\n    return 1\n    ### END SOLUTION"),
                  ("code", "assert f() == 1", ["tests"])],
                 "cell 1: line 4: '### END SOLUTION' without"),
    "misspelt_hidden": ([("code", ADD), ("code", "assert add(1, 1) == 2\n## BEGIN HIDDEN TESTS\nassert 1\n"
                                                 "## END HIDDEN TESTS", ["tests"])],
                        "cell 2: line 2: '## BEGIN HIDDEN TESTS' looks like a marker but is not one"),
    "untested": ([("md", "# A"), ("code", ADD), ("md", "no tests here"), ("code", "print(add(1, 2))")],
                 "cell 2: the exercise has no test cell after it"),
    "untested_before_next": ([("code", ADD), ("code", ADD.replace("add", "plus")),
                              ("code", "assert plus(1, 2) == 3", ["tests"])],
                             "cell 1: the exercise has no test cell after it"),
    "tests_without_exercise": ([("code", "assert 1 + 1 == 2", ["tests"]), ("code", ADD),
                                ("code", ADD_TESTS, ["tests"])],
                               "cell 1: a test cell with no exercise above it"),
    "only_hidden_tests": ([("code", ADD), ("code", "### BEGIN HIDDEN TESTS\nassert add(1, 2) == 3\n"
                                                   "### END HIDDEN TESTS")],
                          "cell 2: the test cell has no visible test"),
    "marker_in_markdown": ([("md", "### BEGIN SOLUTION\n42\n### END SOLUTION"), ("code", ADD),
                            ("code", ADD_TESTS, ["tests"])],
                           "cell 1: solution and hidden-test markers belong in code cells"),
    "no_exercise": ([("md", "# A"), ("code", "print(1)")], "no exercise"),
    "failure_allowed_in_tests": ([("code", ADD), ("code", ADD_TESTS, ["tests", "raises-exception"])],
                                 "cell 2: an exercise or test cell cannot be tagged 'raises-exception'"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_check_names_the_file_and_cell_of_a_broken_lesson(case, tmp_path, capsys):
    cells, message = BROKEN[case]
    src = write(tmp_path / f"{case}.ipynb", *cells)
    rc, _, err = run_cli(capsys, "lesson", "check", str(src))
    assert rc == 2
    assert err.startswith(f"tutor: error: {src}: ") and err.count("\n") == 1, err
    assert message in err, err
    # build refuses the same lesson: a malformed marker could leak a solution
    rc, _, err = run_cli(capsys, "lesson", "build", str(src), "-o", str(tmp_path / "out.ipynb"))
    assert rc == 2 and message in err and not (tmp_path / "out.ipynb").exists()


def test_check_rejects_a_wrong_solution(tmp_path, capsys):
    src = write(tmp_path / "wrong.ipynb", ("md", "# A"), ("code", ADD.replace("a + b", "a - b")),
                ("code", ADD_TESTS, ["tests"]))
    rc, _, err = run_cli(capsys, "lesson", "check", str(src))
    assert rc == 2
    assert f"{src}: cell 3: the tests fail on the teacher's solution: AssertionError" in err


def test_check_rejects_tests_that_pass_on_the_stub_and_cells_that_need_a_solution(tmp_path, capsys):
    src = write(tmp_path / "weak.ipynb", ("code", ADD),
                ("code", "assert callable(add)\n### BEGIN HIDDEN TESTS\nassert add(1, 2) == 3\n"
                         "### END HIDDEN TESTS", ["tests"]))
    rc, _, err = run_cli(capsys, "lesson", "check", str(src))
    assert rc == 2 and f"{src}: cell 2: the tests pass on the stub of the exercise in cell 1" in err

    src = write(tmp_path / "needs.ipynb", ("code", ADD), ("code", ADD_TESTS, ["tests"]), ("code", "print(add(2, 2))"))
    rc, _, err = run_cli(capsys, "lesson", "check", str(src))
    assert rc == 2 and f"{src}: cell 3: fails in the student copy" in err and "NotImplementedError" in err


def test_check_rejects_visible_tests_that_need_the_hidden_region(tmp_path, capsys):
    src = write(tmp_path / "leaky.ipynb", ("code", ADD),
                ("code", "### BEGIN HIDDEN TESTS\nexpected = 3\n### END HIDDEN TESTS\nassert add(1, 2) == expected",
                 ["tests"]))
    rc, _, err = run_cli(capsys, "lesson", "check", str(src))
    assert rc == 2
    assert f"{src}: cell 2: the visible tests fail without the hidden region" in err and "NameError" in err


def test_check_accepts_demo_cells_that_raise_on_purpose_and_skipped_cells(tmp_path, capsys):
    src = write(tmp_path / "demo.ipynb", ("code", 'int("seven")', ["raises-exception"]),
                ("code", "import this_module_does_not_exist", ["nbval-skip"]),
                ("code", ADD), ("code", ADD_TESTS, ["tests"]))
    rc, out, err = run_cli(capsys, "lesson", "check", str(src))
    assert rc == 0, err
    student = build_student_copy(nbformat.read(src, as_version=4))
    demo, skipped = student.cells[SETUP_CELLS:SETUP_CELLS + 2]
    assert demo.metadata.tags == ["raises-exception"] and skipped.metadata.tags == ["nbval-skip"]


def test_check_passes_a_real_lesson(capsys):
    rc, out, err = run_cli(capsys, "lesson", "check", str(LESSONS[0]))
    assert rc == 0, err
    assert out.strip() == f"{LESSONS[0]}: ok"


# --- student copies run ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_student_copy_runs_with_only_the_tagged_cells_failing(path, tmp_path):
    """What nbval does with the student copy: cells tagged raises-exception may fail, all others must run.

    nbclient stops at a failing cell that is not tagged, so every code cell having run means no surprise;
    on top of nbval, each tagged cell must really fail (a test that passes on a stub tests nothing).
    """
    student = build_student_copy(nbformat.read(path, as_version=4), str(path))
    out = tmp_path / path.name
    nbformat.write(student, out)
    runs = run_notebook(nbformat.read(out, as_version=4), cwd=tmp_path, timeout=60)
    code_cells = [i for i, c in enumerate(student.cells) if c.cell_type == "code"]
    assert [r.index for r in runs] == code_cells, f"stopped at cell {runs[-1].index + 1}: {runs[-1].error}"
    tagged = {i for i in code_cells if RAISES_TAG in student.cells[i].metadata.get("tags", [])}
    failed = {r.index for r in runs if r.error}
    assert failed == tagged
    assert all(r.error.startswith(("NotImplementedError", "NameError")) for r in runs if r.error), runs
    json.loads(out.read_text())  # a valid notebook file on disk


def test_run_notebook_reports_a_timeout(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(20)"), nbformat.v4.new_code_cell("print(1)")]
    runs = run_notebook(nb, cwd=tmp_path, timeout=2)
    assert len(runs) == 1 and runs[0].error.startswith("TimeoutError")


def test_lesson_error_is_a_tutor_error():
    from tutor.engine.errors import TutorError

    assert issubclass(LessonError, TutorError)


# --- the student copy strips what can carry a solution -------------------------------------------------------------

def _rich_teacher_copy(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata.update({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                        "language_info": {"name": "python"}, "teacher_notes": {"answer": "return a + b"},
                        "widgets": {"state": "return a + b"}})
    intro = nbformat.v4.new_markdown_cell("# Add\n![answer](attachment:answer.png)")
    intro.attachments = {"answer.png": {"image/png": "aGVsbG8="}}
    exercise = nbformat.v4.new_code_cell(ADD, metadata={
        "nbgrader": {"solution": True, "grade_id": "add", "checksum": "5d41402abc4b2a76b9719d911017c592",
                     "locked": False, "cell_type": "code", "schema_version": 3},
        "jupyter": {"source_hidden": True}, "solution_note": "a + b", "tutor": {"hints": ["Add them."]}})
    exercise.outputs = [nbformat.v4.new_output("stream", text="3\n")]
    exercise.execution_count = 4
    tests = nbformat.v4.new_code_cell(ADD_TESTS, metadata={"tags": ["tests"], "nbgrader": {"grade": True,
                                                                                         "points": 2}})
    whole = nbformat.v4.new_code_cell("def twice(x):\n    return 2 * x", metadata={"nbgrader": {"solution": True}})
    twice_tests = nbformat.v4.new_code_cell("assert twice(2) == 4", metadata={"tags": ["tests"]})
    answer = nbformat.v4.new_markdown_cell("Because addition commutes.", metadata={"nbgrader": {"solution": True}})
    nb.cells = [intro, exercise, tests, whole, twice_tests, answer]
    nbformat.write(nb, path)
    return path


def test_the_build_strips_metadata_attachments_outputs_and_nbgrader_solution_cells(tmp_path, capsys):
    src = _rich_teacher_copy(tmp_path / "rich.ipynb")
    out = tmp_path / "out" / "rich.ipynb"
    rc, stdout, err = run_cli(capsys, "lesson", "build", str(src), "-o", str(out))
    assert rc == 0, err
    text = out.read_text()
    for secret in ("return a + b", "a + b", "return 2 * x", "addition commutes", "aGVsbG8=", "5d41402abc",
                   "teacher_notes", "widgets", "source_hidden", "solution_note"):
        assert secret not in text, secret
    student = nbformat.read(out, as_version=4)
    assert set(student.metadata) == {"kernelspec", "language_info", "tutor"}
    setup, intro, exercise, tests, whole, twice_tests, answer = student.cells
    assert setup.source == "%load_ext tutor\n%lesson rich.ipynb"
    assert "attachments" not in intro
    assert exercise.outputs == [] and exercise.execution_count is None
    assert exercise.metadata.nbgrader == {"solution": True, "grade_id": "add", "locked": False, "schema_version": 3}
    assert exercise.metadata.tutor["name"] == "add" and exercise.metadata.tutor["hidden_tests"] == 1
    assert exercise.metadata.tutor["hints"][0] == "Add them."
    assert whole.source == "\n".join(STUB)  # nbgrader's solution cell without markers: all of it is the solution
    assert answer.source == "YOUR ANSWER HERE"
    assert tests.metadata.nbgrader == {"grade": True, "points": 2}
    assert tests.metadata.tutor == {"tests": "lesson_rich_1"}
    summary = stdout.splitlines()[-1]
    assert summary.startswith("removed 1 solution region; 1 hidden-test region; 2 nbgrader solution cells "
                              "without markers; 1 output; 1 attachment; cell metadata "), summary
    for name in ("jupyter", "solution_note", "nbgrader.checksum", "nbgrader.cell_type"):
        assert name in summary
    assert "notebook metadata teacher_notes, widgets" in summary


def test_removed_summary_counts():
    removed = Removed(solutions=2, hidden_tests=1, outputs=0)
    assert removed.summary() == "removed 2 solution regions; 1 hidden-test region; 0 outputs"


def test_the_student_copy_lists_its_exercises_without_solutions_or_hidden_tests(tmp_path):
    from tutor.lessons import student_exercises

    src = _rich_teacher_copy(tmp_path / "rich.ipynb")
    out, _ = build_module_build(src, tmp_path / "student.ipynb")
    exercises = student_exercises(out)
    assert [(e.id, e.function, e.hidden_total) for e in exercises] == [("lesson_rich_1", "add", 1),
                                                                       ("lesson_rich_2", "twice", 0)]
    add = exercises[0]
    assert [c.call for c in add.public_tests] == ["add(1, 2)"] and add.public_tests[0].expected == 3
    assert not hasattr(add, "solution") and not hasattr(add, "hidden_tests")
    with pytest.raises(LessonError, match="not a student copy"):
        student_exercises(src)


def build_module_build(src: Path, out: Path):
    from tutor.lessons import build

    return build(src, out)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_exercise_grades_its_own_solution_on_the_server_side(path):
    from tutor.grading import grade
    from tutor.lessons import lesson_problems

    problems = lesson_problems(path)
    assert problems and all(p.public_tests for p in problems)
    for problem in problems:
        report = grade(problem, problem.solution)
        assert report.passed, (problem.id, report.feedback())
        stub = grade(problem, problem.starter)
        assert not stub.passed, problem.id
