"""Run untrusted code and test calls in a separate, locked-down process.

What protects what (see _launcher.py for the mechanics):
- Resource limits (setrlimit in the child before the harness starts): CPU time, address space,
  file size, processes, open files, no core dumps. Wall-clock timeout and output cap are enforced
  here: the whole process group is killed.
- As root (containers, a class server): new network namespace (no network at all), new PID
  namespace (the student's processes cannot see or signal anything outside, and all of them die
  with the run), new mount namespace (a private size-limited /tmp as the working directory, a fresh
  /proc, and `hide` paths such as the problem bank covered by empty mounts), then a drop to the
  unprivileged uid SANDBOX_UID, so the grader's files and memory are out of reach. RLIMIT_NPROC
  does not apply to root, which is one more reason for the drop; it counts every process of
  SANDBOX_UID, so concurrent runs share the limit.
- As an ordinary user: the same namespaces inside a new user namespace where the kernel allows it
  (there the process count is per namespace). Files the user can read stay readable unless hidden.
  Where user namespaces are refused: limits only, RLIMIT_NPROC raised by the user's current task
  count, sockets blocked inside Python (best effort, not a boundary), and the student's code could
  signal the user's other processes. RunResult.isolation says what took effect.
- Hidden tests: the grader compares values itself, so expected values never enter the child, and
  tests are sent only after the student's code has been defined (sandbox runs of hidden tests
  should be separate from public ones whose output is shown: see grade.py).
"""

from __future__ import annotations

import json
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
from pathlib import Path

from .problem import Case

MB = 1024 * 1024
SANDBOX_UID = 65534  # "nobody": used only when the grader runs as root
SANDBOX_GID = 65534
_HERE = Path(__file__).resolve().parent
_LAUNCHER = _HERE / "_launcher.py"
_HARNESS = _HERE / "_harness.py"
_MAX_PROTOCOL_BYTES = 16 * MB


@dataclass(frozen=True)
class Limits:
    """Every sandbox limit, in one place. Defaults follow common practice for untrusted Python."""

    cpu_seconds: float = 5.0
    wall_seconds: float = 10.0
    memory_bytes: int = 512 * MB
    file_bytes: int = 1 * MB
    disk_bytes: int = 16 * MB  # the private /tmp working directory, where mounts are allowed
    processes: int = 32
    open_files: int = 64
    output_bytes: int = 1 * MB


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
}
# When several calls hit trouble, the most telling one names the run.
_KIND_ORDER = ("memory", "file_too_large", "processes", "network", "recursion")


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

    @property
    def completed(self) -> bool:
        return self.status not in ("syntax_error", "load_error", "timeout", "output", "crashed") and len(
            self.outcomes) == self.calls_total


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
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, getattr(sys, "_base_executable", ""), f"/usr/bin/{version}",
                  f"/usr/local/bin/{version}", shutil.which(version) or "", "/usr/bin/python3"]
    for candidate in candidates:
        if candidate and os.path.exists(candidate) and _others_can_run(candidate):
            return os.path.realpath(candidate)
    raise SandboxError(f"no Python interpreter that the unprivileged sandbox user (uid {SANDBOX_UID}) may run; "
                       f"install {version} system-wide (e.g. /usr/bin/{version}) or make the grader's "
                       "interpreter readable by others")


def _calls_payload(calls: Iterable[Case]) -> list[dict]:
    # Only what the child must evaluate: never the expected values.
    return [{"setup": c.setup, "call": c.call, "check": c.check} for c in calls]


