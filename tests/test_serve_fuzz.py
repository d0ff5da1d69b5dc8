"""Random JSON at every endpoint of `tutor serve` and of the Jupyter server extension (issue 14).

Each body must get a 4xx or a 200, in bounded time; afterwards the server is alive, has nothing
waiting or running, and its memory (RSS from /proc) has not grown past a bound. Bodies are random
JSON and near-valid requests whose fields are random JSON (unpaired surrogates included), so that
the checks behind the first one are reached too. Generation is kept short (max_tokens at most 4),
so the examples are about the checks, not the model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest
from conftest import start_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server_ext import base_env
from test_server_ext import start_server as start_jupyter_server

TOKEN = "fuzz-token"
EXAMPLES = int(os.environ.get("TUTOR_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
RSS_GROWTH = 200 << 20  # a tokenizer's and a few caches' worth; a leak per request passes it fast

SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\ud83d", "\udc00b"])
TEXT = st.one_of(st.text(max_size=40), SURROGATES, st.sampled_from(["", "<|fim_prefix|>", "<end_of_turn>"]))
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                   st.floats(allow_nan=False), TEXT)
JSON = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(TEXT, inner, max_size=4)), max_leaves=16)


def some(*values: object) -> st.SearchStrategy:
    """A field: one of the good values, or anything."""
    return st.one_of(st.sampled_from(values), JSON)


OPTIONS = {"max_tokens": some(1, 4), "temperature": some(0, 0.7, 2), "top_p": some(0.9, 1),
           "stop": some("\n", ["a", "b"]), "seed": some(0, 7, 2**63 - 1, 2**63, -1), "stream": some(True, False),
           "user": some("ada"), "n": some(1, 2), "draft_tokens": some(0, 4), "model": JSON}
COMPLETION = st.fixed_dictionaries({"prompt": some("def f(x):", "\ud800", [2, 5, 6], ["x = "], [[2, 3]], [2, 2**40])},
                                   optional={**OPTIONS, "session": some("nb#c1"),
                                             "stop_token_ids": some([1], []), "suffix": JSON})
MESSAGE = st.fixed_dictionaries({"role": some("system", "user", "assistant", ["user"], "model"),
                                 "content": some("What is a list?", "\udfff", 5, [{"type": "text", "text": "hi"}])})
CHAT = st.fixed_dictionaries({"messages": st.one_of(st.lists(MESSAGE, min_size=0, max_size=3), JSON)},
                             optional=OPTIONS)
INLINE = st.fixed_dictionaries(
    {"id": some("r1"), "before": some("def add(a, b):\n    return ", "x = '\ud800")},
    optional={"path": some("nb.ipynb"), "cellId": some("c1"), "after": some("", "\n"), "language": some("python"),
              "cellsBefore": some(["import math"], []), "cellsAfter": some([]),
              "settings": st.one_of(JSON, st.fixed_dictionaries({}, optional={
                  "maxTokens": some(1, 2, 4), "maxLines": some(1, 8), "contextBudget": some(64, 512)}))})
GRADE = st.fixed_dictionaries({"problem": some("triple", "nope"), "code": JSON})


def short(body: object) -> object:
    """Keep a valid request's generation short: an integer max_tokens above 4 becomes 4."""
    if isinstance(body, dict):
        for key in ("max_tokens", "max_completion_tokens"):
            value = body.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 4:
                body[key] = 4
        if "messages" in body and "max_tokens" not in body:
            body["max_tokens"] = 4  # chat's default is the whole context
        settings_ = body.get("settings")
        if isinstance(settings_, dict) and isinstance(settings_.get("maxTokens"), int):
            settings_["maxTokens"] = min(settings_["maxTokens"], 4)
    return body


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def encode(body: object) -> bytes:
    return json.dumps(body).encode()  # ensure_ascii: a lone surrogate travels as its \\u escape


