"""One control group per sandbox run: a memory cap for all its processes together, and a process cap.

cgroup v2 where this process may make child groups with the memory and pids controllers (a
delegated subtree: a systemd service with Delegate=yes, a container that hands its group over), else
cgroup v1's memory and pids hierarchies (as root). Where neither can be had (an ordinary user without
delegation, macOS), `RunCgroup.create` returns None and the sandbox falls back to fewer processes, so
that processes x memory per process stays within the run's limit (see sandbox.py).

The launcher moves itself into the group before anything untrusted runs, so every process of the run
is counted from its first instruction; the group is removed after the run.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own_path(controller: str | None) -> str | None:
    """This process's group in the v1 hierarchy of `controller` (None: the v2 hierarchy)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or (controller in controllers.split(",")):
            return path
    return None


def _write(path: Path, value: str) -> None:
    path.write_text(value)


@dataclass
class RunCgroup:
    version: int
    folders: tuple[Path, ...]  # the run's groups (one for v2; memory and pids for v1)
    memory_bytes: int

    @property
    def procs_files(self) -> tuple[str, ...]:
        """Where the launcher writes its pid to join."""
        return tuple(str(f / "cgroup.procs") for f in self.folders)

    @classmethod
    def create(cls, memory_bytes: int, processes: int) -> RunCgroup | None:
        """A fresh group capped at `memory_bytes` (no swap) and `processes` tasks, or None if not allowed here."""
        name = f"tutor-grade-{uuid.uuid4().hex[:12]}"
        return cls._create_v2(name, memory_bytes, processes) or cls._create_v1(name, memory_bytes, processes)

    @classmethod
    def _create_v2(cls, name: str, memory_bytes: int, processes: int) -> RunCgroup | None:
        own = _own_path(None)
        if own is None or not (ROOT / "cgroup.controllers").exists():
            return None
        folder = ROOT / own.lstrip("/") / name
        try:
            folder.mkdir()
        except OSError:
            return None
        group = cls(2, (folder,), memory_bytes)
        try:
            available = (folder / "cgroup.controllers").read_text().split()
            if not {"memory", "pids"} <= set(available):
                raise OSError("memory and pids controllers are not delegated here")
            _write(folder / "memory.max", str(memory_bytes))
            if (folder / "memory.swap.max").exists():
                _write(folder / "memory.swap.max", "0")
            _write(folder / "pids.max", str(processes))
        except OSError:
            group.remove()
            return None
        return group

    @classmethod
    def _create_v1(cls, name: str, memory_bytes: int, processes: int) -> RunCgroup | None:
        folders = []
        for controller in ("memory", "pids"):
            own = _own_path(controller)
            base = ROOT / controller
            if own is None or not base.is_dir():
                break
            folder = base / own.lstrip("/") / name
            try:
                folder.mkdir()
            except OSError:
                break
            folders.append(folder)
        group = cls(1, tuple(folders), memory_bytes)
        if len(folders) < 2:
            group.remove()
            return None
        memory, pids = folders
        cpuacct_own = _own_path("cpuacct")
        if cpuacct_own is not None and (ROOT / "cpuacct").is_dir():  # optional: the run's CPU time, measured
            try:
                folder = ROOT / "cpuacct" / cpuacct_own.lstrip("/") / name
                folder.mkdir()
                group.folders += (folder,)
            except OSError:
                pass
        try:
            _write(memory / "memory.limit_in_bytes", str(memory_bytes))
            if (memory / "memory.memsw.limit_in_bytes").exists():  # swap counted too, where the kernel accounts it
                _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
            _write(pids / "pids.max", str(processes))
        except OSError:
            group.remove()
            return None
        return group

    def oom_kills(self) -> int:
        """How many processes the kernel killed for going over the memory cap (read by the grader: trusted)."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = (self.folders[0] / name).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def cpu_seconds(self) -> float | None:
        """CPU time of every process that was in the group (None where no controller counts it)."""
        try:
            if self.version == 2:
                for line in (self.folders[0] / "cpu.stat").read_text().splitlines():
                    if line.startswith("usage_usec "):
                        return int(line.split()[1]) / 1e6
                return None
            for folder in self.folders[2:]:
                return int((folder / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            return None
        return None

    def peak_bytes(self) -> int | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.folders[0] / name).read_text().strip())
        except (OSError, ValueError):
            return None

    def kill_all(self) -> None:
        """SIGKILL whatever is left in the group (the PID namespace normally has ended it already)."""
        for folder in self.folders:
            kill = folder / "cgroup.kill"
            if kill.exists():
                try:
                    _write(kill, "1")
                    continue
                except OSError:
                    pass
            try:
                pids = (folder / "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (OSError, ValueError):
                    pass

    def remove(self) -> None:
        for folder in self.folders:
            for _ in range(100):  # a process that was just killed leaves its group a moment later
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill_all()
                    time.sleep(0.01)
