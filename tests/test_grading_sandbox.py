"""The sandbox contains hostile code, names what happened in plain words, and keeps working after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tutor.grading import Case, Limits, run_code
from tutor.grading.bank import BANK_DIR
from tutor.grading.sandbox import process_budget, sandbox_report

REPO = Path(__file__).resolve().parent.parent

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
    # Ended by the CPU-time limit (the kernel's SIGXCPU), not by the wall clock: generous wall time.
    result = run("def spin():\n    while True:\n        pass\n", "spin()",
                 limits=Limits(cpu_seconds=1, wall_seconds=60))
    assert result.status == "timeout"
    assert "ran out of time" in result.message
    assert result.stopped_by == "cpu_limit", result
    if "cgroup" in result.isolation:  # measured by the kernel for the whole run
        assert result.cpu_seconds >= 0.9, result
    assert_still_works()


def test_sleeping_forever_hits_the_wall_clock():
    result = run("import time\ntime.sleep(600)\n", limits=Limits(cpu_seconds=30, wall_seconds=1))
    assert result.status == "timeout"
    assert result.stopped_by == "wall_clock"  # the CPU limit was far away
    assert result.cpu_seconds < 30
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
    victim = subprocess.Popen(["sleep", "60"])  # another process on the host, of the grader's user
    try:
        targets = (os.getpid(), victim.pid, os.getppid())
        code = f"""
import os, signal
def attack():
    errors = []
    for target in {targets!r}:
        try:
            os.kill(target, signal.SIGKILL)
            errors.append('killed')
        except OSError as e:
            errors.append(type(e).__name__)
    try:
        os.killpg({os.getpgid(0)}, signal.SIGKILL)
        errors.append('killed')
    except OSError as e:
        errors.append(type(e).__name__)
    return errors
"""
        result = run(code, "attack()")
        assert result.status == "completed"
        errors = eval(result.outcomes[0].repr)
        # each attempt was refused: the process is not visible (PID namespace) or not ours to signal
        assert len(errors) == 4 and set(errors) <= {"ProcessLookupError", "PermissionError"}, errors
        assert victim.poll() is None, "the sandbox killed a process outside it"
    finally:
        victim.kill()
        victim.wait()
    assert_still_works()


def test_hidden_paths_and_the_graders_memory_cannot_be_read(monkeypatch):
    bank_file = next(BANK_DIR.glob("*.json"))
    code = f"""
import glob, os
def snoop():
    found = []
    own = ['/proc/{os.getpid()}/environ', '/proc/{os.getpid()}/mem']
    for path in [{str(bank_file)!r}] + own + glob.glob('/proc/*/environ'):
        try:
            with open(path, 'rb') as f:
                found.append((path, f.read(100000).decode('latin-1')))
        except OSError as e:
            found.append((path, type(e).__name__))
    return found
"""
    monkeypatch.setenv("TUTOR_TEST_GRADER_SECRET", "s3cr3t-of-the-grader")  # in the grader's environment only
    result = run(code, "snoop()", hide=[BANK_DIR])
    assert result.status == "completed"
    found = dict(eval(result.outcomes[0].repr))
    assert found[str(bank_file)] in ("FileNotFoundError", "PermissionError"), found[str(bank_file)][:80]
    assert not any("s3cr3t-of-the-grader" in what for what in found.values())
    assert found[f"/proc/{os.getpid()}/mem"] in ("FileNotFoundError", "PermissionError")


def requires(layer: str, why: str):
    """Skip (saying so) where this machine's sandbox lacks `layer`; `%tutor status` says the same."""
    report = sandbox_report()
    if layer not in report.isolation:
        assert report.limitations, "a missing protection must be named in the sandbox report"
        pytest.skip(f"{why}: {'; '.join(report.limitations)}")


def test_the_checkout_git_and_teacher_copies_are_out_of_sight():
    requires("allow-list-fs", "without bubblewrap the sandbox hides a list of paths, not everything else")
    lesson = next((REPO / "lessons").glob("*.ipynb"))
    paths = [REPO, REPO / ".git", REPO / ".git" / "HEAD", BANK_DIR / "lists.json", lesson, Path.home(),
             Path(sys.executable), Path("/etc/passwd"), Path("/run"), Path("/var")]
    code = f"""
import os
def look():
    return [os.path.exists(p) for p in {[str(p) for p in paths]!r}]
"""
    result = run(code, "look()")  # no hide list: the allow-list alone keeps them out
    seen = [str(p) for p, there in zip(paths, eval(result.outcomes[0].repr), strict=True) if there]
    assert not seen, f"visible in the sandbox: {seen}"


