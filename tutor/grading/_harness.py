"""Runs inside the sandbox as `python -I -S -u -B -c <this source> CONFIG`; stdlib only.

Line-delimited JSON; the grader drives every step and waits for exactly one reply to each:
  -> {"event": "started"}          (before any of the student's code exists here: the sandbox is up)
  <- {"code": str}
  -> {"event": "syntax_error", ...} | {"event": "load_error", ...} | {"event": "ready"}
  <- {"call": {"setup": str, "call": str, "check": str}}   (one at a time, only after the last reply)
  -> {"event": "result", "ok": bool, "repr"|"error"...}
  end of input: exit.
The student's code runs in this process, so it can write on the result fd too; the grader treats
what comes on it as the student's and accepts only one reply of the expected shape and size per
request (a forged line ends the run). The student's code is defined before any test reaches this
process, tests arrive one by one, and expected values never do: the grader compares the reprs.
"""

import builtins
import errno
import json
import linecache
import os
import sys
import traceback

STUDENT = "<your code>"
MAX_REPR = 100_000
_HOME_PID = os.getpid()


def _send(fd: int, message: dict) -> None:
    if os.getpid() != _HOME_PID:  # a process the student forked came back here: it has no say
        os._exit(0)
    os.write(fd, (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "replace"))


def _kind(e: BaseException) -> str:
    if isinstance(e, MemoryError):
        return "memory"
    if isinstance(e, RecursionError):
        return "recursion"
    if isinstance(e, OSError):
        if e.errno == errno.EFBIG:
            return "file_too_large"
        if e.errno == errno.EAGAIN and "fork" in "".join(traceback.format_tb(e.__traceback__)):
            return "processes"
        socket = sys.modules.get("socket")
        if (socket and isinstance(e, socket.gaierror)) or e.errno in (
                errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EADDRNOTAVAIL):
            return "network"
    return "error"


def _describe(e: BaseException) -> dict:
    student_lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == STUDENT]
    shown = traceback.format_exception(type(e), e, e.__traceback__)
    # Keep the student's frames; the harness's own are noise to them.
    kept = [shown[0]] + [s for s in shown[1:-1] if STUDENT in s or "<test>" in s] + [shown[-1]]
    return {"error": "".join(traceback.format_exception_only(type(e), e)).strip()[:2000],
            "kind": _kind(e), "line": student_lines[-1] if student_lines else None,
            "traceback": "".join(kept)[-5000:]}


def _block_sockets() -> None:
    """Best effort only, where no network namespace was possible: not a security boundary."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError(errno.ENETUNREACH, "network access is not allowed while grading")

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            refuse()

    socket.socket = NoSocket
    socket.create_connection = socket.getaddrinfo = socket.socketpair = refuse


def _run_call(call: dict, namespace: dict):
    scope = dict(namespace)  # setup names stay local to this test
    if call.get("setup"):
        exec(compile(call["setup"], "<test>", "exec"), scope)
    if call.get("check"):
        exec(compile(call["check"], "<test>", "exec"), scope)
        return None
    return eval(compile(call["call"], "<test>", "eval"), scope)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    fd = cfg["result_fd"]
    if cfg.get("nproc"):
        # Lowered here, inside the sandbox's own user namespace where the count is this run's alone
        # (set before, it would also have to cover every other process of the same user).
        import resource

        resource.setrlimit(resource.RLIMIT_NPROC, (cfg["nproc"],) * 2)
    if cfg.get("block_sockets"):
        _block_sockets()
    _send(fd, {"event": "started"})
    request = json.loads(sys.stdin.readline())
    code, prelude = request["code"], request.get("prelude", "")
    linecache.cache[STUDENT] = (len(code), None, code.splitlines(True), STUDENT)
    try:
        compiled = compile(code, STUDENT, "exec")
    except (SyntaxError, ValueError) as e:
        _send(fd, {"event": "syntax_error", "message": getattr(e, "msg", str(e)), "line": getattr(e, "lineno", None),
                   "offset": getattr(e, "offset", None), "text": (getattr(e, "text", None) or "").rstrip()})
        return
    namespace = {"__name__": "__student__", "__builtins__": builtins}
    if prelude:  # the lesson's own worked examples: not the student's, and their printing is not theirs either
        import contextlib
        import io

        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(prelude, "<lesson>", "exec"), namespace)
        except BaseException as e:
            _send(fd, {"event": "load_error", **_describe(e)})
            return
    try:
        exec(compiled, namespace)
    except BaseException as e:  # SystemExit and KeyboardInterrupt included: the student's code ended itself
        _send(fd, {"event": "load_error", **_describe(e)})
        return
    _send(fd, {"event": "ready"})

    while line := sys.stdin.readline():
        call = json.loads(line)["call"]
        try:
            value = _run_call(call, namespace)
            text = repr(value)
        except BaseException as e:
            _send(fd, {"event": "result", "ok": False, **_describe(e)})
            continue
        finally:
            sys.stdout.flush()
        _send(fd, {"event": "result", "ok": True, "repr": text[:MAX_REPR], "truncated": len(text) > MAX_REPR})


main()
