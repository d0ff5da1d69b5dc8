"""Run untrusted code and test calls in a separate, locked-down process.

Two ways to lock it down, chosen per machine (`TUTOR_SANDBOX=bwrap|native` forces one):

- **bubblewrap** (Debian's `bubblewrap`, the sandbox flatpak uses), where installed and allowed to
  make user namespaces: an allow-list view of the filesystem (the interpreter, its standard library
  and the system's shared libraries, read-only, with every site-packages folder covered; a private
  size-limited /tmp as the working folder and /dev/shm; nothing else: not the checkout, not .git,
  not a teacher's files, not /run), new user, PID, network, IPC, UTS and cgroup namespaces (no
  network, no host UNIX sockets, nothing left behind in SysV IPC, nothing of the host's processes
  visible), no further user namespaces, all capabilities dropped, and a seccomp filter (seccomp.py).
  We use it rather than more namespace code of our own because it is small, audited and widely
  deployed, and gets mount ordering and /proc, /dev details right.
- **native** (no bubblewrap): our own namespaces where the kernel allows them (as root, or inside
  a user namespace): network, PID, IPC, UTS and mount; the filesystem stays visible except a
  private /tmp and the `hide` list covered by empty mounts. This is weaker: `limitations()` says so.

Either way, before anything untrusted runs (see _launcher.py): the run's own cgroup (all its
processes together capped at `Limits.memory_bytes` and `Limits.processes`) where one can be made
(cgroup.py), else fewer processes so that processes x address space stays within the memory limit;
resource limits (CPU time, address space, file size, open files, no core dumps); as root a drop to
the unprivileged uid SANDBOX_UID. The wall-clock timeout and the output cap are enforced here.

The grading channel: the launcher's own messages (isolation, setup errors, the exit status its
init process saw) come on a control fd that the student's process never holds. The student's code
runs in the harness process, so everything on the result fd may be forged: the grader drives every
step (code, then one call at a time), accepts exactly one reply of the expected shape and bounded
size to each request, and ends the run on anything else ("interfered"). Nothing the child says can
raise here or take more than a bounded amount of memory. Expected values never enter the child.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from glob import glob
from pathlib import Path

from .cgroup import RunCgroup
from .problem import Case
from .seccomp import filter_program

MB = 1024 * 1024
SANDBOX_UID = 65534  # "nobody": used only when the grader runs as root
SANDBOX_GID = 65534
_HERE = Path(__file__).resolve().parent
_LAUNCHER = _HERE / "_launcher.py"
_HARNESS = _HERE / "_harness.py"
MAX_MESSAGE_BYTES = 512 * 1024  # one reply from the child: a 100,000-character repr in UTF-8, with room
MAX_CONTROL_BYTES = 64 * 1024
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True)
class Limits:
    """Every sandbox limit, in one place. Defaults follow common practice for untrusted Python."""

    cpu_seconds: float = 5.0
    wall_seconds: float = 10.0
    memory_bytes: int = 512 * MB  # all the run's processes together (a cgroup), or split between them
    file_bytes: int = 1 * MB
    disk_bytes: int = 16 * MB  # the private /tmp working directory (and /dev/shm), where mounts are allowed
    processes: int = 32
    open_files: int = 64
    output_bytes: int = 1 * MB
    # Without a cgroup each process gets this much address space, and the process limit is cut so
    # that processes x this stays within memory_bytes (512 MB: 4 processes of 128 MB).
    process_memory_bytes: int = 128 * MB


DEFAULT_LIMITS = Limits()


class SandboxError(RuntimeError):
    """The sandbox itself could not run (a setup problem for the teacher, not the student's fault)."""


@dataclass(frozen=True)
class CallOutcome:
    """What one call did: its value's repr, or the error it raised."""

    ok: bool
    repr: str | None = None
    error: str | None = None  # "ZeroDivisionError: division by zero"
    kind: str | None = None  # "error", "memory", "recursion", "file_too_large", "processes", "network"
    line: int | None = None  # last line of the student's code in the traceback
    traceback: str | None = None


@dataclass(frozen=True)
class SyntaxProblem:
    message: str
    line: int | None
    offset: int | None
    text: str


# Friendly words for each way a run can end. The grading layer adds test details.
STATUS_MESSAGES = {
    "completed": "Your code ran.",
    "syntax_error": "Python could not read your code: {detail}.",
    "load_error": "Your code raised an error before any test could run: {detail}",
    "timeout": "Your code ran out of time (limit: {cpu:g} s of computing, {wall:g} s in all). "
               "Is there a loop that never ends?",
    "memory": "Your code used too much memory (limit: {memory} MB). Is a list or string growing without end?",
    "output": "Your code printed too much (limit: {output} KB). Is there a print inside a loop that never ends?",
    "file_too_large": "Your code tried to write a file bigger than {file} KB.",
    "processes": "Your code tried to start too many processes (limit: {processes}).",
    "network": "Your code tried to use the network, which is not available while grading.",
    "recursion": "Your function called itself too many times. Does the recursion have a base case it reaches?",
    "crashed": "Your code crashed Python ({detail}). Very deep recursion can do this.",
    "interfered": "Your code wrote on the grader's own channel, so grading stopped. Print with print(); "
                  "do not write to file descriptors you did not open.",
}
# When several calls hit trouble, the most telling one names the run.
_KIND_ORDER = ("memory", "file_too_large", "processes", "network", "recursion")
_KINDS = frozenset(("error",) + _KIND_ORDER)
_ENDED_EARLY = ("syntax_error", "load_error", "timeout", "output", "crashed", "interfered")

# Why the sandbox (not the code) ended a run: what tests and teachers can rely on.
STOPPED_BY = ("wall_clock", "cpu_limit", "memory_limit", "output_limit", "protocol")


@dataclass(frozen=True)
class RunResult:
    status: str
    message: str
    outcomes: tuple[CallOutcome, ...]  # one per call that finished, in order
    calls_total: int
    output: str  # what the code printed (stdout and stderr), capped
    syntax: SyntaxProblem | None = None
    load_error: CallOutcome | None = None
    seconds: float = 0.0
    isolation: tuple[str, ...] = field(default=())
    stopped_by: str = ""  # one of STOPPED_BY when a limit ended the run, "" when it ended by itself
    cpu_seconds: float = 0.0  # CPU time of every process of the run (measured by the kernel)
    exit_status: str = ""  # "exit code 0", "signal SIGSEGV", ...: how the sandbox's process ended
    memory_peak_bytes: int | None = None  # all processes together, where a cgroup measured it

    @property
    def completed(self) -> bool:
        return self.status not in _ENDED_EARLY and len(self.outcomes) == self.calls_total


# ------------------------------------------------------------------ the machine: what can be had here

def _others_can_run(path: str) -> bool:
    """Whether an unprivileged uid can execute `path` (every folder on the way searchable)."""
    real = Path(os.path.realpath(path))
    try:
        if (real.stat().st_mode & (stat.S_IXOTH | stat.S_IROTH)) != stat.S_IXOTH | stat.S_IROTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in real.parents)
    except OSError:
        return False


