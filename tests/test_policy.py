"""The policy's schema (strict types, unknown keys named, the line of every mistake), `tutor policy check`,
the strictest merge of two policies, the inline completer asking the policy first, and the guard finding a
solution in every form of code a reply can carry (checked in the real sandbox)."""

from __future__ import annotations

import json
import sys
import threading

import httpx
import nbformat
import pytest
from scripted import ScriptedBackend

from tutor.cli import main
from tutor.grading import load_bank
from tutor.server.completion import Completer, CompletionRequest
from tutor.settings import resolve_settings
from tutor.tutoring.guard import code_pieces, same_as_solution, withhold_solutions
from tutor.tutoring.policy import (
    FIELDS,
    STRICTEST,
    Layer,
    Policy,
    PolicyError,
    PolicyInForce,
    notebook_layer,
    parse_policy,
    policy_from_file,
)
from tutor.tutoring.practice import guard_reply

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")


def errors_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "course.json")
    return info.value.lines()


# ------------------------------------------------------------------ the schema

def test_types_are_checked_strictly_and_each_error_names_the_file_and_line():
    text = '{\n  "max_hints": 2,\n  "allow_solutions": "false",\n  "avoid_words": "max"\n}\n'
    assert errors_of(text) == [
        "course.json:3: 'allow_solutions' must be true or false (without quotes), not a string \"false\".",
        "course.json:4: 'avoid_words' must be a list of strings, not a string \"max\".",
    ]
    [hints] = errors_of('{"max_hints": "max"}')
    assert hints.startswith("course.json:1: 'max_hints' must be a whole number from 0 to 4")
    assert "'max_hints' must be a whole number" in errors_of('{"max_hints": true}')[0]  # a bool is no number
    assert "from 0 to 4" in errors_of('{"max_hints": 9}')[0]
    policy, keys = parse_policy('{"allow_solutions": true, "max_hints": 0}')
    assert policy.allow_solutions is True and policy.max_hints == 0 and keys == {"allow_solutions", "max_hints"}


def test_unknown_keys_and_features_say_did_you_mean():
    [key] = errors_of('{\n\n  "max_hint": 2\n}')
    assert key.startswith("course.json:3: unknown key 'max_hint'; did you mean 'max_hints'?")
    [feature] = errors_of('{"features": ["chat", "hint"]}')
    assert "'hint' (did you mean 'hints'?)" in feature and "completion" in feature


def test_bad_json_gives_its_line_and_duplicates_are_refused():
    [bad] = errors_of('{\n  "max_hints": 2,\n  "features": ["chat",]\n}')
    assert bad.startswith("course.json:3: not valid JSON")
    [twice] = errors_of('{\n "max_hints": 2,\n "max_hints": 4\n}')
    assert twice.startswith("course.json:3: the key 'max_hints' appears twice")
    assert errors_of("[]") == ["course.json:1: the policy must be a JSON object ({...}), not a list."]


def test_old_imports_keep_working():
    from tutor.tutoring import policy, practice

    assert practice.Policy is policy.Policy and practice.load_policy is policy.load_policy