SHM = """
import ctypes, ctypes.util
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
KEY, SIZE = 0x7475746F, 64 * 1024 * 1024
def leave_segment():
    shmid = libc.shmget(KEY, SIZE, 0o1000 | 0o666)  # IPC_CREAT, and never IPC_RMID
    if shmid < 0:
        return 'shmget failed %d' % ctypes.get_errno()
    address = libc.shmat(shmid, None, 0)
    ctypes.memset(address, 1, SIZE)
    return 'created'
def find_segment():
    return libc.shmget(KEY, 0, 0) >= 0
"""


def _host_segments() -> str:
    return Path("/proc/sysvipc/shm").read_text() if Path("/proc/sysvipc/shm").exists() else ""


def test_sysv_shared_memory_neither_outlives_a_run_nor_links_two():
    requires("ipc-namespace", "without an IPC namespace SysV segments are the machine's")
    assert f"{0x7475746F}" not in _host_segments()
    first = run(SHM, "leave_segment()")
    assert first.outcomes[0].repr == "'created'", first
    assert str(0x7475746F) not in _host_segments(), "a segment was left on the host"
    second = run(SHM, "find_segment()")
    assert second.outcomes[0].repr == "False", "the next run found the last run's segment"


def test_run_lock_is_not_writable_and_nothing_is_left_there():
    name = f"tutor-left-behind-{os.getpid()}"
    code = f"def drop():\n    open('/run/lock/{name}', 'w').write('x')\n    return 'written'\n"
    result = run(code, "drop()")
    assert not Path("/run/lock", name).exists()
    assert not result.outcomes[0].ok or "allow-list-fs" not in result.isolation


def test_the_memory_cap_is_for_the_whole_run_not_per_process():
    limits = Limits(cpu_seconds=5, wall_seconds=20, memory_bytes=256 * 1024 * 1024, processes=8)
    # eight processes of 60 MB each would hold 480 MB together
    code = """
import os, time
def hog():
    children = []
    for _ in range(8):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            try:
                block = bytearray(60 * 1024 * 1024)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(2)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return len(children)
"""
    result = run(code, "hog()", limits=limits)
    if "cgroup" in result.isolation:
        assert result.memory_peak_bytes is not None and result.memory_peak_bytes <= limits.memory_bytes
    else:
        address_space, processes = process_budget(limits, cgroup=False)
        assert address_space * processes <= limits.memory_bytes
        assert not result.outcomes or result.outcomes[0].repr != "8", "all eight processes started"


def test_without_a_cgroup_fewer_processes_keep_the_total_within_the_limit():
    limits = Limits(memory_bytes=512 * 1024 * 1024, process_memory_bytes=128 * 1024 * 1024, processes=32)
    assert process_budget(limits, cgroup=False) == (128 * 1024 * 1024, 4)
    assert process_budget(limits, cgroup=True) == (512 * 1024 * 1024, 32)
    tiny = Limits(memory_bytes=64 * 1024 * 1024, process_memory_bytes=128 * 1024 * 1024)
    assert process_budget(tiny, cgroup=False) == (64 * 1024 * 1024, 1)


def test_no_unix_socket_of_the_host_is_reachable(tmp_path):
    requires("allow-list-fs", "without bubblewrap a socket file the sandbox user may open is reachable")
    folder = REPO / f".sock-test-{os.getpid()}"  # outside /tmp, which is private either way
    folder.mkdir()
    path = folder / "host.sock"
    abstract = f"\0tutor-test-{os.getpid()}"
    servers = []
    try:
        for address in (str(path), abstract):
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(address)
            server.listen(1)
            servers.append(server)
        os.chmod(folder, 0o777)
        os.chmod(path, 0o777)
        code = f"""
import socket
def reach():
    results = []
    for address in ({str(path)!r}, {abstract!r}):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(address)
            results.append('connected')
        except OSError as e:
            results.append(type(e).__name__)
    return results
"""
        result = run(code, "reach()")
        assert result.outcomes[0].ok, result
        assert "connected" not in eval(result.outcomes[0].repr)
        # control: from outside the sandbox both answer
        for address in (str(path), abstract):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(address)
    finally:
        for server in servers:
            server.close()
        path.unlink(missing_ok=True)
        folder.rmdir()