def _sandbox_python() -> str:
    """An interpreter the sandbox uid can run: ours if it can, else a system one of the same version."""
    if os.geteuid() != 0:
        return os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, getattr(sys, "_base_executable", ""), f"/usr/bin/{version}",
                  f"/usr/local/bin/{version}", shutil.which(version) or "", "/usr/bin/python3"]
    for candidate in candidates:
        if candidate and os.path.exists(candidate) and _others_can_run(candidate):
            return os.path.realpath(candidate)
    raise SandboxError(f"no Python interpreter that the unprivileged sandbox user (uid {SANDBOX_UID}) may run; "
                       f"install {version} system-wide (e.g. /usr/bin/{version}) or make the grader's "
                       "interpreter readable by others")


def _bwrap() -> str | None:
    for folder in ("/usr/bin", "/bin", "/usr/local/bin"):
        path = os.path.join(folder, "bwrap")
        if os.access(path, os.X_OK):
            return path
    return None


_bwrap_refused: list[str] = []  # why bubblewrap could not run on this machine, once seen


def _mode() -> str:
    forced = os.environ.get("TUTOR_SANDBOX", "").strip().lower()
    if forced in ("bwrap", "native"):
        return forced
    return "bwrap" if _bwrap() and not _bwrap_refused and sys.platform.startswith("linux") else "native"