def test_policy_check_prints_ok_or_the_errors_with_status_2(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"max_hints": 2, "features": ["explain", "hints"]}))
    assert main(["policy", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK {good}: solutions not allowed; up to 2 hints") and "off: fix, chat" in out
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "allow_solutions": "false",\n  "feautres": []\n}\n')
    assert main(["policy", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: 'allow_solutions' must be true or false" in err
    assert f"{bad}:3: unknown key 'feautres'; did you mean 'features'?" in err and "2 problems" in err
    assert main(["policy", "check", str(tmp_path / "missing.json")]) == 2
    assert "cannot read the policy file" in capsys.readouterr().err


# ------------------------------------------------------------------ strictest merge, fallback

def test_the_stricter_wins_per_field_and_status_says_where_each_part_came_from():
    course = Layer("file course.json", Policy(allow_solutions=True, max_hints=3, avoid_words=("max",)),
                   frozenset(FIELDS))
    lesson = notebook_layer({"tutor": {"policy": {"features": ["explain", "hints", "chat"], "max_hints": 1,
                                                  "avoid_words": ["sorted"]}}}, "loops.ipynb")
    state = PolicyInForce((course,)).with_layer(lesson)
    policy = state.policy
    assert policy.allow_solutions is True  # the lesson does not set it: the file's value stays
    assert policy.max_hints == 1 and policy.features == {"explain", "hints", "chat"}
    assert policy.avoid_words == ("max", "sorted")
    assert state.origin("allow_solutions") == "file course.json"
    assert state.origin("max_hints") == "notebook metadata of loops.ipynb"
    assert state.origin("avoid_words") == "file course.json; notebook metadata of loops.ipynb"
    assert PolicyInForce().origin("max_hints") == "default"
    # a lesson that says solutions are fine does not loosen a course that says no
    loose = notebook_layer({"tutor": {"policy": {"allow_solutions": True, "max_hints": 4}}}, "x.ipynb")
    strict = PolicyInForce((Layer("file c.json", Policy(max_hints=2), frozenset(FIELDS)),)).with_layer(loose)
    assert strict.policy.allow_solutions is False and strict.policy.max_hints == 2
    # a broken lesson policy counts as the strictest
    broken = notebook_layer({"tutor": {"policy": {"features": "none"}}}, "y.ipynb")
    assert broken.policy == STRICTEST and "has a mistake" in broken.source
    assert "max_hints: 1  [notebook metadata of loops.ipynb]" in state.describe()


def test_a_broken_file_gives_the_strictest_policy_and_a_notice(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text('{"allow_solutions": "false"}')
    state = policy_from_file(str(path))
    assert state.policy == STRICTEST and not state.allows("completion") and not state.allows("chat")
    assert "has a mistake" in state.notice and f"tutor policy check {path}" in state.notice
    assert f"{path}:1: 'allow_solutions'" in state.notice
    assert policy_from_file(None).policy == Policy()


# ------------------------------------------------------------------ inline completion asks the policy

def request(path: str) -> CompletionRequest:
    return CompletionRequest.from_json({"id": "r", "path": path, "cellId": "c", "before": "x = ", "after": ""})


def test_inline_completion_follows_the_notebooks_policy(tmp_path):
    policy = tmp_path / "course.json"
    policy.write_text(json.dumps({"max_hints": 2}))
    nb = nbformat.v4.new_notebook()
    nb.metadata["tutor"] = {"policy": {"features": ["explain", "hints"]}}
    nbformat.write(nb, tmp_path / "exam.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "free.ipynb")
    settings = resolve_settings(environ={"TUTOR_COMPLETION_MODEL": "scripted", "TUTOR_POLICY": str(policy)})
    completer = Completer(settings, root_dir=tmp_path, publish_environment=False)
    completer._backend = ScriptedBackend("42")
    assert list(completer.complete(request("free.ipynb"), threading.Event())) == ["42"]
    with pytest.raises(Exception, match="inline completion is turned off for this notebook") as info:
        list(completer.complete(request("exam.ipynb"), threading.Event()))
    assert info.value.status == 403 and "notebook metadata of exam.ipynb" in str(info.value)
    assert completer._backend.replies == []  # nothing more reached the model
    assert completer.policy_for("../outside.ipynb").allows("completion")  # outside the root: not read
    # a broken course file: the strictest policy, so no inline completion anywhere
    policy.write_text("{oops")
    broken = Completer(resolve_settings(environ={"TUTOR_COMPLETION_MODEL": "scripted", "TUTOR_POLICY": str(policy)}),
                       root_dir=tmp_path, publish_environment=False)
    broken._backend = ScriptedBackend("never")
    with pytest.raises(Exception, match="policy file has a mistake"):
        list(broken.complete(request("free.ipynb"), threading.Event()))


# ------------------------------------------------------------------ the guard

@pytest.fixture(scope="module")
def largest():
    return load_bank().get("largest")


RENAMED = ("def biggest(xs):\n    top = xs[0]\n    for x in xs[1:]:\n        if x > top:\n            top = x\n"
           "    return top\n")


def test_code_is_found_in_every_form_markdown_shows():
    text = ("Intro `inline()` text.\n\n```python\nfenced = 1\n```\n\n~~~\ntilde = 2\n~~~\n\n"
            "Para:\n\n    indented = 3\n\ndef f(x): return x\n")
    assert [(p.kind, p.code.strip()) for p in code_pieces(text)] == [
        ("inline", "inline()"), ("fence", "fenced = 1"), ("fence", "tilde = 2"), ("indented", "indented = 3"),
        ("plain", "def f(x): return x")]


def test_a_solution_is_the_same_up_to_names_lambdas_and_docstrings(largest):
    assert same_as_solution(RENAMED, largest)
    assert same_as_solution('def g(v):\n    """Doc."""\n    b = v[0]\n    for n in v[1:]:\n        if n > b:\n'
                            '            b = n\n    return b', largest)
    body = "best = numbers[0]\nfor n in numbers[1:]:\n    if n > best:\n        best = n\nreturn best"
    assert same_as_solution(body, largest)  # the body without its def
    assert not same_as_solution("best = numbers[0]", largest)

    class Tiny:  # a one-line reference: lambda and def are the same function
        solution, function = "def double(x):\n    return 2 * x\n", "double"

    assert same_as_solution("twice = lambda n: 2 * n", Tiny)
    assert same_as_solution("2 * y", Tiny)  # its returned expression, under another name


@linux_only
@pytest.mark.parametrize("reply", [
    f"Here:\n\n~~~python\n{RENAMED}~~~\n",  # a ~~~ fence, renamed
    "Indent it:\n\n" + "".join("    " + line + "\n" for line in RENAMED.splitlines()),  # an indented block
    "Just write `largest = lambda xs: sorted(xs)[-1]` and you are done.",  # inline, a lambda
    "Try `sorted(numbers)[-1]`.",  # an expression in the exercise's parameter
    "Use this:\n\n```\nfrom builtins import sorted as s\ndef top(v):\n    return s(v)[-1]\n```\n",  # an alias
    "def largest(numbers): return sorted(numbers)[-1]\n",  # as plain text
    f"Print it: `print({RENAMED!r})`",  # the solution's text in a string
])
def test_a_solution_in_any_form_is_withheld(largest, reply):
    guarded = guard_reply(reply, largest, Policy())
    assert guarded.withheld, guarded.text
    assert "sorted" not in guarded.text and "top = x" not in guarded.text and "removed" in guarded.text


@linux_only
def test_the_guard_keeps_other_code_and_bounds_its_runs(largest, monkeypatch):
    hint = "Start with `best = numbers[0]` and compare each `n` with `best`.\n\n```python\nprint(numbers)\n```\n"
    assert not guard_reply(hint, largest, Policy()).withheld and guard_reply(hint, largest, Policy()).text == hint
    import tutor.tutoring.guard as guard

    runs = []
    real = guard.check_solution
    monkeypatch.setattr(guard, "check_solution", lambda problem, code: runs.append(code) or real(problem, code))
    many = "\n".join(f"- `numbers[{i}] + {i}`" for i in range(12))
    text, removed, unchecked = withhold_solutions(many, largest)
    assert len(runs) == 8 and (removed, unchecked) == (4, 4)  # the rest withheld unchecked: fail closed
    assert text.count("code removed") == 4


def test_a_real_jupyter_server_refuses_inline_completion_where_the_notebook_says_so(tmp_path_factory, tiny_dirs):
    from test_server_ext import auth, base_env, body, start_server, status

    root = tmp_path_factory.mktemp("policy-server")
    exam = nbformat.v4.new_notebook()
    exam.metadata["tutor"] = {"policy": {"features": ["explain", "hints", "practice"]}}
    nbformat.write(exam, root / "exam.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), root / "free.ipynb")
    course = root / "course.json"
    course.write_text(json.dumps({"max_hints": 2}))
    env = {**base_env(), "TUTOR_COMPLETION_MODEL": str(tiny_dirs["2b"]), "TUTOR_POLICY": str(course)}
    app = start_server(root, env, tmp_path_factory.mktemp("config"))
    try:
        refused = httpx.post(f"{app.url}/tutor/complete", json=body(path="exam.ipynb"), headers=auth(app.token),
                             timeout=30)
        last = json.loads(refused.text.splitlines()[-1])
        assert last["done"] is True and last["error"]["kind"] == "policy_refused", last
        assert "notebook metadata of exam.ipynb" in last["error"]["message"]
        assert status(app.url, app.token)["worker_pid"] is None  # nothing was started for it
        free = httpx.post(f"{app.url}/tutor/complete", json=body(path="free.ipynb"), headers=auth(app.token),
                          timeout=120)
        last = json.loads(free.text.splitlines()[-1])
        assert last["done"] is True and "error" not in last, last
    finally:
        app.stop()
    course.write_text('{"features": ["chat"')  # broken: the strictest policy, said in the server's log
    app = start_server(root, env, tmp_path_factory.mktemp("config"))
    try:
        refused = httpx.post(f"{app.url}/tutor/complete", json=body(path="free.ipynb"), headers=auth(app.token),
                             timeout=30)
        assert json.loads(refused.text.splitlines()[-1])["error"]["kind"] == "policy_refused"
        assert "has a mistake" in app.log.read_text()
    finally:
        app.stop()
