"""Sandbox launcher: a fresh, single-threaded process that locks itself down, then starts the harness.

Run as `python -I -S _launcher.py CONFIG_JSON` by tutor.grading.sandbox (stdlib only, no tutor
imports). Doing this here instead of in a preexec_fn keeps the grader safe to use from a
multi-threaded process such as a Jupyter kernel.

Common steps, all before anything untrusted runs: join the run's cgroup (when the grader made one),
set the resource limits, drop to the unprivileged sandbox uid (when root).

Then either
- "bwrap": exec bubblewrap with the argument list the grader built (the allow-list filesystem view,
  every namespace, the seccomp filter), which runs the harness; or
- "native" (bubblewrap is not installed): our own namespaces where the kernel allows them, a private
  /tmp, hidden paths and the seccomp filter, then exec the harness.

The control fd carries only what this trusted code says (isolation, setup errors, the exit status
seen by the namespace's init process). It is closed on exec, so the student's code never holds it:
bubblewrap closes its --json-status-fd in the sandbox, and here it is close-on-exec.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2

_libc = ctypes.CDLL(None, use_errno=True)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _ok(result: int) -> bool:
    return result == 0


def _unshare(flags: int) -> bool:
    return _ok(_libc.unshare(ctypes.c_int(flags)))


def _mount(source, target, fstype, flags, options) -> bool:
    def enc(s):
        return s.encode() if s is not None else None

    return _ok(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(options)))


def _send(fd: int, message: dict) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())


def _user_tasks(uid: int) -> int:
    """Tasks (processes and threads) owned by `uid`: RLIMIT_NPROC counts them all, not just ours."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                if int(fields["Uid"].split()[0]) == uid:
                    count += int(fields["Threads"])
            except (OSError, KeyError, ValueError):
                pass
    return count


def _set_limits(cfg: dict, nproc: int) -> None:
    limits = cfg["limits"]
    cpu = int(limits["cpu_seconds"] + 0.999)
    # Soft limit sends SIGXCPU; the hard limit (one second later) is a SIGKILL nothing can ignore.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (cfg["address_space"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _join_cgroup(cfg: dict) -> None:
    for procs in cfg["cgroup_procs"]:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))


def _drop_privileges(cfg: dict) -> None:
    if os.geteuid() == 0 and cfg["uid"] is not None:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])


