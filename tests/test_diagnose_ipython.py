"""The diagnoses in a real IPython shell: cells compiled by IPython (its file names, its line cache), the
panel the extension shows for a lesson's stub and for a failed assert (issue 15: not a bare panel)."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tutor.kernel import TutorExtension
from tutor.lessons import STUB
from tutor.settings import resolve_settings
from tutor.tutoring import diagnose


@pytest.fixture
def shell():
    shell = InteractiveShell.instance()
    yield shell
    shell.reset()


def run(shell, source: str) -> BaseException | None:
    result = shell.run_cell(source, store_history=True, silent=False)
    return result.error_before_exec or result.error_in_exec


def test_a_test_cell_calling_a_lesson_stub_is_told_to_replace_the_stub(shell):
    assert run(shell, "def greet(name):\n    " + "\n    ".join(STUB) + "\n") is None
    test_cell = 'assert greet("Ada") == "Hello, Ada!"\n'
    error = run(shell, test_cell)
    assert isinstance(error, NotImplementedError)
    panel = TutorExtension(shell, resolve_settings(environ={})).error_panel(test_cell, error)
    assert panel.title == "The exercise greet is not written yet"
    assert "Replace `# YOUR CODE HERE` and `raise NotImplementedError()`" in panel.markdown
    assert "in the cell that defines `greet`" in panel.markdown


def test_a_failed_assert_shows_what_was_expected(shell):
    assert run(shell, "def double(x):\n    return x + 2\nresult = double(3)\n") is None
    test_cell = "assert result == 6\nassert double(3) == 6\n"
    error = run(shell, test_cell)
    assert isinstance(error, AssertionError)
    panel = TutorExtension(shell, resolve_settings(environ={})).error_panel(test_cell, error)
    assert panel.title.startswith("The check result == 6 is false on line 1")
    assert "`result` is `5`, but `6` was expected" in panel.markdown


def test_a_syntax_error_in_an_ipython_cell_with_a_magic(shell):
    cell = "%time x = 1\nfor i in range 3:\n    print(i)\n"
    error = run(shell, cell)
    assert isinstance(error, SyntaxError)
    found = diagnose(cell, error, shell.user_ns)
    assert found is not None and found.kind == "missing-parentheses" and found.line == 2
    assert "`for i in range(3):`" in found.suggestion


def test_a_name_error_in_a_function_from_an_earlier_cell(shell):
    assert run(shell, "def area(width, height):\n    return width * hieght\n") is None
    error = run(shell, "area(2, 3)\n")
    found = diagnose("area(2, 3)\n", error, shell.user_ns)
    assert (found.kind, found.line, found.suggestion) == ("name-typo", 1, "Did you mean `height`?")