def _library_dirs(python: str) -> list[str]:
    """Folders the interpreter needs: its own prefix's lib and the system's shared libraries."""
    prefix = Path(python).parent.parent
    dirs = ["/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32", "/libx32"]
    for lib in (prefix / "lib", prefix / "lib64"):
        if lib.is_dir() and not any(str(lib.resolve()).startswith(d + "/") or str(lib.resolve()) == d
                                    for d in dirs):
            dirs.append(str(lib))
    return [d for d in dirs if os.path.lexists(d)]


def _covered(python: str, lib_dirs: Sequence[str], hide: Sequence[str]) -> list[str]:
    """Paths inside the allow-list that must not be seen: installed packages (this one among them)."""
    found = []
    for lib in lib_dirs:
        if os.path.islink(lib):
            continue
        for pattern in ("python3*/site-packages", "python3*/dist-packages", "python3/dist-packages"):
            found.extend(glob(os.path.join(lib, pattern)))
    inside = [p for p in hide if any(p == d or p.startswith(d.rstrip("/") + "/") for d in lib_dirs)]
    return sorted(set(found) | set(inside))


def _bwrap_argv(bwrap: str, python: str, ctrl_fd: int, seccomp_fd: int | None, limits: Limits,
                hide: Sequence[str], harness_args: list[str]) -> tuple[list[str], list[str]]:
    """bubblewrap's command line for one run, and the protections it gives."""
    argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--hostname", "sandbox", "--json-status-fd", str(ctrl_fd)]
    lib_dirs = _library_dirs(python)
    for d in lib_dirs:
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        else:
            argv += ["--ro-bind", d, d]
    argv += ["--ro-bind", python, python]
    if os.path.isfile("/etc/ld.so.cache"):  # where the dynamic loader finds shared libraries
        argv += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for path in _covered(python, lib_dirs, hide):
        argv += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
    argv += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(limits.disk_bytes), "--tmpfs", "/dev/shm",
             "--size", str(limits.disk_bytes), "--perms", "1777", "--tmpfs", "/tmp",
             "--remount-ro", "/", "--chdir", "/tmp", "--setenv", "HOME", "/tmp"]
    applied = ["bubblewrap", "allow-list-fs", "private-tmp", "user-namespace", "pid-namespace", "no-network",
               "ipc-namespace", "uts-namespace", "private-proc", "no-capabilities"]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
        applied.append("seccomp")
    if os.geteuid() == 0:
        applied.append(f"uid-{SANDBOX_UID}")
    return argv + ["--", python, *harness_args], applied