@pytest.fixture(scope="module")
def served(tiny_dirs, tmp_path_factory) -> Iterator[tuple[int, str]]:
    folder = tmp_path_factory.mktemp("problems")
    (folder / "triple.json").write_text(json.dumps({
        "id": "triple", "title": "Triple", "topic": "functions", "level": 1, "statement": "Write `triple(n)`.",
        "function": "triple", "starter": "def triple(n):\n    ...\n", "solution": "def triple(n):\n    return 3 * n\n",
        "public_tests": [{"args": [2], "expected": 6}], "hidden_tests": [{"args": [5], "expected": 15}],
        "hints": ["a", "b", "c", "d"]}))
    proc, url = start_server("--model", str(tiny_dirs["2b"]), "--chat-model", str(tiny_dirs["7b-it"]),
                             "--token", TOKEN, "--dtype", "float32", "--max-queue", "2", "--scheduler", "fifo",
                             "--problems", str(folder))
    yield proc.pid, url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def client(served) -> Iterator[httpx.Client]:
    _, url = served
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def baseline(served, client) -> int:
    pid, _ = served
    client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2})  # tokenizers and caches in place
    client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "max_tokens": 2})
    return rss(pid)


def answered(response: httpx.Response) -> None:
    assert response.status_code == 200 or 400 <= response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert response.json()["error"]["message"]


@FUZZ
@given(body=st.one_of(JSON, COMPLETION))
def test_completions(client, baseline, body):
    answered(client.post("/v1/completions", content=encode(short(body))))


@FUZZ
@given(body=st.one_of(JSON, CHAT))
def test_chat_completions(client, baseline, body):
    answered(client.post("/v1/chat/completions", content=encode(short(body))))


@FUZZ
@given(body=st.one_of(JSON, GRADE.filter(lambda b: not (b["problem"] == "triple" and isinstance(b["code"], str)))))
def test_grading(client, baseline, body):
    """A string of code for a real problem runs the sandbox: tests/test_grading_* cover that."""
    answered(client.post("/v1/grading/grade", content=encode(body)))


@settings(max_examples=max(10, EXAMPLES // 4), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/health", "/metrics", "/v1/models", "/v1/grading/problems", "/nowhere"]), body=JSON)
def test_the_other_endpoints(client, baseline, path, body):
    answered(client.post(path, content=encode(body)))
    r = client.get(path)
    assert r.status_code == (404 if path == "/nowhere" else 200)


def test_the_server_is_alive_idle_and_bounded_after(served, client, baseline):
    pid, _ = served
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert all(m["waiting"] == 0 and m["running"] == 0 for m in health["models"].values())
    assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}).status_code == 200
    grown = rss(pid) - baseline
    assert grown < RSS_GROWTH, f"tutor serve grew by {grown >> 20} MiB"


# ------------------------------------------------------------------ the Jupyter server extension

@pytest.fixture(scope="module")
def jupyter(tmp_path_factory, tiny_dirs):
    root = tmp_path_factory.mktemp("fuzz-server")
    app = start_jupyter_server(root, {**base_env(), "TUTOR_COMPLETION_MODEL": str(tiny_dirs["2b"])},
                               tmp_path_factory.mktemp("fuzz-config"))
    with httpx.Client(base_url=app.url, headers={"Authorization": f"token {app.token}"}, timeout=60) as c:
        first = c.post("/tutor/complete", json={"id": "warm", "before": "x = ", "settings": {"maxTokens": 1}})
        assert first.status_code == 200  # the worker started: later bodies meet it warm
        yield c, app.process.pid, rss(app.process.pid)
    app.stop()


@FUZZ
@given(body=st.one_of(JSON, INLINE))
def test_inline_completion(jupyter, body):
    c, _, _ = jupyter
    r = c.post("/tutor/complete", content=encode(short(body)))
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text)
    if r.status_code == 200:
        last = json.loads(r.text.strip().splitlines()[-1])
        assert last["done"] is True


def test_jupyter_is_alive_and_bounded_after(jupyter):
    c, pid, before = jupyter
    assert c.get("/tutor/status").status_code == 200
    assert c.get("/api/status").status_code == 200
    grown = rss(pid) - before
    assert grown < RSS_GROWTH, f"jupyter server grew by {grown >> 20} MiB"
