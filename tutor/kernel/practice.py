"""%practice, %%check / %check and %hint: practice problems graded in the sandbox."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ..grading import HINT_LADDER, GradeReport, Problem, grade, load_bank
from ..tutoring.practice import Policy, generate_problem, load_policy, next_hint, pick_problem
from ..widgets import Button, TutorPanel
from .extension import TutorExtension


@dataclass
class Practice:
    problem: Problem
    rung: int = 0  # the next hint's rung


def report_markdown(report: GradeReport) -> str:
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
    return "\n".join(lines)


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|").replace("`", "'")[:120]


@magics_class
class PracticeMagics(Magics):
    def __init__(self, shell: Any, extension: TutorExtension):
        super().__init__(shell)
        self.ext = extension
        self.bank = load_bank()
        self.current: Practice | None = None
        self.policy = load_policy(extension.settings.policy) if extension.settings.policy else Policy()

    @magic_arguments()
    @argument("topic", nargs="?", help="strings, loops, functions, lists, dicts, ... (default: any)")
    @argument("--level", type=int, choices=[1, 2, 3], help="1 (first steps) to 3 (harder)")
    @argument("--new", action="store_true", help="ask the model for a new problem (checked before it is shown)")
    @line_magic
    def practice(self, line: str) -> None:
        """%practice [topic] [--level 1-3] [--new]: a practice problem; starter code goes in a new cell."""
        args = parse_argstring(self.practice, line)
        if not self.policy.allows("practice"):
            raise UsageError("practice problems are turned off for this course.")
        if args.topic in self.policy.avoid_topics:
            raise UsageError(f"the topic {args.topic!r} is not part of this course.")
        if args.new:
            if not (self.policy.allows("generate") and self.ext.has_chat_model):
                raise UsageError("new problems need the model and the course's permission; "
                                 "try %practice without --new.")
            panel = TutorPanel("A new practice problem")
            display(panel)

            def task() -> tuple[Button, ...]:
                panel.status = "Writing a problem and checking its own solution in the sandbox..."
                problem, source = generate_problem(self.ext.backend(), args.topic or "functions", args.level or 1,
                                                   bank=self.bank)
                self._show(problem, panel, note="" if source == "model" else "(from the problem bank)")
                return self._buttons(panel, copy_starter=True)

            panel.run(task)
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

    def _show(self, problem: Problem, panel: TutorPanel, note: str = "") -> None:
        self.current = Practice(problem)
        examples = "\n".join(f"- `{c.shown}` gives `{c.expected_shown}`" for c in problem.public_tests[:3])
        panel.title = f"{problem.title} ({problem.topic}, level {problem.level}) {note}".strip()
        panel.set_markdown(f"{problem.statement}\n\n**Examples**\n\n{examples}\n\nWrite `{problem.function}` in the "
                           "new cell below and run it: `%%check` on its first line grades it. `%hint` gives a hint.")

    def _buttons(self, panel: TutorPanel, copy_starter: bool = False) -> tuple[Button, ...]:
        problem = self.current.problem if self.current else None
        buttons = [Button("check", "Check", lambda: self._check_latest(panel)),
                   Button("hint", "Hint", lambda: self._hint(panel))]
        if copy_starter and problem is not None:
            buttons.append(Button("starter", "Copy starter code", copy=f"%%check\n{problem.starter}"))
        return tuple(buttons)

    # ------------------------------------------------------------------ checking

    @cell_magic
    def check(self, line: str, cell: str) -> None:
        """%%check: grade this cell against the current problem in the sandbox, then run it here."""
        problem = self._problem()
        report = grade(problem, cell)
        kind = "info" if report.passed else "error"
        display(TutorPanel(f"Check: {problem.title}", report_markdown(report), kind=kind))
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
            report = grade(problem, code)
            panel.set_markdown(report_markdown(report))
            panel.kind = "info" if report.passed else "error"
            panel.status = ""
            return self._buttons(panel)

        panel.run(task)

    def _latest_definition(self, function: str) -> str | None:
        pattern = re.compile(rf"^\s*def\s+{re.escape(function)}\s*\(", re.MULTILINE)
        for cell in reversed(self.shell.history_manager.input_hist_raw):  # as typed: magics not yet rewritten
            if pattern.search(cell):
                return re.sub(r"^\s*%%check[^\n]*\n", "", cell)
        return None

    def _problem(self) -> Problem:
        if self.current is None:
            raise UsageError("there is no current problem: start one with %practice.")
        return self.current.problem

    # ------------------------------------------------------------------ hints

    @line_magic
    def hint(self, line: str) -> None:
        """%hint: the next rung of the hint ladder (nudge, concept, pseudo-code, partial code)."""
        self._problem()
        panel = TutorPanel("Hint")
        display(panel)
        self._hint(panel)

    def _hint(self, panel: TutorPanel) -> None:
        practice = self.current
        assert practice is not None
        code = self._latest_definition(practice.problem.function) or ""
        backend = self.ext.backend() if self.ext.has_chat_model else None

        def task() -> tuple[Button, ...]:
            hint = next_hint(practice.problem, practice.rung, self.policy, code=code, backend=backend)
            practice.rung += 1
            left = min(self.policy.max_hints, len(HINT_LADDER)) - practice.rung
            panel.title = f"Hint {hint.rung + 1}: {hint.name}"
            panel.set_markdown(hint.text)
            panel.status = f"{left} more hint{'s' if left != 1 else ''} for this exercise." if left else \
                "That was the last hint for this exercise."
            return self._buttons(panel)

        panel.run(task)
