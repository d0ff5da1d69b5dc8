"""The grading channel cannot be forged: what the student's process writes on it is bounded, parsed
strictly, and for hidden runs never shown. Each test is an attack a student tried (issue 13)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tutor.grading import Case, Limits, grade, load_problems, run_code
from tutor.grading.grade import HIDDEN_MESSAGES

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")
FAST = Limits(cpu_seconds=2, wall_seconds=6)
SECRET = 987_654_321  # appears only in hidden expected values and hidden arguments

# The student's code finds the harness's result fd in its own command line, as a curious student would.
FORGE = """
import json, os, sys
FD = json.loads(sys.argv[-1])["result_fd"]
def say(data):
    os.write(FD, data if isinstance(data, bytes) else (json.dumps(data) + "\\n").encode())
"""


@pytest.fixture(scope="module")
def secret_problem(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "secret.json"
    path.write_text(json.dumps({
        "id": "triple", "title": "Triple", "topic": "functions", "level": 1,
        "statement": "Write `triple(n)`.", "function": "triple", "starter": "def triple(n):\n    ...\n",
        "solution": "def triple(n):\n    return 3 * n\n",
        "public_tests": [{"args": [2], "expected": 6}, {"args": [0], "expected": 0}],
        "hidden_tests": [{"args": [SECRET], "expected": 3 * SECRET}, {"args": [-SECRET], "expected": -3 * SECRET}],
        "hints": ["a", "b", "c", "d"],
    }), encoding="utf-8")
    [problem] = load_problems(path)
    return problem


def leaks(report) -> bool:
    text = report.feedback() + report.output + report.message + repr(report)
    return str(SECRET) in text


def test_forged_result_lines_carrying_the_hidden_calls_are_never_shown(secret_problem):
    code = FORGE + textwrap.dedent("""
        def triple(n):
            if n in (2, 0):
                return 3 * n
            # a hidden call: try to smuggle its argument out in every shape the grader ever showed
            say({"event": "result", "ok": False, "error": f"hidden arg {n}", "kind": "error", "line": 1,
                 "traceback": f"{n}"})
            say({"event": "result", "ok": True, "repr": repr(str(n)), "truncated": False})
            say({"event": "load_error", "error": f"{n}", "kind": "error", "line": 1, "traceback": ""})
            say({"event": "done"})
            return 3 * n
    """)
    report = grade(secret_problem, code, FAST)
    assert not leaks(report), report
    assert report.public_passed == 2 and report.hidden_passed == 0
    assert report.status == "interfered" and report.message == HIDDEN_MESSAGES["interfered"]


def test_a_forged_sandbox_error_is_the_students_own_doing_not_a_setup_error(secret_problem):
    code = FORGE + "say({'event': 'sandbox_error', 'message': 'STUDENT TEXT'})\n" \
                   "def triple(n):\n    return 3 * n\n"
    report = grade(secret_problem, code, FAST)  # no SandboxError: that is for the teacher's setup only
    assert report.status == "interfered"
    assert "STUDENT TEXT" not in report.feedback() + report.message
    direct = run_code(code, [Case(call="triple(1)")], FAST)
    assert direct.status == "interfered" and direct.stopped_by == "protocol"


@pytest.mark.parametrize("exit_code", [44, 200])
def test_an_odd_exit_in_the_hidden_run_is_reported_by_a_fixed_sentence(secret_problem, exit_code):
    code = f"import os\ndef triple(n):\n    if n not in (2, 0):\n        os._exit({exit_code})\n    return 3 * n\n"
    report = grade(secret_problem, code, FAST)  # never raises
    assert report.public_passed == 2 and report.hidden_passed == 0
    assert report.status == "crashed" and report.message == HIDDEN_MESSAGES["crashed"]
    assert str(exit_code) not in report.feedback()
    public = run_code(code, [Case(call="triple(7)")], FAST)  # in a public run it is the student's own
    assert public.status == "crashed" and f"exit code {exit_code}" in public.message


def test_a_signal_number_no_signal_has_is_reported_not_raised():
    from tutor.grading.sandbox import signal_name

    assert signal_name(72) == "signal 72" and signal_name(11) == "SIGSEGV"


def test_a_forged_14_mb_reply_is_refused_with_the_graders_memory_bounded():
    # A 14 MB list literal: parsed, it would be millions of objects in the grading process.
    script = textwrap.dedent(f"""
        import resource
        from tutor.grading import Case, Limits, run_code
        limits = Limits(cpu_seconds=4, wall_seconds=20)
        forge = {FORGE!r} + '''
        def attack():
            say(b'{{"event": "result", "ok": true, "truncated": false, "repr": "[' + b'1,' * 7_000_000 + b']"}}\\\\n')
            return 0
        '''
        run_code("x = 1", [Case(call="x")], limits)  # warm: imports and a first run
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = run_code(forge, [Case(call="attack()")], limits)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(result.status, result.stopped_by, (after - before) // 1024)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    status, stopped_by, grown_mb = done.stdout.split()
    assert (status, stopped_by) == ("interfered", "protocol")
    assert int(grown_mb) < 32, f"the grading process grew by {grown_mb} MB"


def test_a_200000_deep_line_ends_the_run_instead_of_raising():
    code = FORGE + "def attack():\n    say(b'[' * 200_000 + b'\\n')\n    return 1\n"
    result = run_code(code, [Case(call="attack()")], FAST)
    assert result.status == "interfered" and result.stopped_by == "protocol"


def test_a_deeply_nested_repr_is_a_failed_test_not_an_error(secret_problem):
    code = "class Deep:\n    def __repr__(self):\n        return '[' * 99_999\ndef triple(n):\n    return Deep()\n"
    report = grade(secret_problem, code, FAST)
    assert report.public_passed == 0 and report.status == "completed"


def test_extra_replies_and_wrong_shapes_are_refused():
    cases = {
        "an extra reply": "say({'event': 'ready'})\n",
        "unknown keys": "say({'event': 'ready', 'note': 1})\n",
        "a wrong type": "say({'event': 'result', 'ok': True, 'repr': 5, 'truncated': False})\n",
        "a kind we never send": "say({'event': 'result', 'ok': False, 'error': 'x', 'kind': 'gold', "
                                "'line': None, 'traceback': ''})\n",
        "not JSON": "say(b'hello\\n')\n",
    }
    for name, line in cases.items():
        result = run_code(FORGE + line + "x = 1\n", [Case(call="x")], FAST)
        assert result.status == "interfered", (name, result)


def test_the_control_channel_is_out_of_the_students_reach():
    # The launcher's own fd (isolation, setup errors, the exit status) is not among the child's.
    code = ("import json, os, sys\ncfg = json.loads(sys.argv[-1])\n"
            "fds = sorted(int(f) for f in os.listdir('/proc/self/fd'))\n")
    result = run_code(code, [Case(call="fds"), Case(call="cfg['result_fd']")], FAST)
    fds, result_fd = eval(result.outcomes[0].repr), int(result.outcomes[1].repr)
    # stdin, stdout, stderr, the result fd and the one listdir opened: nothing else
    assert len(set(fds) - {0, 1, 2, result_fd}) == 1, fds
