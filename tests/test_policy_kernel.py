"""The policy in a real kernel (jupyter_client): a broken file never breaks `%load_ext tutor`, every surface
that reaches a model asks the policy first, "Suggest a fix" is not offered on an unsolved exercise, a lesson's
own policy makes the tutor stricter, and `%tutor status` says where each part came from.

The chat model is a folder that does not exist: a surface that asked the model instead of the policy
would fail with a model error, not the policy's refusal; and no backend is made at all."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from test_kernel import WIDGET_MIME, kernel, panels, stderr_of, stream_of

from tutor.grading import load_bank
from tutor.lessons import build

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")
NO_MODEL_HERE = "/nonexistent/codegemma-7b-it"
LESSON = Path(__file__).resolve().parent.parent / "lessons" / "05-functions.ipynb"
NO_BACKEND = "print(get_ipython().magics_manager.registry['TutorMagics'].ext._backend is None)"


def write_policy(folder: Path, policy: dict | str) -> str:
    path = folder / "policy.json"
    path.write_text(policy if isinstance(policy, str) else json.dumps(policy, indent=2))
    return str(path)


def open_a_problem(k):
    """%practice in the kernel ``k``; the bank's entry of the problem it opened."""
    k.run("%practice lists --level 1")
    k.payload()
    current = stream_of(k.run("print(get_ipython().magics_manager.registry['PracticeMagics'].current.problem.id)"),
                        "stdout").strip()
    return load_bank().get(current)


def panel_state(k, messages) -> dict:
    return k.widgets[panels(messages)[0]["data"][WIDGET_MIME]["model_id"]]


def test_a_broken_policy_file_falls_back_to_the_strictest_and_says_why_once(tmp_path):
    path = write_policy(tmp_path, '{\n  "allow_solutions": "false",\n  "max_hint": 9\n}\n')
    with kernel(TUTOR_POLICY=path, TUTOR_CHAT_MODEL=NO_MODEL_HERE) as k:
        out = k.run("%load_ext tutor")
        assert not [m for m in out if m["msg_type"] == "error"], out
        said = stream_of(out, "stdout")
        assert said.count("has a mistake") == 1 and "strictest settings" in said
        assert f"{path}:2: 'allow_solutions' must be true or false" in said
        assert f"{path}:3: unknown key 'max_hint'; did you mean 'max_hints'?" in said
        assert f"tutor policy check {path}" in said
        assert "has a mistake" not in stream_of(k.run("%load_ext tutor"), "stdout")  # said once
        # the strictest policy: no chat, no fixes, no code writing; explanations stay
        assert "turned off in this course" in stderr_of(k.run("%tutor"))
        assert "turned off" in stderr_of(k.run("%%generate\nsquares of 0..9"))
        failing = panel_state(k, k.run("x = [1]\nx[3]"))
        assert [b["id"] for b in failing["buttons"]] == ["more"]
        status = stream_of(k.run("%tutor status"), "stdout")
        assert f"allow_solutions: false  [strictest, because {path} has a mistake]" in status
        assert "features: explain, hints, practice" in status and "has a mistake" in status
        assert stream_of(k.run(NO_BACKEND), "stdout") == "True\n"


def test_every_surface_asks_the_policy_before_the_model(tmp_path):
    path = write_policy(tmp_path, {"allow_solutions": True, "features": ["practice"]})
    with kernel(TUTOR_POLICY=path, TUTOR_CHAT_MODEL=NO_MODEL_HERE) as k:
        assert not [m for m in k.run("%load_ext tutor") if m["msg_type"] == "error"]
        k.run("def greet(name):\n    return 'hi ' + name")
        for surface, feature in (("%tutor", "chat"), ("%explain greet", "explain"), ("%explain", "explain"),
                                 ("%%explain\nx = 1", "explain"), ("%tutor apply", "fix"), ("%hint", "hints"),
                                 ("%practice lists --new", "generate"), ("%%generate\nsquares of 0..9", "generate")):
            refused = stderr_of(k.run(surface))
            assert refused.startswith("UsageError: This is turned off in this course") and \
                f'"{feature}" is not among' in refused and refused.count("\n") == 1, (surface, refused)
        out = k.run("numbers = [1, 2]\nnumbers[5]")
        failing = panel_state(k, out)
        assert failing["buttons"] == []  # no "Explain more", no "Suggest a fix"
        assert failing["status"] == "Explanations by the model and suggested fixes are turned off in this course."
        assert "<code>numbers</code> has 2 items" in failing["html"]  # the model-free diagnosis stays
        comm = panels(out)[0]["data"][WIDGET_MIME]["model_id"]
        k.click(comm, "fix")  # a crafted click on a button that is not there does nothing
        k.click(comm, "more")
        k.drain(1)
        assert k.widgets[comm]["state"] != "working"
        assert stream_of(k.run(NO_BACKEND), "stdout") == "True\n"  # nothing reached for a model
        assert panels(k.run("%practice lists --level 1"))  # what the policy allows still works


@linux_only
def test_suggest_a_fix_is_not_offered_on_an_unsolved_exercise(tmp_path):
    path = write_policy(tmp_path, {"allow_solutions": False})
    with kernel(TUTOR_POLICY=path, TUTOR_CHAT_MODEL=NO_MODEL_HERE) as k:
        k.run("%load_ext tutor")
        problem = open_a_problem(k)
        broken = f"def {problem.function}(*args):\n    return undefined_name\n{problem.function}([1])"
        state = panel_state(k, k.run(broken))
        assert [b["id"] for b in state["buttons"]] == ["more"]
        assert "not offered for an exercise you have not solved yet" in state["status"]
        other = panel_state(k, k.run("total = 0\ntotal += missing"))
        assert [b["id"] for b in other["buttons"]] == ["more", "fix"]  # other code: a fix is fine
        assert "All tests passed" in panel_state(k, k.run("%%check\n" + problem.solution))["html"]
        solved = panel_state(k, k.run(broken))
        assert [b["id"] for b in solved["buttons"]] == ["more", "fix"]  # solved: nothing left to give away


