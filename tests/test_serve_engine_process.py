"""`tutor serve`'s batch in a process of its own (tutor.serving.engine_process): the parent answers
HTTP and loads no weight; the child's errors reach the client; a child that dies leaves a server
that says so instead of hanging. A real server and its real child, on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import start_server

from tutor.engine import load
from tutor.prompts import fim_prompt

TOKEN = "class-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def engine_child(pid: int) -> int:
    """The server's child that runs the models (multiprocessing may start a helper beside it)."""
    for child in children(pid):
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
            return child
    raise AssertionError(f"no model process under the server: children {children(pid)}")


def mapped_weights(pid: int, folder: Path) -> bool:
    """Whether the process has the checkpoint's safetensors open or mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    fds = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir() if fd.is_symlink()]
    return any(str(folder) in line and ".safetensors" in line for line in [*maps.splitlines(), *fds])


@pytest.fixture
def served(tiny_dirs):
    proc, url = start_server("--model", str(tiny_dirs["2b"]), "--token", TOKEN, "--dtype", "float32",
                             "--scheduler", "batched", "--slots", "2")
    yield proc, url
    proc.terminate()
    proc.wait(timeout=30)


def test_answers_come_from_the_child_and_equal_the_engine(served, tiny_dirs):
    proc, url = served
    engine = load(tiny_dirs["2b"], device="cpu", dtype="float32")
    ids = fim_prompt(engine.tokenizer, "def add(a, b):\n    return ", "\n")
    expected = engine.generate(ids, max_new_tokens=9, stop_token_ids=[]).text
    r = httpx.post(f"{url}/v1/completions", headers=AUTH, timeout=60,
                   json={"prompt": ids, "max_tokens": 9, "temperature": 0, "stop_token_ids": []})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == expected
    health = httpx.get(f"{url}/health", timeout=10).json()["models"][str(tiny_dirs["2b"])]
    assert health["process"] == "its own" and health["decode"].startswith("batched 2 slots")


def test_the_http_process_loads_no_weight(tiny_dirs):
    """In the checkpoint's own dtype the weights stay mapped from their files where they are loaded."""
    proc, _ = start_server("--model", str(tiny_dirs["2b"]), "--token", TOKEN, "--scheduler", "batched",
                           "--slots", "2")
    try:
        assert mapped_weights(engine_child(proc.pid), tiny_dirs["2b"])
        assert not mapped_weights(proc.pid, tiny_dirs["2b"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_childs_checks_answer_400_with_their_message(served):
    _, url = served
    r = httpx.post(f"{url}/v1/completions", headers=AUTH, timeout=60,
                   json={"prompt": "x " * 5000, "max_tokens": 4})
    assert r.status_code == 400, r.text
    assert "context" in r.json()["error"]["message"]


def test_a_dead_model_process_gives_503_and_an_unhealthy_health(served):
    proc, url = served
    os.kill(engine_child(proc.pid), signal.SIGKILL)
    r = None
    for _ in range(50):  # the parent learns of it when the pipe closes: at once, but on another thread
        r = httpx.post(f"{url}/v1/completions", headers=AUTH, timeout=30, json={"prompt": "def f(", "max_tokens": 2})
        if r.status_code == 503:
            break
    assert r is not None and r.status_code == 503, r.text
    assert "model process stopped" in r.json()["error"]["message"]
    health = httpx.get(f"{url}/health", timeout=10)
    assert health.status_code == 503 and health.json()["status"] == "error"
    assert proc.poll() is None  # the server itself stays up, and says what is wrong


def test_a_folder_the_child_cannot_load_fails_the_start_with_its_message(tmp_path):
    broken = tmp_path / "codegemma-2b"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    run = subprocess.run([sys.executable, "-m", "tutor.cli", "serve", "--model", str(broken), "--port", "0",
                          "--scheduler", "batched", "--device", "cpu", "--progress", "none"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "config.json" in run.stderr and "Traceback" not in run.stderr


def test_in_process_keeps_the_models_in_the_server(tiny_dirs):
    proc, url = start_server("--model", str(tiny_dirs["2b"]), "--token", TOKEN, "--dtype", "float32",
                             "--scheduler", "batched", "--slots", "2", "--in-process")
    try:
        health = httpx.get(f"{url}/health", timeout=10).json()["models"][str(tiny_dirs["2b"])]
        assert health["decode"].startswith("batched") and health["process"] == "the server's"
        r = httpx.post(f"{url}/v1/completions", headers=AUTH, timeout=60, json={"prompt": "def f(", "max_tokens": 3})
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_server_killed_outright_leaves_no_model_process_behind(tiny_dirs):
    """kill -9 of the server (no clean-up runs in it): the child sees its pipe end and exits, so no
    orphan keeps the GPU's memory."""
    proc, _ = start_server("--model", str(tiny_dirs["2b"]), "--scheduler", "batched", "--slots", "2")
    child = engine_child(proc.pid)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(child), "the model process outlived its server"


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited child waits there for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_a_stream_interval_sends_the_pieces_that_piled_up_as_one_event(tiny_dirs):
    """--stream-interval: after the first piece, what comes within the interval goes out as one event,
    and the text is the same as unstreamed; the answer's end still arrives (it is never held)."""
    proc, url = start_server("--model", str(tiny_dirs["2b"]), "--token", TOKEN, "--dtype", "float32",
                             "--scheduler", "batched", "--slots", "2", "--stream-interval", "60000")
    try:
        body = {"prompt": "def add(a, b):", "max_tokens": 24, "temperature": 0, "stop_token_ids": []}
        whole = httpx.post(f"{url}/v1/completions", headers=AUTH, json=body, timeout=60).json()
        texts, finish = [], None
        with httpx.stream("POST", f"{url}/v1/completions", headers=AUTH, json={**body, "stream": True},
                          timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    choice = json.loads(line[6:])["choices"][0]
                    finish = choice["finish_reason"] or finish
                    if choice["text"]:
                        texts.append(choice["text"])
        assert "".join(texts) == whole["choices"][0]["text"] and finish == "length"
        assert whole["usage"]["completion_tokens"] == 24
        assert len(texts) <= 2  # the first piece, then the rest together (never one event a token)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
