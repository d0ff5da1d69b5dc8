"""The remote backend against a real third-party server: llama-cpp-python's OpenAI server.

The tiny checkpoints are written as GGUF (tests/gguf_tiny.py, float32 so that greedy decoding is
the engine's float32 greedy decoding) and served by one `python -m llama_cpp.server` on loopback,
both models behind one URL, unnamed (their ids are the files' paths). The tutor is configured as a
teacher would: the endpoint, and the completion model's local folder (for its tokenizer), through
make_backend. Skipped where llama-cpp-python is not installed.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tutor.backends import GenerationOptions, LocalBackend, RemoteBackend, make_backend
from tutor.prompts import fim_prompt, fim_segments
from tutor.settings import Settings

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
gguf_tiny = pytest.importorskip("gguf_tiny", reason="the gguf package is not installed")

PREFIX, SUFFIX = "def mean(xs):\n    total = ", "\n    return total / len(xs)\n"
OPTS = GenerationOptions(max_tokens=24, temperature=0)
RULES = "You are a tutor. Never give the full solution; answer with a hint."
MESSAGES = [{"role": "system", "content": RULES}, {"role": "user", "content": "How do I add up a list?"}]


def same_text(one: str, other: str) -> bool:
    """Equal but for what the two sides make of a random model's byte tokens: the engine shows
    U+FFFD for invalid UTF-8 where llama-cpp-python drops the bytes, and llama-cpp-python's chat
    stream drops a multi-byte character that the last token of a reply cut at max_tokens completes."""
    a, b = sorted((one.replace("\ufffd", ""), other.replace("\ufffd", "")), key=len, reverse=True)
    return bool(b.strip()) and (a == b or (a[:-1] == b and not a[-1].isascii()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tiny_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    files = {v: gguf_tiny.write_gguf(tiny_dirs[v], root / f"tiny-codegemma-{v}.gguf", "f32") for v in ("2b", "7b-it")}
    port = _free_port()
    config = root / "server.json"
    config.write_text(json.dumps({"host": "127.0.0.1", "port": port, "models": [
        {"model": str(path), "n_ctx": 2048, "n_threads": 2, "verbose": False} for path in files.values()]}))
    log = (root / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)],
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"llama_cpp.server did not start: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.3)
    yield url, files
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def local(tiny_dirs):
    return LocalBackend(str(tiny_dirs["2b"]), str(tiny_dirs["7b-it"]), dtype="float32")


@pytest.fixture
def teacher(llama_server, tiny_dirs):
    """What a teacher's settings make: the endpoint, and the completion model's local folder."""
    backend = make_backend(Settings(endpoint=llama_server[0], completion_model=str(tiny_dirs["2b"])))
    yield backend
    backend.close()


def test_fim_with_a_tokenizer_gives_the_engines_greedy_tokens(teacher, local, llama_server):
    expected = local.fill_in_middle(PREFIX, SUFFIX, OPTS).run()
    # Several tokens, then a FIM marker that ends it: the server must stop there too.
    assert expected.completion_tokens >= 8 and expected.finish_reason == "stop"
    got = teacher.fill_in_middle(PREFIX, SUFFIX, OPTS).run()
    assert same_text(got.text, expected.text)
    # The server refused the token ids (500, "Input should be a valid string"): text from then on.
    assert teacher.takes_token_ids is False
    assert teacher.adds_bos is True  # asked through /extras/tokenize
    # No usage from this server: the counts are the tokenizer's (the reply's re-encoded from its text).
    assert got.prompt_tokens == expected.prompt_tokens and got.completion_tokens > 0
    # The name sent is the one the server lists, never the local folder.
    assert teacher.names["completion"] == str(llama_server[1]["2b"])
    again = teacher.fill_in_middle(PREFIX + "0", SUFFIX, OPTS).run()
    assert same_text(again.text, local.fill_in_middle(PREFIX + "0", SUFFIX, OPTS).run().text)


def test_text_prompts_reach_the_model_with_one_bos(llama_server, local):
    url, files = llama_server
    plain = RemoteBackend(url)  # no tokenizer at all: text prompts, model chosen from /v1/models
    expected = local.fill_in_middle(PREFIX, SUFFIX, OPTS).run()
    assert same_text(plain.fill_in_middle(PREFIX, SUFFIX, OPTS).run().text, expected.text)
    assert plain.names["completion"] == str(files["2b"])
    # What the server made of the text the backend sent: exactly the engine's prompt, one <bos>.
    engine_ids = fim_prompt(local.model("completion").tokenizer, PREFIX, SUFFIX)
    sent = plain._text_prompt(fim_segments(PREFIX, SUFFIX))
    tokens = httpx.post(f"{url}/extras/tokenize", json={"input": sent, "model": str(files["2b"])}).json()["tokens"]
    assert tokens == engine_ids
    plain.close()


def test_chat_keeps_the_teachers_rules_and_gives_the_engines_reply(teacher, local):
    expected = local.chat(MESSAGES, OPTS).run()
    got = teacher.chat(MESSAGES, OPTS).run()
    assert same_text(got.text, expected.text)
    assert got.prompt_tokens == expected.prompt_tokens
    # Without the rules the model says something else: they reached it.
    assert not same_text(got.text, local.chat(MESSAGES[1:], OPTS).run().text)
    assert teacher.names["chat"].endswith("tiny-codegemma-7b-it.gguf")


def test_temperature_zero_is_greedy_despite_the_servers_repeat_penalty(llama_server, local):
    """The server's default repeat penalty (1.1) changes greedy text; the backend sends 1.0."""
    url, files = llama_server
    prompt = "for index in range(len(items)):\n    "
    expected = local.complete(prompt, GenerationOptions(max_tokens=40, temperature=0)).run()
    body = {"model": str(files["2b"]), "prompt": prompt, "max_tokens": 40, "temperature": 0}
    penalised = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()["choices"][0]["text"]
    neutral = httpx.post(f"{url}/v1/completions", json={**body, "repeat_penalty": 1.0}, timeout=60
                         ).json()["choices"][0]["text"]
    assert same_text(neutral, expected.text)
    assert not same_text(penalised, neutral)  # else this prompt would not show what the field is for
    remote = RemoteBackend(url)
    assert same_text(remote.complete(prompt, GenerationOptions(max_tokens=40, temperature=0)).run().text,
                     expected.text)
    remote.close()
