"""The backends: in-process, remote (against a real `tutor serve`), and the model worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tutor.backends import (
    BackendError,
    GenerationOptions,
    LocalBackend,
    ModelWorker,
    NotConfigured,
    RemoteBackend,
    WorkerBackend,
)
from tutor.engine import Tokenizer
from tutor.prompts import ContextFile

PREFIX, SUFFIX = "def mean(xs):\n    total = ", "\n    return total / len(xs)\n"
FILES = [ContextFile("utils.py", "import math\n")]
MESSAGES = [{"role": "user", "content": "Why use a for loop?"}]
OPTS = GenerationOptions(max_tokens=12, temperature=0)


@pytest.fixture(scope="module")
def local(tiny_dirs):
    return LocalBackend(str(tiny_dirs["2b"]), str(tiny_dirs["7b-it"]), dtype="float32")


@pytest.fixture(scope="module")
def remote(server):
    url, token = server
    backend = RemoteBackend(url, token)
    yield backend
    backend.close()


def test_local_backend(local):
    stream = local.fill_in_middle(PREFIX, SUFFIX, OPTS, files=FILES, path="main.py")
    pieces = list(stream)
    assert "".join(pieces) == stream.result.text
    assert stream.result.completion_tokens >= 1 and stream.result.model.endswith("codegemma-2b")
    assert local.chat(MESSAGES, OPTS).run().prompt_tokens > 0


def test_nothing_configured_says_how_to_configure():
    with pytest.raises(NotConfigured, match="TUTOR_CHAT_MODEL") as exc:
        LocalBackend(None, None).chat(MESSAGES)
    assert exc.value.status == 503


def test_bad_model_folder_is_a_backend_error(tmp_path):
    with pytest.raises(BackendError, match="no such folder|config.json"):
        LocalBackend(str(tmp_path / "missing")).fill_in_middle("a", "b")


def test_remote_equals_local(local, remote, server, tiny_dirs):
    with_ids = RemoteBackend(*server, tokenizer=Tokenizer(tiny_dirs["2b"] / "tokenizer.model"))
    expected = local.fill_in_middle(PREFIX, SUFFIX, OPTS, files=FILES, path="main.py").run()
    assert with_ids.fill_in_middle(PREFIX, SUFFIX, OPTS, files=FILES, path="main.py").run().text == expected.text
    as_text = remote.fill_in_middle(PREFIX, SUFFIX, OPTS, files=FILES, path="main.py").run()
    assert (as_text.text, as_text.prompt_tokens) == (expected.text, expected.prompt_tokens)
    assert remote.chat(MESSAGES, OPTS).run().text == local.chat(MESSAGES, OPTS).run().text
    with_ids.close()


def test_remote_cancel(remote):
    stream = remote.complete("x", GenerationOptions(max_tokens=1500, temperature=0), stop_token_ids=[])
    next(stream)
    stream.cancel()
    rest = list(stream)
    assert stream.result.finish_reason == "cancelled"
    assert len(rest) < 1500


def test_remote_errors(server):
    url, _ = server
    with pytest.raises(BackendError, match="refused the request \\(401\\)") as exc:
        RemoteBackend(url, "wrong").chat(MESSAGES)
    assert exc.value.status == 401
    with pytest.raises(BackendError, match="cannot reach the model server") as exc:
        RemoteBackend("http://127.0.0.1:9", None, chat_model="m").chat(MESSAGES)
    assert exc.value.status == 503


@pytest.fixture
def worker_backend(tiny_dirs):
    backend = WorkerBackend(ModelWorker(str(tiny_dirs["2b"]), str(tiny_dirs["7b-it"]), dtype="float32"))
    yield backend
    backend.close()


def test_worker_starts_on_first_use_and_comes_back_after_sigkill(worker_backend, local):
    assert not worker_backend.worker.alive()
    expected = local.fill_in_middle(PREFIX, SUFFIX, OPTS).run().text
    assert worker_backend.fill_in_middle(PREFIX, SUFFIX, OPTS).run().text == expected
    worker = worker_backend.worker
    assert worker.alive() and worker.url.startswith("http://127.0.0.1:")

    # Killed in the middle of a request: the caller gets a clear error, and survives.
    stream = worker_backend.complete("x", GenerationOptions(max_tokens=1500), stop_token_ids=[])
    next(stream)
    os.kill(worker.process.pid, signal.SIGKILL)
    with pytest.raises(BackendError, match="stopped while answering \\(killed by SIGKILL.*restarted"):
        list(stream)
    assert worker.alive() and worker.restarts == 1
    assert worker_backend.fill_in_middle(PREFIX, SUFFIX, OPTS).run().text == expected

    # Killed between requests: the next one restarts it and says so.
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait()
    result = worker_backend.chat(MESSAGES, OPTS).run()
    assert any("had stopped (killed by SIGKILL" in n for n in result.notices)


def test_worker_that_cannot_start_says_why(tmp_path):
    backend = WorkerBackend(ModelWorker(str(tmp_path / "nothing-here"), None, startup_timeout=60))
    with pytest.raises(BackendError, match="could not start .*no such folder"):
        backend.fill_in_middle("a", "b")


def test_worker_exits_with_its_parent(tiny_dirs):
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from tutor.backends import ModelWorker\n"
        f"w = ModelWorker({str(tiny_dirs['2b'])!r}, None)\n"
        "w.ensure()\n"
        "print(w.process.pid, flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    worker_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(worker_pid, signal.SIGKILL)
    pytest.fail("the worker outlived its parent")


def test_sessions_reuse_the_shared_prefix_locally_and_through_tutor_serve(local, remote):
    plain = local.fill_in_middle(PREFIX + "x", SUFFIX, OPTS).run()
    for backend in (local, remote):
        first = backend.fill_in_middle(PREFIX, SUFFIX, OPTS, session="nb.ipynb:cell-1").run()
        again = backend.fill_in_middle(PREFIX + "x", SUFFIX, OPTS, session="nb.ipynb:cell-1").run()
        assert first.cached_tokens == 0
        assert again.cached_tokens > 10  # everything up to the edit came from the cache
        assert again.text == plain.text  # and the tokens are those of a cold request
        other = backend.fill_in_middle(PREFIX + "x", SUFFIX, OPTS, session="nb.ipynb:cell-2").run()
        assert other.cached_tokens == 0  # another editor has its own cache


def test_draft_tokens_give_the_same_text_locally_and_through_tutor_serve(local, remote, tiny_dirs):
    vocab = Tokenizer(tiny_dirs["2b"] / "tokenizer.model").vocab_size
    prompt = [2, *range(4, vocab)]  # every token occurs in the prompt, so there is always a draft
    plain = local.complete(prompt, GenerationOptions(max_tokens=40)).run()
    for backend in (local, remote):
        got = backend.complete(prompt, GenerationOptions(max_tokens=40, draft_tokens=4)).run()
        assert got.text == plain.text
        assert got.accepted_draft_tokens + got.rejected_draft_tokens > 0  # the option reached the engine
    with pytest.raises(BackendError, match="draft_tokens"):
        GenerationOptions(draft_tokens=99)
