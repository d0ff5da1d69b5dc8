"""Shared fixtures: tiny CodeGemma checkpoints in the real layout, made once per test session."""

from __future__ import annotations

import collections
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

# Without a GPU, Triton kernels (tests/test_decode_attention.py) run in Triton's interpreter, which
# must be chosen before triton is first imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from tutor.engine import load  # noqa: E402
from tutor.engine.tiny import make_tiny  # noqa: E402


def skip_without_gpu() -> None:
    """For a GPU test module's top: skip it without CUDA, unless TUTOR_REQUIRE_GPU is set (a GPU run
    that quietly skipped its GPU tests would report a pass it never earned): then fail."""
    if torch.cuda.is_available():
        return
    if os.environ.get("TUTOR_REQUIRE_GPU"):
        raise RuntimeError("torch sees no CUDA GPU, and TUTOR_REQUIRE_GPU is set: check the machine "
                           "(nvidia-smi) and that torch is a CUDA build (torch.version.cuda)")
    pytest.skip("needs a CUDA GPU (TUTOR_REQUIRE_GPU=1 makes this a failure)", allow_module_level=True)


# pyproject.toml's default deadline (timeout = 300) is for ordinary tests; a test marked slow gets this.
SLOW_TIMEOUT = 1200


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {variant: make_tiny(root / f"codegemma-{variant}", variant) for variant in ("2b", "7b", "7b-it")}


@pytest.fixture(scope="session")
def tiny_2b_dir(tiny_dirs) -> Path:
    return tiny_dirs["2b"]


@pytest.fixture(scope="session")
def tiny_2b(tiny_2b_dir):
    return load(tiny_2b_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_7b(tiny_dirs):
    return load(tiny_dirs["7b"], device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_it(tiny_dirs):
    return load(tiny_dirs["7b-it"], device="cpu", dtype="float32")


@pytest.fixture
def tiny_copy(tiny_2b_dir, tmp_path) -> Path:
    """A private copy of the tiny 2B folder that a test may break."""
    return Path(shutil.copytree(tiny_2b_dir, tmp_path / "codegemma-2b"))


def _drain(pipe, lines: queue.Queue[str | None], tail: collections.deque[str]) -> None:
    """Read a child's pipe to its end on a thread, so that the child never blocks on a full pipe."""
    for line in pipe:
        tail.append(line)
        lines.put(line)
    lines.put(None)  # end of the stream: the child closed it or exited


def start_server(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """Start `tutor serve` on a free loopback port; returns (process, base URL).

    Both of the child's pipes are read on threads for its whole life (a log that fills a pipe would
    stop it mid-request), and the wait for its "listening" line has a deadline."""
    cmd = [sys.executable, "-m", "tutor.cli", "serve", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    stdout: queue.Queue[str | None] = queue.Queue()
    stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
    for pipe, lines, tail in ((proc.stdout, stdout, collections.deque(maxlen=40)),
                              (proc.stderr, queue.Queue(), stderr_tail)):
        threading.Thread(target=_drain, args=(pipe, lines, tail), daemon=True).start()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = stdout.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            proc.wait(timeout=30)
            raise RuntimeError(f"tutor serve exited ({proc.returncode}): {''.join(stderr_tail)}")
        if line.startswith("tutor serve: listening on "):
            return proc, line.split()[-1]
    proc.kill()
    proc.wait(timeout=30)
    raise RuntimeError(f"tutor serve did not start in {timeout:.0f} s: {''.join(stderr_tail)}")


@pytest.fixture(scope="session")
def server(tiny_dirs):
    """A real `tutor serve` with the tiny 2B as completion model and the tiny 7B-it for chat."""
    proc, url = start_server("--model", str(tiny_dirs["2b"]), "--chat-model", str(tiny_dirs["7b-it"]),
                             "--token", "test-token", "--dtype", "float32", "--max-queue", "4")
    yield url, "test-token"
    proc.terminate()
    proc.wait(timeout=30)
