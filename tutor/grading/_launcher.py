"""Sandbox launcher: a fresh, single-threaded process that locks itself down, then runs the harness.

Run as `python -I -S _launcher.py CONFIG_JSON` by tutor.grading.sandbox (stdlib only, no tutor
imports). Doing this here instead of in a preexec_fn keeps the grader safe to use from a
multi-threaded process such as a Jupyter kernel.

Steps: resource limits -> new network, PID and mount namespaces where allowed (as root directly;
otherwise inside a new user namespace) -> an init process (PID 1 of the namespace, so that when it
ends every process the student started ends too) -> private /tmp, a fresh /proc, hidden paths ->
drop to an unprivileged uid (when root) -> exec the harness with a minimal environment.
Every protection that took effect is reported on the result pipe as {"event": "isolation"}.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


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


def _set_limits(limits: dict, nproc: int) -> None:
    cpu = int(limits["cpu_seconds"] + 0.999)
    # Soft limit sends SIGXCPU; the hard limit (one second later) is a SIGKILL nothing can ignore.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _enter_namespaces(root: bool, applied: list) -> int:
    """Unshare what the platform allows; returns the flags that took effect."""
    wanted = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS
    if root:
        for flags in (wanted, CLONE_NEWNET | CLONE_NEWNS, CLONE_NEWNET):
            if _unshare(flags):
                return flags
        return 0
    # Unprivileged: a user namespace makes the others possible and has its own process count.
    uid, gid = os.getuid(), os.getgid()
    for flags in (wanted | CLONE_NEWUSER, CLONE_NEWNET | CLONE_NEWUSER):
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
    for scratch in ("/var/tmp", "/dev/shm"):
        if os.path.isdir(scratch):
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


def _exec_harness(cfg: dict, workdir: str, result_fd: int) -> None:
    os.chdir(workdir)
    if os.geteuid() == 0 and cfg["uid"] is not None:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": workdir}
    harness_cfg = json.dumps({"result_fd": result_fd, "block_sockets": cfg["block_sockets"]})
    python = cfg["python"]
    os.execve(python, [python, "-I", "-S", "-u", "-B", "-c", cfg["harness"], harness_cfg], env)


def _wait_and_mirror(child: int) -> int:
    """Wait for `child`, reaping orphans on the way (we may be PID 1); its status as an exit code."""
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    fd = cfg["result_fd"]
    root = os.geteuid() == 0
    applied: list = ["rlimits"]
    try:
        with open(cfg["harness_path"], encoding="utf-8") as f:
            cfg["harness"] = f.read()
        dropping = root and cfg["uid"] is not None
        nproc = cfg["limits"]["processes"]
        if not root:
            nproc += _user_tasks(os.getuid())  # same-uid tasks elsewhere count too (until a user namespace)
        flags = _enter_namespaces(root, applied)
        # In a user namespace the count is the namespace's own, so the plain limit applies again.
        _set_limits(cfg["limits"], cfg["limits"]["processes"] if flags & CLONE_NEWUSER else nproc)
        if flags & CLONE_NEWNET:
            applied.append("no-network")
        if flags & CLONE_NEWPID:
            applied.append("pid-namespace")
        if dropping:
            applied.append(f"uid-{cfg['uid']}")
        cfg["block_sockets"] = not flags & CLONE_NEWNET
        cfg["pid_namespace"] = bool(flags & CLONE_NEWPID)
    except Exception as e:  # a broken grader, not the student's fault
        _send(fd, {"event": "sandbox_error", "message": f"{type(e).__name__}: {e}"})
        os._exit(70)

    def lock_down_and_exec() -> None:
        try:
            private_tmp = bool(flags & CLONE_NEWNS) and _private_mounts(cfg, applied)
            _send(fd, {"event": "isolation", "applied": applied})
            _exec_harness(cfg, "/tmp" if private_tmp else cfg["workdir"], fd)
        except Exception as e:
            _send(fd, {"event": "sandbox_error", "message": f"{type(e).__name__}: {e}"})
            os._exit(70)

    if not flags & CLONE_NEWPID:
        lock_down_and_exec()
    init = os.fork()
    if init == 0:
        # PID 1 of the new namespace: stays privileged (the student cannot signal it), runs the
        # student's process, and when it exits the kernel kills everything left in the namespace.
        try:
            worker = os.fork()
            if worker == 0:
                lock_down_and_exec()
            os._exit(_wait_and_mirror(worker))
        except BaseException:
            os._exit(70)
    os._exit(_wait_and_mirror(init))


if __name__ == "__main__":
    main()
