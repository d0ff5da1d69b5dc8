"""The sandbox contains hostile code, names what happened in plain words, and keeps working after."""

from __future__ import annotations

import os
import sys

import pytest

from tutor.grading import Case, Limits, run_code
from tutor.grading.bank import BANK_DIR

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")

# Tight limits keep the runaway cases quick on a shared two-core machine.
FAST = Limits(cpu_seconds=1, wall_seconds=3, memory_bytes=256 * 1024 * 1024, file_bytes=256 * 1024,
              output_bytes=64 * 1024)


def run(code: str, *calls: str, limits: Limits = FAST, **kwargs):
    return run_code(code, [Case(call=c) for c in calls], limits, **kwargs)


def assert_still_works():
    result = run("def add(a, b):\n    return a + b\n", "add(2, 3)")
    assert result.status == "completed", result
    assert result.outcomes[0].repr == "5"


def test_a_plain_run_returns_values_output_and_errors():
    result = run("def div(a, b):\n    print('dividing')\n    return a / b\n", "div(6, 3)", "div(1, 0)")
    assert result.status == "completed" and result.completed
    assert result.outcomes[0].ok and result.outcomes[0].repr == "2.0"
    failed = result.outcomes[1]
    assert not failed.ok and failed.error.startswith("ZeroDivisionError") and failed.line == 3
    assert "harness" not in failed.traceback  # only the student's frames are shown
    assert result.output == "dividing\ndividing\n"


def test_syntax_error_names_the_line():
    result = run("x = 1\ndef f(:\n    return 2\n", "f()")
    assert result.status == "syntax_error"
    assert result.syntax.line == 2
    assert "line 2" in result.message


def test_infinite_loop_runs_out_of_time():
    result = run("def spin():\n    while True:\n        pass\n", "spin()")
    assert result.status == "timeout"
    assert "ran out of time" in result.message
    assert result.seconds < FAST.wall_seconds + 1.5
    assert_still_works()


def test_sleeping_forever_hits_the_wall_clock():
    result = run("import time\ntime.sleep(60)\n", limits=Limits(cpu_seconds=1, wall_seconds=1))
    assert result.status == "timeout"
    assert result.seconds < 2.5
    assert_still_works()


def test_fork_bomb_is_stopped_at_the_process_limit():
    result = run("import os\nwhile True:\n    os.fork()\n")
    assert result.status == "processes", result
    assert "too many processes" in result.message
    assert_still_works()


def test_fork_bomb_that_ignores_failures_is_killed_with_all_its_processes():
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run(code)
    assert result.status == "timeout"
    assert_still_works()


def test_memory_bomb():
    result = run("def grow():\n    x = []\n    while True:\n        x.append(' ' * 10_000_000)\n", "grow()")
    assert result.status == "memory", result
    assert "too much memory" in result.message
    assert_still_works()


def test_output_flood_is_cut_off():
    result = run("while True:\n    print('x' * 1000)\n")
    assert result.status == "output"
    assert "printed too much" in result.message
    assert len(result.output) <= FAST.output_bytes
    assert_still_works()


def test_file_flood_is_stopped_at_the_file_size_limit():
    code = "def fill():\n    with open('big.txt', 'w') as f:\n        while True:\n            f.write('x' * 100_000)\n"
    result = run(code, "fill()")
    assert result.status == "file_too_large", result
    assert "file bigger than" in result.message
    assert_still_works()


def test_deep_recursion_is_explained():
    result = run("def down(n):\n    return down(n + 1)\n", "down(0)")
    assert result.status == "recursion"
    assert "called itself too many times" in result.message
    assert_still_works()


def test_a_crash_of_python_itself_is_contained():
    result = run("import ctypes\nctypes.string_at(0)\n")
    assert result.status == "crashed"
    assert "SIGSEGV" in result.message
    assert_still_works()


def test_network_is_unreachable():
    code = ("import socket\ndef fetch():\n    s = socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
            "    return 'connected'\n")
    result = run(code, "fetch()")
    assert result.status == "network", result
    assert "network" in result.message
    if "no-network" in result.isolation:
        assert "connected" not in (result.outcomes[0].repr or "")
    assert_still_works()


def test_signalling_the_grader_does_not_reach_it():
    me = os.getpid()
    code = f"""
import os, signal
def attack():
    errors = []
    for target in ({me}, os.getppid(), -1):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError as e:
            errors.append(type(e).__name__)
    try:
        os.killpg({os.getpgid(0)}, signal.SIGKILL)
    except OSError as e:
        errors.append(type(e).__name__)
    return errors
"""
    result = run(code, "attack()")
    assert result.status == "completed"  # the run itself finished, and so did we: this line runs
    assert os.getpid() == me
    assert_still_works()


def test_hidden_paths_and_the_graders_memory_cannot_be_read():
    bank_file = next(BANK_DIR.glob("*.json"))
    code = f"""
import os
def snoop():
    found = []
    for path in ({str(bank_file)!r}, '/proc/{os.getpid()}/environ', '/proc/{os.getpid()}/mem', '/proc/1/environ'):
        try:
            with open(path, 'rb') as f:
                found.append((path, len(f.read(100))))
        except OSError as e:
            found.append((path, type(e).__name__))
    return found
"""
    result = run(code, "snoop()", hide=[BANK_DIR])
    assert result.status == "completed"
    found = dict(eval(result.outcomes[0].repr))
    readable = [path for path, what in found.items() if isinstance(what, int)]
    assert not readable, f"the sandbox could read {readable} (isolation: {result.isolation})"


def test_isolation_reports_what_took_effect():
    result = run("x = 1", hide=[BANK_DIR])
    assert "rlimits" in result.isolation
    if os.geteuid() == 0:
        # As root on Linux every layer is expected; a missing one means the platform refused it.
        assert {"no-network", "pid-namespace", "private-tmp", "hidden-paths"} <= set(result.isolation)


def test_files_written_do_not_outlive_the_run():
    writer = run("open('left_behind.txt', 'w').write('x')\nimport os\nprint(os.getcwd())\n")
    assert writer.status == "completed"
    reader = run("import os\nprint(os.path.exists('left_behind.txt'))\n")
    assert reader.output.strip() == "False"