def run_code(code: str, calls: Sequence[Case], limits: Limits = DEFAULT_LIMITS,
             hide: Sequence[str | Path] = (), keep_output: bool = True) -> RunResult:
    """Define `code` in a sandboxed process, then evaluate each call there; see RunResult.

    `hide` lists files or folders the code must not read (covered where mounts are allowed).
    With keep_output=False what the code prints is counted against the cap but not kept.
    """
    workdir = tempfile.mkdtemp(prefix="tutor-grade-")
    root = os.geteuid() == 0
    if root:
        os.chown(workdir, SANDBOX_UID, SANDBOX_GID)
    res_r, res_w = os.pipe()
    out_r, out_w = os.pipe()
    cfg = {"limits": asdict(limits), "result_fd": res_w, "harness_path": str(_HARNESS), "workdir": workdir,
           "python": _sandbox_python(), "uid": SANDBOX_UID if root else None, "gid": SANDBOX_GID,
           "hide": [str(Path(p).resolve()) for p in hide]}
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_LAUNCHER), json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=out_w, stderr=out_w, pass_fds=(res_w,), close_fds=True,
            start_new_session=True, cwd=workdir, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    except BaseException:
        for fd in (res_r, res_w, out_r, out_w):
            os.close(fd)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    os.close(res_w)
    os.close(out_w)
    try:
        return _supervise(proc, res_r, out_r, code, calls, limits, keep_output, start)
    finally:
        _kill_group(proc)
        proc.wait()
        os.close(res_r)
        os.close(out_r)
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _supervise(proc: subprocess.Popen, res_r: int, out_r: int, code: str, calls: Sequence[Case],
               limits: Limits, keep_output: bool, start: float) -> RunResult:
    deadline = start + limits.wall_seconds
    stdin_fd = proc.stdin.fileno()
    pending = (json.dumps({"code": code}) + "\n").encode()
    calls_msg = (json.dumps({"calls": _calls_payload(calls)}) + "\n").encode()
    os.set_blocking(stdin_fd, False)
    sel = selectors.DefaultSelector()
    sel.register(res_r, selectors.EVENT_READ, "result")
    sel.register(out_r, selectors.EVENT_READ, "output")
    sel.register(stdin_fd, selectors.EVENT_WRITE, "stdin")
    open_reads = 2
    protocol, output = bytearray(), bytearray()
    output_seen = protocol_seen = 0
    events: list[dict] = []
    stop = None  # why we ended the run early
    exited_at = None
    calls_sent = False

    def close_stdin():
        sel.unregister(stdin_fd)
        proc.stdin.close()

    while open_reads and stop is None:
        now = time.monotonic()
        if now >= deadline:
            stop = "timeout"
            break
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > 0.5:
            break  # something the code left behind still holds a pipe open
        for key, _ in sel.select(timeout=min(0.1, deadline - now)):
            if key.data == "stdin":
                try:
                    sent = os.write(stdin_fd, pending)
                except (BrokenPipeError, BlockingIOError) as e:
                    if isinstance(e, BrokenPipeError):
                        close_stdin()
                    continue
                pending = pending[sent:]
                if not pending:
                    sel.unregister(stdin_fd)
                    if calls_sent:
                        proc.stdin.close()  # nothing more will come: a read for more gets end-of-file
                continue
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fd)
                open_reads -= 1
                continue
            if key.data == "output":
                output_seen += len(chunk)
                if keep_output:
                    output += chunk[: max(0, limits.output_bytes - len(output))]
                if output_seen > limits.output_bytes:
                    stop = "output"
                continue
            protocol_seen += len(chunk)
            if protocol_seen > _MAX_PROTOCOL_BYTES:
                stop = "crashed"
                continue
            protocol += chunk
            while b"\n" in protocol:
                line, _, rest = protocol.partition(b"\n")
                protocol[:] = rest
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # the student's code wrote on our channel; nothing it writes is trusted
                if not isinstance(event, dict):
                    continue
                events.append(event)
                if event.get("event") == "ready" and not calls_sent and not proc.stdin.closed:
                    pending, calls_sent = calls_msg, True
                    sel.register(stdin_fd, selectors.EVENT_WRITE, "stdin")
                elif event.get("event") == "sandbox_error":
                    raise SandboxError(f"the grading sandbox could not start: {event.get('message')}")
    if stop is not None:
        _kill_group(proc)
    try:
        returncode = proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        returncode = proc.wait()
    return _result(events, stop, returncode, output.decode("utf-8", "replace"), calls, limits,
                   time.monotonic() - start)


def _signal_of(returncode: int) -> int | None:
    if returncode < 0:
        return -returncode
    if returncode > 128:  # mirrored through the namespace's init process
        return returncode - 128
    return None


def _result(events: list[dict], stop: str | None, returncode: int, output: str, calls: Sequence[Case],
            limits: Limits, seconds: float) -> RunResult:
    isolation: tuple[str, ...] = ()
    outcomes: list[CallOutcome] = []
    syntax = load_error = None
    done = False
    for e in events:
        kind = e.get("event")
        if kind == "isolation":
            isolation = tuple(e.get("applied", ()))
        elif kind == "syntax_error":
            syntax = SyntaxProblem(str(e.get("message")), e.get("line"), e.get("offset"), str(e.get("text") or ""))
        elif kind == "load_error":
            load_error = _outcome(e)
        elif kind == "result" and len(outcomes) < len(calls):
            outcomes.append(_outcome(e))
        elif kind == "done":
            done = True

    sig = _signal_of(returncode)
    detail = ""
    if stop:
        status = stop
    elif sig in (signal.SIGXCPU, signal.SIGKILL) and not done:
        status = "timeout"  # CPU soft limit, or the hard limit's SIGKILL
    elif syntax:
        status, detail = "syntax_error", f"{syntax.message} on line {syntax.line}"
    elif load_error and load_error.kind in _KIND_ORDER:
        status = load_error.kind
    elif load_error:
        status, detail = "load_error", f"{load_error.error} (line {load_error.line})"
    elif not done:
        status = "memory" if "MemoryError" in output[-2000:] else "crashed"
        detail = signal.Signals(sig).name if sig else f"exit code {returncode}"
    else:
        kinds = {o.kind for o in outcomes}
        status = next((k for k in _KIND_ORDER if k in kinds), "completed")
    message = STATUS_MESSAGES[status].format(
        detail=detail, cpu=limits.cpu_seconds, wall=limits.wall_seconds, memory=limits.memory_bytes // MB,
        output=limits.output_bytes // 1024, file=limits.file_bytes // 1024, processes=limits.processes)
    return RunResult(status=status, message=message, outcomes=tuple(outcomes), calls_total=len(calls),
                     output=output, syntax=syntax, load_error=load_error, seconds=seconds, isolation=isolation)


def _outcome(e: dict) -> CallOutcome:
    if e.get("ok"):
        return CallOutcome(ok=True, repr=str(e.get("repr")))
    line = e.get("line")
    return CallOutcome(ok=False, error=str(e.get("error")), kind=str(e.get("kind") or "error"),
                       line=line if isinstance(line, int) else None, traceback=str(e.get("traceback") or ""))
