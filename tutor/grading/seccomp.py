"""A seccomp filter for the sandbox, compiled by libseccomp (the library flatpak, podman and systemd use).

The filter refuses (EPERM) the system calls a student's program never needs and that widen the
kernel's attack surface or reach other processes: ptrace and cross-process memory access, keyrings,
BPF, perf, userfaultfd, io_uring, mounts, namespaces, modules, kexec, reboot, swap. Everything else is
allowed: it is a deny-list on top of the namespaces and limits, not the boundary itself. System calls
of another architecture (a 32-bit call on x86-64) kill the process, as libseccomp does by default.

libseccomp is reached through ctypes (libseccomp.so.2 is part of every Debian and Ubuntu system: apt
needs it); where it is missing, `filter_program()` returns None and the run reports no "seccomp".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from functools import lru_cache

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
SCMP_CMP_EQ = 4

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick",
    "mount_setattr", "setns", "unshare",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
    "personality",
)
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _library():
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.c_void_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


@lru_cache(maxsize=2)
def filter_program(no_sockets: bool = False) -> bytes | None:
    """The compiled BPF program (struct sock_filter[]), or None where libseccomp is not installed.

    With `no_sockets` (a run that has no network namespace of its own), creating Internet and UNIX
    sockets is refused too, so nothing on the host can be reached through them.
    """
    lib = _library()
    if lib is None:
        return None
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        return None
    try:
        deny = SCMP_ACT_ERRNO | errno.EPERM
        for name in DENIED:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                continue  # not a system call on this architecture
            if lib.seccomp_rule_add_array(ctx, deny, number, 0, None) != 0:
                return None
        if no_sockets:
            number = lib.seccomp_syscall_resolve_name(b"socket")
            for family in (AF_UNIX, AF_INET, AF_INET6):
                cmp = _ArgCmp(0, SCMP_CMP_EQ, family, 0)
                if lib.seccomp_rule_add_array(ctx, deny, number, 1, ctypes.byref(cmp)) != 0:
                    return None
        read, write = os.pipe()
        try:
            failed = lib.seccomp_export_bpf(ctx, write) != 0
        finally:
            os.close(write)
        with os.fdopen(read, "rb") as f:
            program = f.read()
        return None if failed or not program else program
    finally:
        lib.seccomp_release(ctx)