def _read_seccomp(cfg: dict) -> bytes | None:
    fd = cfg.get("seccomp_fd")
    if fd is None:
        return None
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _load_seccomp(program: bytes) -> bool:
    """Install a compiled BPF filter on this process (inherited by everything it starts)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    if not _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)):
        return False
    return _ok(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0))


# ------------------------------------------------------------------ bubblewrap

def _run_bwrap(cfg: dict) -> None:
    # The user's other processes count against RLIMIT_NPROC until bubblewrap's user namespace exists;
    # the harness lowers it to the run's own limit inside (see _harness.py).
    nproc = cfg["nproc"]
    if os.geteuid() != 0:
        nproc += _user_tasks(os.getuid())
    _set_limits(cfg, nproc)
    _drop_privileges(cfg)
    os.set_inheritable(cfg["ctrl_fd"], True)  # bubblewrap's --json-status-fd; it keeps it out of the sandbox
    _send(cfg["ctrl_fd"], {"event": "isolation", "applied": cfg["isolation"]})
    argv = cfg["bwrap_argv"]
    os.execve(argv[0], argv, cfg["env"])


# ------------------------------------------------------------------ our own namespaces (no bubblewrap)

def _enter_namespaces(root: bool, applied: list) -> int:
    """Unshare what the platform allows; returns the flags that took effect."""
    wanted = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
    if root:
        for flags in (wanted, CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC, CLONE_NEWNET):
            if _unshare(flags):
                return flags
        return 0
    # Unprivileged: a user namespace makes the others possible and has its own process count.
    uid, gid = os.getuid(), os.getgid()
    for flags in (wanted | CLONE_NEWUSER, CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUSER):
        if _unshare(flags):
            try:
                with open("/proc/self/setgroups", "w") as f:
                    f.write("deny")
                with open("/proc/self/uid_map", "w") as f:
                    f.write(f"{uid} {uid} 1")
                with open("/proc/self/gid_map", "w") as f:
                    f.write(f"{gid} {gid} 1")
            except OSError:
                pass
            applied.append("user-namespace")
            return flags
    return 0


def _private_mounts(cfg: dict, applied: list) -> bool:
    """Fresh /tmp (the working directory), fresh /proc, and the hidden paths covered. True if /tmp is private."""
    if not _mount(None, "/", None, MS_REC | MS_PRIVATE, None):
        return False
    size = cfg["limits"]["disk_bytes"]
    private_tmp = _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    if private_tmp:
        applied.append("private-tmp")
    for scratch in ("/var/tmp", "/dev/shm", "/run/lock", "/run/shm"):
        if os.path.isdir(scratch) and not os.path.islink(scratch):
            _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    if cfg["pid_namespace"] and _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None):
        applied.append("private-proc")
    hidden = True
    for path in cfg["hide"]:
        if os.path.isdir(path):
            hidden &= _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0")
        elif os.path.exists(path):
            hidden &= _mount("/dev/null", path, None, MS_BIND, None)
    if hidden and cfg["hide"]:
        applied.append("hidden-paths")
    return private_tmp


def _exec_harness(cfg: dict, workdir: str, applied: list) -> None:
    os.chdir(workdir)
    _drop_privileges(cfg)
    if cfg["seccomp"] is not None and _load_seccomp(cfg["seccomp"]):
        applied.append("seccomp")
    _send(cfg["ctrl_fd"], {"event": "isolation", "applied": applied})
    env = dict(cfg["env"], HOME=workdir)
    python = cfg["python"]
    os.execve(python, [python, *cfg["harness_args"]], env)


def _wait_for(child: int) -> tuple[int | None, int | None]:
    """Wait for `child`, reaping orphans on the way (we may be PID 1); (exit code, signal)."""
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            if os.WIFSIGNALED(status):
                return None, os.WTERMSIG(status)
            return os.WEXITSTATUS(status), None


def _run_native(cfg: dict, applied: list) -> None:
    ctrl = cfg["ctrl_fd"]
    root = os.geteuid() == 0
    nproc = cfg["nproc"] if root else cfg["nproc"] + _user_tasks(os.getuid())
    flags = _enter_namespaces(root, applied)
    # In a user namespace the count is the namespace's own, so the plain limit applies again.
    _set_limits(cfg, cfg["nproc"] if flags & CLONE_NEWUSER else nproc)
    if flags & CLONE_NEWNET:
        applied.append("no-network")
    if flags & CLONE_NEWPID:
        applied.append("pid-namespace")
    if flags & CLONE_NEWIPC:
        applied.append("ipc-namespace")
    if flags & CLONE_NEWUTS and _ok(_libc.sethostname(b"sandbox", 7)):
        applied.append("uts-namespace")
    if root and cfg["uid"] is not None:
        applied.append(f"uid-{cfg['uid']}")
    cfg["pid_namespace"] = bool(flags & CLONE_NEWPID)
    no_network = bool(flags & CLONE_NEWNET)
    cfg["seccomp"] = cfg["seccomp_programs"][0 if no_network else 1]
    cfg["harness_args"][-1] = json.dumps(dict(json.loads(cfg["harness_args"][-1]), block_sockets=not no_network))

    def lock_down_and_exec() -> None:
        try:
            private_tmp = bool(flags & CLONE_NEWNS) and _private_mounts(cfg, applied)
            _exec_harness(cfg, "/tmp" if private_tmp else cfg["workdir"], applied)
        except Exception as e:
            _send(ctrl, {"event": "sandbox_error", "message": f"{type(e).__name__}: {e}"})
            os._exit(70)

    if not flags & CLONE_NEWPID:
        lock_down_and_exec()
    init = os.fork()
    if init == 0:
        # PID 1 of the new namespace: stays privileged (the student cannot signal it), runs the
        # student's process, says how it ended on the control fd (which the student never holds),
        # and when it exits the kernel kills everything left in the namespace.
        try:
            worker = os.fork()
            if worker == 0:
                lock_down_and_exec()
            code, sig = _wait_for(worker)
            _send(ctrl, {"exit-code": code, "signal": sig})
            os._exit(0)
        except BaseException:
            os._exit(70)
    code, sig = _wait_for(init)
    os._exit(code if code is not None else 70)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    ctrl = cfg["ctrl_fd"]
    os.set_inheritable(ctrl, False)  # never reaches the harness
    applied: list = ["rlimits"]
    try:
        _join_cgroup(cfg)
        if cfg["cgroup_procs"]:
            applied.append("cgroup")
        if cfg["mode"] == "bwrap":
            _run_bwrap(cfg)
        programs = cfg.pop("seccomp_programs_fds", [None, None])
        cfg["seccomp_programs"] = [_read_seccomp({"seccomp_fd": fd}) for fd in programs]
        _run_native(cfg, applied)
    except Exception as e:  # a broken grader, not the student's fault
        _send(ctrl, {"event": "sandbox_error", "message": f"{type(e).__name__}: {e}"})
        os._exit(70)


if __name__ == "__main__":
    main()
