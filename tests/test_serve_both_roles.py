"""Issue 19: `tutor serve --model X --chat-model X` serves X for both roles, one copy of the weights.

The official openai client against a real server; and no message may tell the user to pass a flag
they passed.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from conftest import start_server

TOKEN = "roles-token"


@pytest.fixture(scope="module")
def both(tiny_dirs):
    it = str(tiny_dirs["7b-it"])
    proc, url = start_server("--model", it, "--chat-model", it, "--token", TOKEN, "--dtype", "float32",
                             "--scheduler", "fifo")
    yield url, it
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def client(both):
    url, _ = both
    return openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0, timeout=60)


def test_models_lists_it_once_with_both_roles(client, both):
    url, it = both
    models = client.models.list().data
    assert [m.id for m in models] == [it]
    assert models[0].model_extra["roles"] == ["completion", "chat"]
    health = httpx.get(f"{url}/health", timeout=10).json()
    assert list(health["models"]) == [it] and health["models"][it]["roles"] == ["completion", "chat"]


@pytest.mark.parametrize("model", ["full", "short"])
def test_a_completion_and_a_chat_on_the_one_model(client, both, model):
    _, it = both
    extra = {"model": it if model == "full" else it.rstrip("/").rsplit("/", 1)[-1]}
    completion = client.completions.create(prompt="def add(a, b):", max_tokens=4, temperature=0, **extra)
    assert completion.model == it and completion.choices[0].finish_reason in ("length", "stop")
    assert completion.usage.completion_tokens >= 1
    chat = client.chat.completions.create(messages=[{"role": "user", "content": "What is a list?"}], max_tokens=4,
                                          temperature=0, **extra)
    assert chat.model == it and chat.choices[0].message.role == "assistant"
    assert chat.usage.completion_tokens >= 1
    streamed = client.chat.completions.create(messages=[{"role": "user", "content": "What is a list?"}],
                                              max_tokens=4, temperature=0, stream=True, **extra)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == chat.choices[0].message.content


def test_no_error_asks_for_a_flag_that_was_given(both):
    """Every error this server can give for a wrong request: none names --model or --chat-model."""
    url, _ = both
    headers = {"Authorization": f"Bearer {TOKEN}"}
    bodies = [
        ("/v1/completions", {"prompt": "x", "model": "gpt-4"}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "model": "gpt-4"}),
        ("/v1/chat/completions", {"messages": [{"role": "assistant", "content": "x"}]}),
        ("/v1/chat/completions", {"messages": []}),
        ("/v1/completions", {"prompt": ""}),
        ("/v1/completions", {"prompt": [5] * 3000, "max_tokens": 2}),
    ]
    for path, body in bodies:
        r = httpx.post(url + path, json=body, headers=headers, timeout=30)
        assert 400 <= r.status_code < 500, (path, body, r.text)
        message = r.json()["error"]["message"]
        assert "--model" not in message and "--chat-model" not in message, message
