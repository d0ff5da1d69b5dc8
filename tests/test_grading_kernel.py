"""Grading from a student's real kernel: what the magics hold, lesson exercises, the class server's grading,
and %practice --new's bounded wait. A real ipykernel (jupyter_client) and a real `tutor serve`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import nbformat
import pytest
from conftest import start_server
from test_kernel import WIDGET_MIME, kernel, panels, stream_of

from tutor.lessons import build

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")
LESSON = Path(__file__).resolve().parent.parent / "lessons" / "05-functions.ipynb"
SECRET = 987_654_321


def html_of(k, messages) -> str:
    return "\n".join(k.widgets[p["data"][WIDGET_MIME]["model_id"]].get("html", "") for p in panels(messages))


def teacher_solutions(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells if "### BEGIN SOLUTION" in c.source]


WALK = """
import dataclasses
def walk(obj, seen=None, depth=0):
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 12:
        return
    seen.add(id(obj))
    if isinstance(obj, str):
        yield obj
        return
    if isinstance(obj, dict):
        items = list(obj.keys()) + list(obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = list(obj)
    elif dataclasses.is_dataclass(obj):
        items = [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    elif hasattr(obj, '__dict__') and type(obj).__module__.startswith('tutor'):
        items = list(vars(obj).values())
    else:
        return
    for item in items:
        yield from walk(item, seen, depth + 1)
registry = get_ipython().magics_manager.registry['PracticeMagics']
text = '\\n'.join(walk(registry))
"""


def test_the_magics_hold_no_solution_and_no_hidden_test():
    from tutor.grading import load_bank

    with kernel() as k:
        assert not [m for m in k.run("%load_ext tutor") if m["msg_type"] == "error"]
        k.run("%practice lists --level 1")
        k.run(WALK)
        current = stream_of(k.run("print(registry.current.problem.id)"), "stdout").strip()
        problem = load_bank().get(current)
        k.run(f"found = [s for s in {[problem.solution.strip()] + [c.shown for c in problem.hidden_tests]!r} "
              "if s in text]")
        assert stream_of(k.run("print(found, len(text) > 1000)"), "stdout").strip() == "[] True"
        # and nothing that could answer for it: no object in the registry has a solution or hidden tests
        out = k.run("print(any(hasattr(p, 'solution') or hasattr(p, 'hidden_tests') for p in "
                    "[registry.current.problem, *registry.bank]))")
        assert stream_of(out, "stdout").strip() == "False"


def test_practice_new_waits_a_bounded_time_and_puts_the_starter_in_a_new_cell(tiny_dirs):
    with kernel(TUTOR_CHAT_MODEL=str(tiny_dirs["7b-it"]), TUTOR_DEVICE="cpu") as k:
        k.run("%load_ext tutor")
        k.run("get_ipython().magics_manager.registry['PracticeMagics'].new_problem_seconds = 0.2")
        out = k.run("%practice loops --new", timeout=120)
        [payload] = [p for p in k.payload() if p.get("source") == "set_next_input"]
        assert payload["text"].startswith("%%check\ndef ")
        [panel] = panels(out)
        state = k.widgets[panel["data"][WIDGET_MIME]["model_id"]]
        assert "(from the problem bank: " in state["title"] and state["status"] == ""
        assert "Writing a problem" not in state["status"]


@pytest.fixture(scope="module")
def lesson_copy(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("student")
    out, _ = build(LESSON, folder / LESSON.name)
    return out


def test_hint_and_check_work_on_a_lesson_exercise(lesson_copy):
    student = nbformat.read(lesson_copy, as_version=4)
    first, *solutions = [student.cells[0].source] + teacher_solutions(LESSON)
    with kernel() as k:
        k.run(f"%cd {lesson_copy.parent}")
        out = stream_of(k.run(first), "stdout")
        assert "3 exercises in this lesson" in out, out
        hint = panels(k.run("%hint"))[0]  # before writing anything: the first exercise
        state = k.wait_for(hint["data"][WIDGET_MIME]["model_id"], lambda s: s.get("state") in ("done", "failed"))
        assert state["state"] == "done" and state["title"] == "Hint 1: nudge", state

        wrong = solutions[0].replace("{greeting}, {name}!", "{name}")
        k.run(wrong)
        check = panels(k.run("%check"))[0]
        state = k.wait_for(check["data"][WIDGET_MIME]["model_id"], lambda s: s.get("state") in ("done", "failed"))
        assert "Not yet" in state["html"] and "greet('Ada')" in state["html"]
        assert "2 hidden tests" in state["html"]  # said, and not run here: the student copy has none

        report = html_of(k, k.run("%%check\n" + solutions[0]))
        assert "All tests passed" in report
        assert stream_of(k.run("print(greet('Ada'))"), "stdout") == "Hello, Ada!\n"


@pytest.fixture(scope="module")
def class_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    (folder / LESSON.name).write_bytes(LESSON.read_bytes())
    (folder / "secret.json").write_text(json.dumps({
        "id": "triple", "title": "Triple", "topic": "functions", "level": 1, "statement": "Write `triple(n)`.",
        "function": "triple", "starter": "def triple(n):\n    ...\n", "solution": f"def triple(n):\n    # {SECRET}\n"
        "    return 3 * n\n", "public_tests": [{"args": [2], "expected": 6}],
        "hidden_tests": [{"args": [SECRET], "expected": 3 * SECRET}], "hints": ["a", "b", "c", "d"]}))
    proc, url = start_server("--problems", str(folder), "--token", "class-token")
    yield url, "class-token"
    proc.terminate()
    proc.wait(timeout=30)


def test_the_class_server_grades_and_keeps_the_hidden_tests(class_server):
    url, token = class_server
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/v1/grading/problems", timeout=10).status_code == 401
    listing = httpx.get(f"{url}/v1/grading/problems", headers=auth, timeout=10)
    assert listing.status_code == 200 and str(SECRET) not in listing.text
    ids = {p["id"] for p in listing.json()["data"]}
    assert {"triple", "lesson_05_functions_1"} <= ids

    def post(body):
        return httpx.post(f"{url}/v1/grading/grade", headers=auth, json=body, timeout=60)

    right = post({"problem": "triple", "code": "def triple(n):\n    return n * 3\n"}).json()
    assert right["passed"] and (right["hidden_passed"], right["hidden_total"]) == (1, 1)
    spy = "def triple(n):\n    print(n)\n    raise ValueError(n)\n"
    leaked = post({"problem": "triple", "code": spy})
    assert leaked.status_code == 200 and str(SECRET) not in leaked.text
    assert post({"problem": "nope", "code": "x"}).status_code == 404
    assert post({"problem": "triple", "code": "x" * 200_001}).status_code in (400, 413)
    assert post({"problem": "triple"}).status_code == 400


def test_check_in_a_class_is_graded_on_the_server(class_server, lesson_copy):
    url, token = class_server
    student = nbformat.read(lesson_copy, as_version=4)
    solution = teacher_solutions(LESSON)[0]
    with kernel(TUTOR_ENDPOINT=url, TUTOR_TOKEN=token) as k:
        k.run(f"%cd {lesson_copy.parent}")
        k.run(student.cells[0].source)
        report = html_of(k, k.run("%%check\n" + solution))
        # the hidden tests exist only on the server: their count in the report is the server's
        assert "All tests passed" in report and "Hidden tests (you cannot see them): 2 of 2 passed" in report


@pytest.mark.parametrize("mode", ["auto", "native"])
def test_tutor_status_says_what_grading_protects_here(mode):
    env = {"TUTOR_SANDBOX": mode} if mode == "native" else {}
    with kernel(**env) as k:
        k.run("%load_ext tutor")
        status = stream_of(k.run("%tutor status"), "stdout")
    [line] = [s for s in status.splitlines() if "grading sandbox:" in s]
    if mode == "native":
        assert "native" in line and "not protected: the code can read every file" in status
    else:
        from tutor.grading import sandbox_report

        assert sandbox_report().mode in line
        assert ("every protection is in force" in status) == (not sandbox_report().limitations)