def test_seccomp_refuses_ptrace_and_new_namespaces():
    requires("seccomp", "no seccomp filter here")
    code = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def calls():
    out = []
    for name, call in (('ptrace', lambda: libc.ptrace(0, 0, 0, 0)),            # PTRACE_TRACEME
                       ('unshare', lambda: libc.unshare(0x10000000))):          # CLONE_NEWUSER
        result = call()
        out.append((name, result, ctypes.get_errno()))
    return out
"""
    result = run(code, "calls()")
    for name, value, errno in eval(result.outcomes[0].repr):
        assert value == -1 and errno == 1, f"{name} was allowed ({value}, errno {errno})"


def test_the_host_name_is_the_sandboxs_own():
    requires("uts-namespace", "without a UTS namespace the host name is the machine's")
    result = run("import socket\n", "socket.gethostname()")
    assert result.outcomes[0].repr != repr(socket.gethostname())


def test_the_status_says_what_this_machine_protects():
    report = sandbox_report()
    text = "\n".join(report.lines())
    assert text.startswith("grading sandbox: ")
    for layer in ("allow-list-fs", "no-network", "pid-namespace", "ipc-namespace", "cgroup", "seccomp"):
        assert layer in report.isolation or report.limitations, layer


def test_the_native_fallback_says_plainly_what_it_does_not_protect(monkeypatch):
    monkeypatch.setenv("TUTOR_SANDBOX", "native")
    sandbox_report.cache_clear()
    try:
        report = sandbox_report()
    finally:
        sandbox_report.cache_clear()
    assert report.mode == "native" and "allow-list-fs" not in report.isolation
    assert any("can read every file" in line for line in report.limitations), report


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process as another user")
def test_as_an_ordinary_user_the_sandbox_still_runs_and_says_what_it_lacks():
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None
    if python is None:
        pytest.skip("no system Python that an ordinary user can run")
    script = ("import sys; sys.path.insert(0, sys.argv[1])\n"
              "from tutor.grading.sandbox import sandbox_report, run_code\n"
              "from tutor.grading import Case\n"
              "r = run_code('def f():\\n    return 6 * 7\\n', [Case(call='f()')])\n"
              "print(r.status, r.outcomes[0].repr)\n"
              "print('\\n'.join(sandbox_report().lines()))\n")
    copy = Path(f"/tmp/tutor-grading-copy-{os.getpid()}")  # a copy the ordinary user may read
    copy.mkdir()
    subprocess.run(["cp", "-r", str(REPO / "tutor" / "__init__.py"), str(REPO / "tutor" / "grading"), str(copy)],
                   check=True)
    (copy / "tutor").mkdir()
    (copy / "__init__.py").rename(copy / "tutor" / "__init__.py")
    (copy / "grading").rename(copy / "tutor" / "grading")
    try:
        subprocess.run(["chmod", "-R", "a+rX", str(copy)], check=True)
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", script,
                               str(copy)], capture_output=True, text=True,
                              timeout=120, cwd="/", env={"PATH": "/usr/bin:/bin"}, check=False)
    finally:
        subprocess.run(["rm", "-rf", str(copy)], check=False)
    assert done.returncode == 0, done.stderr
    first, *status = done.stdout.splitlines()
    assert first == "completed 42"
    assert "cgroup" not in status[0].split("(", 1)[1] and any("memory is capped per process" in s for s in status)
def test_isolation_reports_what_took_effect():
    result = run("x = 1", hide=[BANK_DIR])
    assert "rlimits" in result.isolation
    if os.geteuid() == 0:
        # As root on Linux every layer is expected; a missing one means the platform refused it.
        common = {"no-network", "pid-namespace", "private-tmp", "ipc-namespace", "uts-namespace", "cgroup"}
        if "bubblewrap" in result.isolation:
            assert common | {"allow-list-fs", "seccomp", "no-capabilities"} <= set(result.isolation)
        else:
            assert common | {"hidden-paths"} <= set(result.isolation)


def test_files_written_do_not_outlive_the_run():
    writer = run("open('left_behind.txt', 'w').write('x')\nimport os\nprint(os.getcwd())\n")
    assert writer.status == "completed"
    reader = run("import os\nprint(os.path.exists('left_behind.txt'))\n")
    assert reader.output.strip() == "False"
