"""What the lab extension's Explain and Fix buttons run: tutor.kernel.lab in a real ipykernel, through
jupyter_client, sent silently as labextension/src/index.ts sends it, in a kernel without %load_ext."""

from __future__ import annotations

import pytest

from tests.test_kernel import WIDGET_MIME, error_of, kernel, panels
from tutor.kernel.lab import find_error, help_code

# labextension/test/logic.test.ts pins the same text for errorHelpCode: the two sides agree.
PINNED = ('__import__("tutor.kernel.lab", fromlist=["help_on_error"]).help_on_error(get_ipython(), '
          '"{\\"action\\":\\"explain\\",\\"source\\":\\"print(x)\\\\n\\",\\"ename\\":\\"NameError\\",'
          '\\"evalue\\":\\"name \'x\' is not defined\\",\\"traceback\\":[\\"\\\\u001b[31mNameError\\\\u001b[0m\\"]}")')


def test_the_kernel_code_is_the_lab_extensions_character_for_character():
    assert help_code({"action": "explain", "source": "print(x)\n", "ename": "NameError",
                      "evalue": "name 'x' is not defined", "traceback": ["\x1b[31mNameError\x1b[0m"]}) == PINNED


def request(action: str, source: str, error: dict) -> str:
    return help_code({"action": action, "source": source, "ename": error["ename"], "evalue": error["evalue"],
                      "traceback": error["traceback"]})


@pytest.fixture(scope="module")
def plain(tiny_dirs):
    """A kernel with a chat model in its environment, where nobody typed %load_ext tutor."""
    with kernel(TUTOR_CHAT_MODEL=str(tiny_dirs["7b-it"]), TUTOR_DEVICE="cpu") as k:
        yield k


def test_explain_on_an_error_of_a_kernel_without_the_tutor(plain):
    source = "numbers = [1, 2, 3]\nprint(numbers[5])"
    out = plain.run(source)
    error = error_of(out)
    assert not panels(out)  # no tutor in this kernel: the traceback only
    names = plain.run("print(sorted(k for k in globals() if not k.startswith('_')))")
    before = next(m["content"]["text"] for m in names if m["msg_type"] == "stream")

    help_out = plain.run(request("explain", source, error), silent=True, store_history=False)
    assert not [m for m in help_out if m["msg_type"] == "error"], help_out
    [panel] = panels(help_out)
    assert panel["metadata"] == {"tutor": {"panel": "error"}}  # the lab draws no buttons of its own then
    comm_id = panel["data"][WIDGET_MIME]["model_id"]
    state = plain.widgets[comm_id]
    # The kernel's own error, with its frames: the tutor read the list's length from them.
    assert "line 2" in state["title"] and "<code>numbers</code> has 3 items" in state["html"]
    state = plain.wait_for(comm_id, lambda s: s.get("state") in ("done", "failed"))
    assert state["state"] == "done", state.get("status")  # Explain more was pressed: the model answered
    assert len(state["html"]) > len("<code>numbers</code> has 3 items")

    # The silent call bound no names, took no execution count, and left the kernel's last error alone.
    after = plain.run("print(sorted(k for k in globals() if not k.startswith('_')))")
    assert next(m["content"]["text"] for m in after if m["msg_type"] == "stream") == before
    assert next(m["content"]["execution_count"] for m in after if m["msg_type"] == "execute_input") == 3
    counts = plain.run("import sys; print(type(sys.last_value).__name__)")
    assert next(m["content"]["text"] for m in counts if m["msg_type"] == "stream").strip() == "IndexError"
    # And the tutor is loaded now: the next failing cell gets its own panel, as after %load_ext tutor.
    assert panels(plain.run("len(5)"))


def test_fix_on_an_earlier_error_rebuilds_it_and_changes_no_code(plain):
    broken = "total = 0\nfor i in range(3)\n    total += i"
    earlier = error_of(plain.run(broken))
    plain.run("1 / 0")  # the kernel's last error is another one now
    out = plain.run(request("fix", broken, earlier), silent=True, store_history=False)
    [panel] = panels(out)
    comm_id = panel["data"][WIDGET_MIME]["model_id"]
    assert "colon" in (plain.widgets[comm_id]["title"] + plain.widgets[comm_id]["html"]).lower()
    state = plain.wait_for(comm_id, lambda s: s.get("state") in ("done", "failed"))
    # A random tiny model writes no fix that compiles: withheld; nothing was put in any cell.
    assert "No fix is shown" in state["status"]
    assert "insert" not in [b["id"] for b in state["buttons"]]
    assert not plain.payload()


def test_a_kernel_that_cannot_help_says_so_in_one_line(plain):
    out = plain.run('__import__("tutor.kernel.lab", fromlist=["help_on_error"]).help_on_error(get_ipython(), "{")',
                    silent=True, store_history=False)
    assert not [m for m in out if m["msg_type"] == "error"]
    [line] = [m["content"]["text"] for m in out if m["msg_type"] == "stream"]
    assert line.startswith("tutor: could not help with this error (JSONDecodeError")


class Shell:
    user_ns: dict = {}

    @staticmethod
    def transform_cell(source: str) -> str:
        return source


def test_an_error_that_is_not_the_last_one_is_rebuilt_from_its_output(monkeypatch):
    monkeypatch.setattr("sys.last_value", None, raising=False)
    monkeypatch.setattr("sys.last_exc", None, raising=False)
    traceback = ["\x1b[31m---------\x1b[0m", "\x1b[31mKeyError\x1b[0m: 'age'"]
    error, report = find_error(Shell(), "person = {}\nperson['age']", "KeyError", "'age'", traceback)
    assert type(error) is KeyError and error.args == ("age",)  # as raised: the key, not its repr
    assert report is not None and "\x1b" not in report and report.endswith("KeyError: 'age'")
    error, _ = find_error(Shell(), "if True\n    pass", "SyntaxError", "expected ':'", [])
    assert isinstance(error, SyntaxError) and error.lineno == 1  # compiled again: the real one
    error, _ = find_error(Shell(), "np.zeros(-1)", "ValueError", "negative dimensions", [])
    assert type(error) is ValueError
    error, _ = find_error(Shell(), "pd.read_csv('x')", "ParserError", "bad line", [])
    assert type(error).__name__ == "ParserError" and str(error) == "bad line"