def process_budget(limits: Limits, cgroup: bool) -> tuple[int, int]:
    """(address space per process, processes) for a run. With a cgroup capping the total, each process
    may use all of it; without, the process limit is cut so that the two multiplied stay within it."""
    if cgroup:
        return limits.memory_bytes, limits.processes
    processes = max(1, min(limits.processes, limits.memory_bytes // max(1, limits.process_memory_bytes)))
    return limits.memory_bytes // processes, processes


def _calls_payload(calls: Iterable[Case]) -> list[dict]:
    # Only what the child must evaluate: never the expected values.
    return [{"setup": c.setup, "call": c.call, "check": c.check} for c in calls]


# ------------------------------------------------------------------ one run

def run_code(code: str, calls: Sequence[Case], limits: Limits = DEFAULT_LIMITS,
             hide: Sequence[str | Path] = (), keep_output: bool = True, prelude: str = "") -> RunResult:
    """Define `code` in a sandboxed process, then evaluate each call there; see RunResult.

    `hide` lists files or folders the code must not read: outside bubblewrap's allow-list they are
    invisible anyway; without bubblewrap they are covered by empty mounts where mounts are allowed.
    With keep_output=False what the code prints is counted against the cap but not kept. `prelude` runs
    first, in the same namespace, its printing discarded (a lesson's worked examples).
    """
    mode = _mode()
    code = (code, prelude)
    try:
        return _run(mode, code, calls, limits, hide, keep_output)
    except _BwrapRefused as refused:
        if os.environ.get("TUTOR_SANDBOX", "").strip().lower() == "bwrap":
            raise SandboxError(f"bubblewrap could not start the sandbox: {refused}") from None
        _bwrap_refused.append(str(refused))  # e.g. user namespaces are turned off: use our own from now on
        return _run("native", code, calls, limits, hide, keep_output)


class _BwrapRefused(Exception):
    pass


def _run(mode: str, code: tuple[str, str], calls: Sequence[Case], limits: Limits, hide: Sequence[str | Path],
         keep_output: bool) -> RunResult:
    root = os.geteuid() == 0
    hide = [str(Path(p).resolve()) for p in hide]
    group = RunCgroup.create(limits.memory_bytes, limits.processes + 2)  # + bwrap's monitor and init
    address_space, processes = process_budget(limits, group is not None)
    workdir = tempfile.mkdtemp(prefix="tutor-grade-") if mode == "native" else None
    if root and workdir:
        os.chown(workdir, SANDBOX_UID, SANDBOX_GID)
    python = _sandbox_python()
    fds: list[int] = []

    def pipe() -> tuple[int, int]:
        r, w = os.pipe()
        fds.extend((r, w))
        return r, w

    def close(fd: int) -> None:
        if fd in fds:
            fds.remove(fd)
            os.close(fd)

    proc = None
    try:
        res_r, res_w = pipe()
        out_r, out_w = pipe()
        ctrl_r, ctrl_w = pipe()
        passed = [res_w, ctrl_w]
        harness_cfg = {"result_fd": res_w, "block_sockets": False, "nproc": processes + 1 if mode == "bwrap" else 0}
        harness_args = ["-I", "-S", "-u", "-B", "-c", _HARNESS.read_text(encoding="utf-8"), json.dumps(harness_cfg)]
        cfg = {"mode": mode, "limits": asdict(limits), "ctrl_fd": ctrl_w, "address_space": address_space,
               # bubblewrap's monitor and init count as processes of the run too; with a cgroup the
               # per-run cap is pids.max, and RLIMIT_NPROC only a ceiling for the sandbox uid as a whole
               "nproc": processes + 2 if group is None else max(1024, 8 * limits.processes),
               "cgroup_procs": list(group.procs_files) if group else [],
               "uid": SANDBOX_UID if root else None, "gid": SANDBOX_GID, "env": dict(_ENV)}
        if mode == "bwrap":
            program = filter_program()
            seccomp_fd = None
            if program is not None:
                seccomp_r, seccomp_w = pipe()
                os.write(seccomp_w, program)
                close(seccomp_w)
                seccomp_fd = seccomp_r
                passed.append(seccomp_r)
            argv, applied = _bwrap_argv(_bwrap() or "bwrap", python, ctrl_w, seccomp_fd, limits, hide, harness_args)
            cfg.update(bwrap_argv=argv, isolation=["rlimits"] + (["cgroup"] if group else []) + applied)
        else:
            program_fds = []
            for no_sockets in (False, True):
                program = filter_program(no_sockets)
                if program is None:
                    program_fds.append(None)
                    continue
                r, w = pipe()
                os.write(w, program)
                close(w)
                program_fds.append(r)
                passed.append(r)
            cfg.update(python=python, harness_args=harness_args, workdir=workdir, hide=hide,
                       seccomp_programs_fds=program_fds)
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_LAUNCHER), json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=out_w, stderr=out_w, pass_fds=tuple(passed), close_fds=True,
            start_new_session=True, cwd=workdir or "/", env=dict(_ENV))
        for fd in list(passed) + [out_w]:
            close(fd)
        supervisor = _Supervisor(proc, res_r, out_r, ctrl_r, code, calls, limits, keep_output, start, group)
        result = supervisor.run()
        if not supervisor.started:  # nothing of the student's ran: the output is the sandbox's own
            why = (supervisor.output_text().strip().splitlines() or [f"no reason given ({result.exit_status})"])[-1]
            if mode == "bwrap":
                raise _BwrapRefused(why)
            raise SandboxError(f"the grading sandbox could not start: {why}")
        return result
    finally:
        if proc is not None:
            _kill_group(proc)
            if proc.returncode is None:
                proc.wait()
        if group is not None:
            group.kill_all()
            group.remove()
        for fd in list(fds):
            close(fd)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def signal_name(number: int) -> str:
    """A signal's name ("SIGSEGV"), or "signal N" for a number no signal has: never raises."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Violation(Exception):
    """The child said something it was not asked for, or too much of it."""


def _int_or_none(value) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _check_message(event: dict, expected: tuple[str, ...]) -> dict:
    """The reply if it has exactly the shape of one of the `expected` events, else _Violation."""
    kind = event.get("event")
    if kind not in expected:
        raise _Violation(f"unexpected {kind!r}")
    keys = set(event)
    if kind in ("ready", "started"):
        ok = keys == {"event"}
    elif kind == "syntax_error":
        ok = (keys == {"event", "message", "line", "offset", "text"} and isinstance(event["message"], str)
              and isinstance(event["text"], str) and _int_or_none(event["line"]) and _int_or_none(event["offset"]))
    elif kind == "result" and event.get("ok") is True:
        ok = (keys == {"event", "ok", "repr", "truncated"} and isinstance(event["repr"], str)
              and isinstance(event["truncated"], bool))
    else:  # load_error, or a result that raised
        want = {"event", "error", "kind", "line", "traceback"} | ({"ok"} if kind == "result" else set())
        ok = (keys == want and event.get("ok", False) is False and isinstance(event["error"], str)
              and event["kind"] in _KINDS and _int_or_none(event["line"]) and isinstance(event["traceback"], str))
    if not ok:
        raise _Violation(f"malformed {kind!r}")
    return event


class _Supervisor:
    """Drives one run: writes each request, reads exactly one bounded reply, watches the limits."""

    def __init__(self, proc, res_r, out_r, ctrl_r, code, calls, limits, keep_output, start, group):
        self.proc, self.res_r, self.out_r, self.ctrl_r = proc, res_r, out_r, ctrl_r
        self.code, self.calls, self.limits, self.keep_output = code, list(calls), limits, keep_output
        self.start, self.group = start, group
        self.deadline = start + limits.wall_seconds
        self.output = bytearray()
        self.output_seen = 0
        self.buffer = bytearray()
        self.ctrl = bytearray()
        self.ctrl_events: list[dict] = []
        self.isolation: tuple[str, ...] | None = None
        self.started = False
        self.sent = 0  # calls sent
        self.expect: tuple[str, ...] = ("started",)
        self.outcomes: list[CallOutcome] = []
        self.syntax: SyntaxProblem | None = None
        self.load_error: CallOutcome | None = None
        self.stop: str | None = None  # why we ended the run early (a STOPPED_BY value)
        self.finished = False  # every reply in
        self.status_word = None
        self.rusage = None
        self.wait_status: int | None = None
        self.pending = b""
        self.stdin_fd = proc.stdin.fileno()
        os.set_blocking(self.stdin_fd, False)

    def output_text(self) -> str:
        return self.output.decode("utf-8", "replace")

    # ---------------------------------------------------------------- requests

    def _request(self, message: dict) -> None:
        self.pending += (json.dumps(message) + "\n").encode()
        self._flush()

    def _flush(self) -> None:
        while self.pending:
            try:
                sent = os.write(self.stdin_fd, self.pending)
            except BlockingIOError:
                return
            except BrokenPipeError:
                self.pending = b""
                return
            self.pending = self.pending[sent:]

    def _close_stdin(self) -> None:
        if not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def _next(self) -> None:
        """After a reply: the next call, or end of input."""
        if self.sent < len(self.calls):
            self._request({"call": _calls_payload([self.calls[self.sent]])[0]})
            self.sent += 1
            self.expect = ("result",)
        else:
            self.finished = True
            self.expect = ()
            self._close_stdin()

    def _on_reply(self, event: dict) -> None:
        kind = event["event"]
        if kind == "started":
            self.started = True
            self._request({"code": self.code[0], "prelude": self.code[1]})
            self.expect = ("ready", "syntax_error", "load_error")
        elif kind == "ready":
            self._next()
        elif kind == "syntax_error":
            self.syntax = SyntaxProblem(event["message"][:2000], event["line"], event["offset"], event["text"][:2000])
            self.expect = ()
            self._close_stdin()
        elif kind == "load_error":
            self.load_error = _outcome(event)
            self.expect = ()
            self._close_stdin()
        else:
            self.outcomes.append(_outcome(event))
            self._next()

    # ---------------------------------------------------------------- reading

    def _read_result(self, chunk: bytes) -> None:
        self.buffer += chunk
        while True:
            newline = self.buffer.find(b"\n")
            if newline < 0:
                if len(self.buffer) > MAX_MESSAGE_BYTES:
                    raise _Violation("a reply over the size limit")
                return
            if newline > MAX_MESSAGE_BYTES:
                raise _Violation("a reply over the size limit")
            line = bytes(self.buffer[:newline])
            del self.buffer[:newline + 1]
            if not self.expect:
                raise _Violation("a reply nobody asked for")
            try:
                event = json.loads(line)
            except (ValueError, RecursionError, MemoryError):
                raise _Violation("not JSON") from None
            if not isinstance(event, dict):
                raise _Violation("not an object")
            self._on_reply(_check_message(event, self.expect))

    def _read_ctrl(self, chunk: bytes) -> None:
        if len(self.ctrl) + len(chunk) > MAX_CONTROL_BYTES:
            return  # only trusted code writes here; a flood would be our bug, not worth memory
        self.ctrl += chunk
        # bubblewrap writes one JSON document per line; so does the launcher
        while b"\n" in self.ctrl:
            line, _, rest = bytes(self.ctrl).partition(b"\n")
            self.ctrl[:] = rest
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            self.ctrl_events.append(event)
            if event.get("event") == "isolation":
                self.isolation = tuple(str(x) for x in event.get("applied", ()))
            elif event.get("event") == "sandbox_error":
                raise SandboxError(f"the grading sandbox could not start: {event.get('message')}")

    def _poll_exit(self) -> bool:
        if self.wait_status is not None:
            return True
        try:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False
        self.wait_status, self.rusage = status, usage
        self.proc.returncode = os.waitstatus_to_exitcode(status)  # so that Popen does not wait again
        return True

    def run(self) -> RunResult:
        sel = selectors.DefaultSelector()
        for fd, name in ((self.res_r, "result"), (self.out_r, "output"), (self.ctrl_r, "ctrl")):
            sel.register(fd, selectors.EVENT_READ, name)
        exited_at = None
        try:
            while True:
                now = time.monotonic()
                if now >= self.deadline:
                    self.stop = "wall_clock"
                    break
                if self._poll_exit():
                    exited_at = exited_at or now
                    if now - exited_at > 0.5 or not sel.get_map():
                        break  # anything left holding a pipe is killed below
                if self.finished and exited_at is None and now - (self._finished_at or now) > 1.0:
                    break  # every reply is in; processes the code left behind do not hold up the report
                if self.pending:
                    self._flush()
                for key, _ in sel.select(timeout=min(0.05, max(0.0, self.deadline - now))):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fd)
                        continue
                    if key.data == "ctrl":
                        self._read_ctrl(chunk)
                    elif key.data == "output":
                        self.output_seen += len(chunk)
                        if self.keep_output:
                            self.output += chunk[: max(0, self.limits.output_bytes - len(self.output))]
                        elif not self.started:  # bubblewrap's own message, if it fails to start
                            self.output += chunk[:4096]
                        if self.output_seen > self.limits.output_bytes:
                            self.stop = "output_limit"
                    else:
                        self._read_result(chunk)
                        if self.finished and self._finished_at is None:
                            self._finished_at = time.monotonic()
                if self.stop:
                    break
        except _Violation:
            self.stop = "protocol"
        finally:
            sel.close()
        if not self._poll_exit() or self.stop:
            _kill_group(self.proc)
            if self.group is not None:
                self.group.kill_all()
        self._reap()
        # what is still in the control pipe (the exit status bubblewrap or our init saw)
        try:
            os.set_blocking(self.ctrl_r, False)
            while chunk := os.read(self.ctrl_r, 65536):
                self._read_ctrl(chunk)
        except (BlockingIOError, OSError):
            pass
        return self._result()

    _finished_at: float | None = None

    def _reap(self) -> None:
        deadline = time.monotonic() + 5
        while not self._poll_exit() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.wait_status is None:
            _kill_group(self.proc)
            _, status, usage = os.wait4(self.proc.pid, 0)
            self.wait_status, self.rusage = status, usage
            self.proc.returncode = os.waitstatus_to_exitcode(status)

    # ---------------------------------------------------------------- the verdict

    def _exit(self) -> tuple[int | None, int | None]:
        """(exit code, signal) of the sandboxed process, from trusted reports only."""
        for event in reversed(self.ctrl_events):
            if "exit-code" in event:  # bubblewrap's status ("exit-code" only) or our init's (with "signal")
                code, sig = event.get("exit-code"), event.get("signal")
                if "signal" not in event and isinstance(code, int) and code > 128 \
                        and not signal_name(code - 128).startswith("signal "):
                    return None, code - 128  # bubblewrap reports a signal as 128 + its number
                return (code if _int_or_none(code) else None), (sig if _int_or_none(sig) else None)
        status = self.wait_status or 0
        if os.WIFSIGNALED(status):
            return None, os.WTERMSIG(status)
        return os.WEXITSTATUS(status), None

    def _result(self) -> RunResult:
        limits = self.limits
        cpu = self.group.cpu_seconds() if self.group is not None else None
        if cpu is None:  # the processes this one waited for only (bubblewrap's init may not be among them)
            cpu = (self.rusage.ru_utime + self.rusage.ru_stime) if self.rusage else 0.0
        code, sig = self._exit()
        exit_status = signal_name(sig) if sig else f"exit code {code}"
        cpu_limit = math.ceil(limits.cpu_seconds)
        stopped_by = self.stop or ""
        if not stopped_by and self.group is not None and self.group.oom_kills():
            stopped_by = "memory_limit"
        if not stopped_by and not self.finished and sig in (signal.SIGXCPU, signal.SIGKILL) and (
                sig == signal.SIGXCPU or cpu >= cpu_limit - 0.05):
            stopped_by = "cpu_limit"
        done = self.finished and len(self.outcomes) == len(self.calls)
        detail = ""
        if stopped_by == "wall_clock" or stopped_by == "cpu_limit":
            status = "timeout"
        elif stopped_by == "output_limit":
            status = "output"
        elif stopped_by == "protocol":
            status = "interfered"
        elif stopped_by == "memory_limit":
            status = "memory"
        elif self.syntax:
            status, detail = "syntax_error", f"{self.syntax.message} on line {self.syntax.line}"
        elif self.load_error and self.load_error.kind in _KIND_ORDER:
            status = self.load_error.kind
        elif self.load_error:
            status, detail = "load_error", f"{self.load_error.error} (line {self.load_error.line})"
        elif not done:
            status = "memory" if "MemoryError" in self.output_text()[-2000:] else "crashed"
            detail = signal_name(sig) if sig else exit_status
        else:
            kinds = {o.kind for o in self.outcomes}
            status = next((k for k in _KIND_ORDER if k in kinds), "completed")
        message = STATUS_MESSAGES[status].format(
            detail=detail, cpu=limits.cpu_seconds, wall=limits.wall_seconds, memory=limits.memory_bytes // MB,
            output=limits.output_bytes // 1024, file=limits.file_bytes // 1024, processes=limits.processes)
        output = self.output_text() if self.keep_output else ""
        return RunResult(status=status, message=message, outcomes=tuple(self.outcomes), calls_total=len(self.calls),
                         output=output, syntax=self.syntax, load_error=self.load_error,
                         seconds=time.monotonic() - self.start, isolation=self.isolation or (),
                         stopped_by=stopped_by, cpu_seconds=cpu, exit_status=exit_status,
                         memory_peak_bytes=self.group.peak_bytes() if self.group is not None else None)


def _outcome(e: dict) -> CallOutcome:
    if e.get("ok"):
        return CallOutcome(ok=True, repr=e["repr"])
    return CallOutcome(ok=False, error=e["error"][:2000], kind=e["kind"], line=e["line"],
                       traceback=e["traceback"][-5000:])


# ------------------------------------------------------------------ what this machine protects

@dataclass(frozen=True)
class SandboxReport:
    """What the sandbox does on this machine, for `%tutor status` and teachers."""

    mode: str  # "bubblewrap" or "native"
    isolation: tuple[str, ...]
    limitations: tuple[str, ...]  # plain sentences: what is NOT protected here

    def lines(self) -> list[str]:
        head = f"grading sandbox: {self.mode} ({', '.join(self.isolation) or 'limits only'})"
        if not self.limitations:
            return [head, "  every protection is in force: allow-list filesystem, namespaces, memory cgroup, seccomp"]
        return [head] + [f"  not protected: {text}" for text in self.limitations]


LIMITATION_TEXT = {
    "allow-list-fs": "the code can read every file this machine's sandbox user can read, except a few hidden "
                     "folders (install bubblewrap: apt-get install bubblewrap)",
    "no-network": "the network is blocked only inside Python (not a boundary): the code can reach the network "
                  "and UNIX sockets on this machine",
    "pid-namespace": "the code can see this machine's processes, and signal those of its own user",
    "ipc-namespace": "System V shared memory and semaphores are shared with this machine and can outlive a run",
    "cgroup": "memory is capped per process, not for the whole run, so the process limit is cut to "
              "{processes} (no cgroup can be made here: run as root, or give the grader a delegated cgroup)",
    "seccomp": "no seccomp filter (libseccomp is not installed): every system call is allowed",
    "uid": "the code runs as your own user: it can change your files that are visible to it",
}


@lru_cache(maxsize=1)
def sandbox_report() -> SandboxReport:
    """Probe this machine once with a real run, and say what is and is not protected."""
    if not sys.platform.startswith("linux"):
        return SandboxReport("none", (), ("grading needs Linux: it does not run on this system",))
    try:
        result = run_code("x = 1", [], Limits(cpu_seconds=2, wall_seconds=10))
    except SandboxError as exc:
        return SandboxReport("broken", (), (str(exc),))
    applied = set(result.isolation)
    missing = []
    for key in ("allow-list-fs", "no-network", "pid-namespace", "ipc-namespace", "cgroup", "seccomp"):
        if key not in applied:
            _, processes = process_budget(DEFAULT_LIMITS, cgroup=False)
            missing.append(LIMITATION_TEXT[key].format(processes=processes))
    if os.geteuid() != 0 and "allow-list-fs" not in applied:
        missing.append(LIMITATION_TEXT["uid"])
    if _bwrap_refused:
        missing.append(f"bubblewrap is installed but refused to start here ({_bwrap_refused[0]})")
    mode = "bubblewrap" if "bubblewrap" in applied else "native"
    return SandboxReport(mode, result.isolation, tuple(missing))

