"""%%generate in a real ipykernel through jupyter_client: the real model worker, the new cell below
(set_next_input with replace=False, never over the student's cell), and the policy's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_kernel import WIDGET_MIME, kernel, panels, stderr_of

TESTS = Path(__file__).resolve().parent
SQUARES = "squares = [n * n for n in range(10)]\nprint(squares)\n"


def _next_inputs(k) -> list[dict]:
    return [p for p in k.payload() if p.get("source") == "set_next_input"]


@pytest.fixture(scope="module")
def open_kernel(tiny_dirs, tmp_path_factory):
    policy = tmp_path_factory.mktemp("policy") / "policy.json"
    policy.write_text(json.dumps({"allow_solutions": True}))
    with kernel(TUTOR_CHAT_MODEL=str(tiny_dirs["7b-it"]), TUTOR_DEVICE="cpu", TUTOR_POLICY=str(policy)) as k:
        assert not [m for m in k.run("%load_ext tutor") if m["msg_type"] == "error"]
        yield k


def test_generate_with_the_real_model_is_checked_before_it_is_offered(open_kernel):
    k = open_kernel
    out = k.run("%%generate --chat\nthe squares of 0 to 9 in a list", timeout=300)
    assert not [m for m in out if m["msg_type"] == "error"]
    [panel] = panels(out)
    state = k.widgets[panel["data"][WIDGET_MIME]["model_id"]]
    offered = _next_inputs(k)
    # tiny random weights write noise: offered only if it compiles, and then in a new cell
    assert state["state"] in ("done", "failed"), state
    if state["state"] == "done":
        [payload] = offered
        assert payload["replace"] is False
        compile(payload["text"], "<offered>", "exec")
    else:
        assert offered == [] and "No code is offered" in state["status"], state


def test_checked_code_goes_into_a_new_cell_below(open_kernel):
    k = open_kernel
    reply = "```python\n" + SQUARES + "```"
    setup = (f"import sys; sys.path.insert(0, {str(TESTS)!r})\nfrom scripted import ScriptedBackend\n"
             "from tutor.kernel import _loaded\next = _loaded[id(get_ipython())]\next.close()\n"
             f"ext._backend = ScriptedBackend({reply!r})")
    assert not [m for m in k.run(setup) if m["msg_type"] == "error"]
    out = k.run("%%generate --chat\nthe squares of 0 to 9, printed")
    [payload] = _next_inputs(k)
    assert payload == {"source": "set_next_input", "text": SQUARES, "replace": False}
    state = k.widgets[panels(out)[0]["data"][WIDGET_MIME]["model_id"]]
    assert state["state"] == "done" and "new cell below" in state["status"]
    assert "squares" in state["html"]


def test_refused_for_the_exercise_and_when_solutions_are_not_allowed(open_kernel):
    k = open_kernel
    k.run("%practice lists --level 1")
    k.payload()
    function = k.run("print(get_ipython().magics_manager.registry['PracticeMagics'].current.problem.function)")
    name = next(m["content"]["text"].strip() for m in function if m["msg_type"] == "stream")
    refused = stderr_of(k.run(f"%%generate --chat\nwrite {name} please"))
    assert refused.startswith("UsageError: That is your current exercise") and refused.count("\n") == 1
    assert _next_inputs(k) == []
    k.run("from tutor.tutoring.practice import Policy\n"
          "get_ipython().magics_manager.registry['PracticeMagics'].policy = Policy()")
    off = stderr_of(k.run("%%generate --chat\nthe squares of 0 to 9"))
    assert off.startswith("UsageError: Writing code for you is off") and "allow_solutions" in off
