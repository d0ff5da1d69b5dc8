"""%practice, %%check / %check, %hint and %lesson: practice problems and lesson exercises graded in the sandbox.

The magics hold only what a student may see of a problem (tutor.grading.StudentProblem: no solution,
no hidden test). Grading reads the hidden parts from the problem's file for that one call, or, in a
class whose server offers grading (TUTOR_ENDPOINT; `tutor serve --problems`), sends the code there.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ..grading import HINT_LADDER, Bank, GradeReport, load_bank
from ..grading.remote import GradingUnavailable, RemoteGrader
from ..grading.student import StudentProblem, grade_student, keep_private, load_full, student_view
from ..tutoring.policy import Policy
from ..tutoring.practice import generate_problem, next_hint, pick_problem
from ..widgets import Button, TutorPanel
from .extension import TutorExtension


@dataclass
class Practice:
    problem: StudentProblem
    rung: int = 0  # the next hint's rung


def report_markdown(report: GradeReport, *, note: str = "") -> str:
    lines = [f"**{'All tests passed. Well done!' if report.passed else 'Not yet.'}**", ""]
    if report.status != "completed":
        lines += [report.message, ""]
    if report.public:
        lines += ["| test | expected | got | |", "|---|---|---|---|"]
        for r in report.public:
            got = r.error if r.error else r.got
            lines.append(f"| `{_cell(r.call)}` | `{_cell(r.expected)}` | `{_cell(got or '')}` | "
                         f"{'passed' if r.passed else '**failed**'} |")
        lines.append("")
    if report.hidden_total:
        lines.append(f"Hidden tests (you cannot see them): {report.hidden_passed} of {report.hidden_total} passed.")
    if note:
        lines += ["", note]
    return "\n".join(lines)


def hint_markdown(text: str, *, code: bool) -> str:
    """A hint as Markdown that keeps its lines: Markdown joins lines into one paragraph, which turns a
    written "partial code" hint (code, indented) into one unreadable line. Code goes in a fenced block;
    other text with line breaks keeps them."""
    if "```" in text or "\n" not in text.strip():
        return text
    if code:
        return f"```python\n{text.strip(chr(10))}\n```"
    return "  \n".join(text.splitlines())


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|").replace("`", "'")[:120]


class _Cancellable:
    """A backend whose generations can all be stopped at once (a bounded wait for a new problem)."""

    def __init__(self, backend: Any):
        self.backend = backend
        self.streams: list[Any] = []
        self.cancelled = False

    def chat(self, *args: Any, **kwargs: Any) -> Any:
        if self.cancelled:
            raise TimeoutError("stopped: the wait for a new problem is over")
        stream = self.backend.chat(*args, **kwargs)
        self.streams.append(stream)
        return stream

    def cancel(self) -> None:
        self.cancelled = True
        for stream in self.streams:
            try:
                stream.cancel()
            except Exception:  # noqa: BLE001 - a stream that already ended
                pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


@magics_class
class PracticeMagics(Magics):
    new_problem_seconds = 60.0  # how long %practice --new waits for the model before taking a bank problem

    def __init__(self, shell: Any, extension: TutorExtension):
        super().__init__(shell)
        self.ext = extension
        # the bank as students may see it: the registry never holds a solution or a hidden test
        self.bank = Bank(tuple(student_view(p) for p in load_bank()))
        self.current: Practice | None = None
        self.lesson: dict[str, Practice] = {}  # a lesson's exercises, by id (registered by %lesson)
        self.solved: set[str] = set()  # exercises whose check passed in this kernel
        extension.unsolved_exercise = self.unsolved_exercise
        extension.open_exercise = self.open_exercise
        settings = extension.settings
        self.remote = RemoteGrader(settings.endpoint, settings.token) if settings.endpoint else None

    @property
    def policy(self) -> Policy:
        """The policy in force: the extension holds it (file, notebook metadata, or the strictest)."""
        return self.ext.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.ext.policy = policy

    def unsolved_exercise(self, source: str) -> bool:
        """Whether ``source`` is work on an exercise (the current problem or a lesson's) not solved yet."""
        open_ones = [*self.lesson.values(), *([self.current] if self.current else [])]
        return any(p.problem.function and _defines(source, p.problem.function) and p.problem.id not in self.solved
                   for p in open_ones)

    def open_exercise(self) -> Any:
        """The whole problem (solution and tests, read from its file for this call) of the exercise open now,
        for the guard on model replies; None if there is none."""
        try:
            practice = self._practice()
        except UsageError:
            return None
        return load_full(practice.problem)

    def _refuse(self, feature: str) -> None:
        refusal = self.ext.refusal(feature)
        if refusal:
            raise UsageError(refusal)

    # ------------------------------------------------------------------ problems

    @magic_arguments()
    @argument("topic", nargs="?", help="strings, loops, functions, lists, dicts, ... (default: any)")
    @argument("--level", type=int, choices=[1, 2, 3], help="1 (first steps) to 3 (harder)")
    @argument("--new", action="store_true", help="ask the model for a new problem (checked before it is shown)")
    @line_magic
    def practice(self, line: str) -> None:
        """%practice [topic] [--level 1-3] [--new]: a practice problem; starter code goes in a new cell."""
        args = parse_argstring(self.practice, line)
        self._refuse("practice")
        if args.topic in self.policy.avoid_topics:
            raise UsageError(f"the topic {args.topic!r} is not part of this course.")
        if args.new:
            self._refuse("generate")
            if not self.ext.has_chat_model:
                raise UsageError("new problems need the model; try %practice without --new.")
            self._practice_new(args.topic, args.level)
            return
        try:
            avoid = (self.current.problem.id,) if self.current else ()
            problem = pick_problem(self.bank, args.topic, args.level, avoid=avoid)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        panel = TutorPanel(problem.title)
        self._show(problem, panel)
        panel.set_buttons(*self._buttons(panel))
        display(panel)
        self.shell.set_next_input(f"%%check\n{problem.starter}", replace=False)

    def _practice_new(self, topic: str | None, level: int | None) -> None:
        """Wait for the model at most `new_problem_seconds`, then fall back to the bank; either way the
        starter goes into a new cell, as the panel says."""
        panel = TutorPanel("A new practice problem")
        display(panel)
        limit = self.new_problem_seconds
        panel.status = f"Writing a problem and checking its own solution in the sandbox (at most {limit:g} s)..."
        backend = _Cancellable(self.ext.backend())
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["problem"] = generate_problem(backend, topic or "functions", level or 1)[0]
            except Exception as exc:  # noqa: BLE001 - any failure means: take one from the bank
                outcome["error"] = exc

        worker = threading.Thread(target=work, name="tutor-new-problem", daemon=True)
        worker.start()
        start = time.monotonic()
        while worker.is_alive() and (waited := time.monotonic() - start) < limit:  # the seconds are the sign of life
            panel.status = (f"Writing a problem and checking its own solution in the sandbox ({waited:.0f} s of at "
                            f"most {limit:g} s; then one from the problem bank)...")
            worker.join(min(1.0, max(limit - waited, 0.0)))
        if "problem" in outcome:
            problem, note = keep_private(outcome["problem"]), ""
        else:
            backend.cancel()
            why = "the model took too long" if worker.is_alive() else "no problem passed its own tests"
            problem = pick_problem(self.bank, topic, level)
            note = f"(from the problem bank: {why})"
        self._show(problem, panel, note=note)
        panel.status = ""
        panel.set_buttons(*self._buttons(panel))
        self.shell.set_next_input(f"%%check\n{problem.starter}", replace=False)

    def _show(self, problem: StudentProblem, panel: TutorPanel, note: str = "") -> None:
        self.current = Practice(problem)
        examples = "\n".join(f"- `{c.shown}` gives `{c.expected_shown}`" for c in problem.public_tests[:3])
        panel.title = f"{problem.title} ({problem.topic}, level {problem.level}) {note}".strip()
        panel.set_markdown(f"{problem.statement}\n\n**Examples**\n\n{examples}\n\nWrite `{problem.function}` in the "
                           "new cell below and run it: `%%check` on its first line grades it. `%hint` gives a hint.")

    def _buttons(self, panel: TutorPanel) -> tuple[Button, ...]:
        return (Button("check", "Check", lambda: self._check_latest(panel)),
                Button("hint", "Hint", lambda: self._hint(panel)))

    # ------------------------------------------------------------------ lessons

    @line_magic
    def lesson(self, line: str) -> None:
        """%lesson NOTEBOOK: make this lesson's exercises known to %check and %hint (the student copy's first cell)."""
        from ..lessons import LessonError, student_exercises

        name = line.strip()
        if not name:
            raise UsageError("usage: %lesson NOTEBOOK (the student copy's file name)")
        try:
            exercises = student_exercises(Path(name).expanduser())
        except LessonError as exc:
            print(f"tutor: {exc} %check and %hint work on practice problems only here.")
            return
        self.lesson = {p.id: Practice(p) for p in exercises}
        before = self.policy
        self.ext.add_notebook_policy(Path(name).expanduser())
        if self.policy != before:
            print(f"tutor: this lesson sets its own policy, now in force: {self.policy.summary()}.")
        print(f"tutor: {len(self.lesson)} exercises in this lesson. After you write one, %check grades it and "
              "%hint gives a hint.")

    def _lesson_exercise(self) -> Practice | None:
        """The lesson exercise the student worked on last: the one whose name the latest cell defines."""
        if not self.lesson:
            return None
        for cell in reversed(self.shell.history_manager.input_hist_raw):
            for practice in self.lesson.values():
                if practice.problem.function and _defines(cell, practice.problem.function):
                    return practice
        return None

    # ------------------------------------------------------------------ checking

    def _grade(self, problem: StudentProblem, code: str) -> tuple[GradeReport, str]:
        """The report, and a note on where it was graded when that matters to the student."""
        if self.remote is not None and self.remote.offers(problem.id):
            try:
                return self.remote.grade(problem.id, code), ""
            except GradingUnavailable as exc:
                unavailable = str(exc)
        else:
            unavailable = ""
        report = grade_student(problem, code)
        note = ""
        hidden = problem.hidden_total if problem.origin == "lesson" else 0
        if hidden:
            note = (f"This exercise also has {hidden} hidden test{'s' * (hidden != 1)}; they run when your "
                    "teacher grades it (or on your class's server), not here.")
        if unavailable:
            note = f"Checked here on the visible tests only: {unavailable} {note}".strip()
        return report, note

    @cell_magic
    def check(self, line: str, cell: str) -> None:
        """%%check: grade this cell against the current problem in the sandbox, then run it here."""
        problem = self._problem(cell)
        report, note = self._grade(problem, cell)
        kind = "info" if report.passed else "error"
        if report.passed:
            self.solved.add(problem.id)
        display(TutorPanel(f"Check: {problem.title}", report_markdown(report, note=note), kind=kind))
        if report.status == "completed":  # safe to define the function in the kernel too
            self.shell.run_cell(cell, store_history=False)

    @line_magic("check")
    def check_line(self, line: str) -> None:
        """%check: grade the latest cell that defines the problem's function."""
        panel = TutorPanel(f"Check: {self._problem().title}")
        display(panel)
        self._check_latest(panel)

    def _check_latest(self, panel: TutorPanel) -> None:
        problem = self._problem()
        code = self._latest_definition(problem.function)

        def task() -> tuple[Button, ...]:
            if code is None:
                raise ValueError(f"No cell defines `{problem.function}` yet: write it in a cell and run that cell.")
            panel.status = "Running the tests in the sandbox..."
            report, note = self._grade(problem, code)
            if report.passed:
                self.solved.add(problem.id)
            panel.set_markdown(report_markdown(report, note=note))
            panel.kind = "info" if report.passed else "error"
            panel.status = ""
            return self._buttons(panel)

        panel.run(task)

    def _latest_definition(self, function: str) -> str | None:
        for cell in reversed(self.shell.history_manager.input_hist_raw):  # as typed: magics not yet rewritten
            if _defines(cell, function) and not cell.lstrip().startswith(("%check", "%hint")):
                return re.sub(r"^\s*%%check[^\n]*\n", "", cell)
        return None

    def _problem(self, cell: str | None = None) -> StudentProblem:
        return self._practice(cell).problem

    def _practice(self, cell: str | None = None) -> Practice:
        if cell is not None:  # %%check in a lesson exercise's cell: the exercise it defines
            for practice in self.lesson.values():
                if practice.problem.function and _defines(cell, practice.problem.function):
                    return practice
        current = self._lesson_exercise() or self.current or next(iter(self.lesson.values()), None)
        if current is None:
            raise UsageError("there is no current problem: start one with %practice (in a lesson, run the "
                             "lesson's first cell, which loads the tutor).")
        return current

    # ------------------------------------------------------------------ hints

    @line_magic
    def hint(self, line: str) -> None:
        """%hint: the next rung of the hint ladder (nudge, concept, pseudo-code, partial code)."""
        self._refuse("hints")
        self._problem()
        panel = TutorPanel("Hint")
        display(panel)
        self._hint(panel)

    def _hint(self, panel: TutorPanel) -> None:
        practice = self._practice()
        code = self._latest_definition(practice.problem.function) or ""
        backend = self.ext.backend() if self.ext.has_chat_model else None

        def task() -> tuple[Button, ...]:
            # The model's hint is guarded against the solution, which the guard reads for this call only.
            problem = load_full(practice.problem) if backend is not None and code.strip() else practice.problem
            hint = next_hint(problem, practice.rung, self.policy, code=code, backend=backend)
            practice.rung += 1
            left = min(self.policy.max_hints, len(HINT_LADDER)) - practice.rung
            panel.title = f"Hint {hint.rung + 1}: {hint.name}"
            written_code = hint.source == "written" and hint.rung == len(HINT_LADDER) - 1
            panel.set_markdown(hint_markdown(hint.text, code=written_code))
            panel.status = f"{left} more hint{'s' if left != 1 else ''} for this exercise." if left else \
                "That was the last hint for this exercise."
            return self._buttons(panel)

        panel.run(task, busy=self.ext.busy(panel) if backend is not None and code.strip() else "Thinking...")


def _defines(cell: str, name: str) -> bool:
    """Whether `cell` defines `name`: a def or class of that name, or an assignment to it."""
    n = re.escape(name)
    pattern = rf"^\s*(?:(?:async\s+)?def\s+{n}\s*\(|class\s+{n}\b|{n}\s*=[^=])"
    return re.search(pattern, cell, re.MULTILINE) is not None