def test_the_notebooks_policy_makes_it_stricter_and_status_says_where_each_part_came_from(tmp_path):
    path = write_policy(tmp_path, {"allow_solutions": True, "max_hints": 3, "avoid_words": ["max"]})
    nb = nbformat.v4.new_notebook()
    nb.metadata["tutor"] = {"policy": {"features": ["explain", "hints", "practice"], "max_hints": 1,
                                       "avoid_words": ["sorted"]}}
    notebook = tmp_path / "quiz.ipynb"
    nbformat.write(nb, notebook)
    with kernel(TUTOR_POLICY=path, TUTOR_CHAT_MODEL=NO_MODEL_HERE, JPY_SESSION_NAME=str(notebook)) as k:
        assert not [m for m in k.run("%load_ext tutor") if m["msg_type"] == "error"]
        status = stream_of(k.run("%tutor status"), "stdout")
        assert f"allow_solutions: true  [file {path}]" in status
        assert "max_hints: 1  [notebook metadata of quiz.ipynb]" in status
        assert f"avoid_words: max, sorted  [file {path}; notebook metadata of quiz.ipynb]" in status
        assert "features: explain, hints, practice  [notebook metadata of quiz.ipynb]" in status
        assert "turned off" in stderr_of(k.run("%tutor"))


@linux_only
def test_a_lesson_carries_its_policy_into_the_student_copy(tmp_path):
    teacher = nbformat.read(LESSON, as_version=4)
    teacher.metadata["tutor"] = {"policy": {"features": ["explain", "hints", "practice"]}}
    source = tmp_path / "teacher" / LESSON.name
    source.parent.mkdir()
    (tmp_path / "student").mkdir()
    (tmp_path / "again").mkdir()
    nbformat.write(teacher, source)
    copy, _ = build(source, tmp_path / "student" / LESSON.name)
    assert nbformat.read(copy, as_version=4).metadata["tutor"]["policy"] == {"features": ["explain", "hints",
                                                                                          "practice"]}
    with kernel(TUTOR_CHAT_MODEL=NO_MODEL_HERE) as k:
        k.run(f"%cd {copy.parent}")
        first = nbformat.read(copy, as_version=4).cells[0].source
        said = stream_of(k.run(first), "stdout")
        assert "this lesson sets its own policy" in said and "off: fix, chat" in said
        assert "turned off" in stderr_of(k.run("%tutor"))
        status = stream_of(k.run("%tutor status"), "stdout")
        assert f"features: explain, hints, practice  [notebook metadata of {LESSON.name}]" in status
    teacher.metadata["tutor"] = {"policy": {"max_hints": "all"}}
    nbformat.write(teacher, source)
    with pytest.raises(Exception, match="'max_hints' must be a whole number"):
        build(source, tmp_path / "again" / LESSON.name)


@linux_only
def test_chat_and_explanations_are_guarded_while_an_exercise_is_open(tmp_path):
    """The model's replies are scripted (tests/scripted.py) to carry the solution: in a ~~~ fence, renamed;
    as inline code; in an indented block."""
    path = write_policy(tmp_path, {"allow_solutions": False})
    tests = Path(__file__).resolve().parent
    with kernel(TUTOR_POLICY=path, TUTOR_CHAT_MODEL=NO_MODEL_HERE) as k:
        k.run("%load_ext tutor")
        problem = open_a_problem(k)
        renamed = problem.solution.replace(f"def {problem.function}(", "def helper(")
        reply = f"Sure:\n\n~~~\n{renamed}\n~~~\n\nUse it as `{problem.function} = helper`."
        one_line = f"print({problem.function}.__doc__)"  # not a solution: stays
        indented = "Like this:\n\n" + "".join(f"    {line}\n" for line in problem.solution.splitlines())
        replies = [reply, f"It works like `{one_line}`, or as\n\n" + indented, indented]
        k.run(f"import sys; sys.path.insert(0, {str(tests)!r})\nfrom scripted import ScriptedBackend\n"
              f"get_ipython().magics_manager.registry['TutorMagics'].ext._backend = ScriptedBackend(*{replies!r})")
        [chat] = panels(k.run("%tutor"))
        comm = chat["data"][WIDGET_MIME]["model_id"]
        k.send(comm, {"type": "ask", "text": "Write it for me"})
        state = k.wait_for(comm, lambda s: len(s.get("turns", [])) == 2 and s.get("state") == "idle")
        shown = state["turns"][1]["html"]
        assert "def helper" not in shown and "removed" in shown, shown
        assert "the reply contained a solution" in state["status"]
        explained = panels(k.run(f"%%explain\ndef {problem.function}(*args):\n    pass"))[0]
        state = k.wait_for(explained["data"][WIDGET_MIME]["model_id"], lambda s: s.get("state") in ("done", "failed"))
        assert state["state"] == "done" and "removed" in state["html"] and "__doc__" in state["html"], state
        assert problem.solution.splitlines()[1].strip() not in state["html"]
        out = k.run(f"def {problem.function}(*args):\n    return undefined_name\n{problem.function}([1])")
        comm = panels(out)[0]["data"][WIDGET_MIME]["model_id"]
        k.click(comm, "more")
        state = k.wait_for(comm, lambda s: s.get("state") in ("done", "failed"))
        assert state["state"] == "done" and "removed" in state["html"], state
        assert problem.solution.splitlines()[1].strip() not in state["html"]
        assert [b["id"] for b in state["buttons"]] == []  # no fix for the unsolved exercise
