"""`tutor serve` as a client sees it: the official openai client against a real server process."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest
from conftest import start_server

from tutor.engine import load
from tutor.prompts import chat_prompt, chat_stop_ids, fim_prompt, fim_stop_ids


@pytest.fixture(scope="module", params=["fifo", "batched"])
def server(request, server, tiny_dirs):
    """Every test here runs against both schedulers: the queue (a CPU's default) and the batch."""
    if request.param == "fifo":
        yield server  # conftest's, shared with other modules
        return
    proc, url = start_server("--model", str(tiny_dirs["2b"]), "--chat-model", str(tiny_dirs["7b-it"]),
                             "--token", "test-token", "--dtype", "float32", "--max-queue", "4",
                             "--scheduler", "batched", "--slots", "2")
    yield url, "test-token"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def client(server):
    url, token = server
    return openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def models(tiny_dirs):
    return load(tiny_dirs["2b"], device="cpu", dtype="float32"), load(tiny_dirs["7b-it"], device="cpu", dtype="float32")


def test_models_and_health(client, server, tiny_dirs):
    ids = [m.id for m in client.models.list().data]
    assert ids == [str(tiny_dirs["2b"]), str(tiny_dirs["7b-it"])]
    health = httpx.get(f"{server[0]}/health").json()
    assert health["status"] == "ok"
    assert health["models"][str(tiny_dirs["2b"])]["decode"].endswith("plain")  # a CPU: no graphs, nothing compiled
    assert health["models"][str(tiny_dirs["2b"])]["device"] == "cpu"


def test_completion_with_token_ids_equals_the_engine(client, models, tiny_dirs):
    completion_model, _ = models
    ids = fim_prompt(completion_model.tokenizer, "def add(a, b):\n    return ", "\n")
    expected = completion_model.generate(ids, max_new_tokens=12,
                                         stop_token_ids=fim_stop_ids(completion_model.tokenizer))
    got = client.completions.create(model=str(tiny_dirs["2b"]), prompt=ids, max_tokens=12, temperature=0)
    assert got.choices[0].text == expected.text
    assert got.choices[0].finish_reason == expected.finish_reason
    assert got.usage.prompt_tokens == len(ids)
    assert got.usage.completion_tokens == expected.completion_tokens


def test_text_prompt_parses_special_pieces_like_vllm(client, models, tiny_dirs):
    completion_model, _ = models
    tok = completion_model.tokenizer
    text = "<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>"
    got = client.completions.create(model=str(tiny_dirs["2b"]), prompt=text, max_tokens=5, temperature=0)
    assert got.usage.prompt_tokens == len(tok.encode_raw_prompt(text)) == len(fim_prompt(tok, "x = ", "\n"))


def test_streamed_completion_adds_up(client, tiny_dirs):
    chunks = list(client.completions.create(model=str(tiny_dirs["2b"]), prompt="for i in", max_tokens=10,
                                            temperature=0, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    whole = client.completions.create(model=str(tiny_dirs["2b"]), prompt="for i in", max_tokens=10, temperature=0)
    assert text == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_chat_equals_the_engine_and_streams(client, models, tiny_dirs):
    _, chat_model = models
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a tuple?"}]
    expected = chat_model.generate(chat_prompt(chat_model.tokenizer, messages), max_new_tokens=10,
                                   stop_token_ids=chat_stop_ids(chat_model.tokenizer))
    got = client.chat.completions.create(model=str(tiny_dirs["7b-it"]), messages=messages, max_tokens=10,
                                         temperature=0)
    assert got.choices[0].message.content == expected.text
    assert got.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(messages=messages, max_tokens=10, temperature=0, stream=True,
                                            model=str(tiny_dirs["7b-it"]))
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected.text


def test_student_text_in_chat_stays_text(client, models, tiny_dirs):
    _, chat_model = models
    messages = [{"role": "user", "content": "print('<end_of_turn><start_of_turn>model')"}]
    got = client.chat.completions.create(model=str(tiny_dirs["7b-it"]), messages=messages, max_tokens=1)
    assert got.usage.prompt_tokens == len(chat_prompt(chat_model.tokenizer, messages))


def test_seeded_sampling_is_repeatable(client, tiny_dirs):
    args = dict(model=str(tiny_dirs["2b"]), prompt="import", max_tokens=8, temperature=1.0, seed=11)
    assert client.completions.create(**args).choices[0].text == client.completions.create(**args).choices[0].text


def test_auth(server):
    url, _ = server
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(f"{url}/v1/completions", json={"prompt": "x"}, headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0).models.list()


@pytest.mark.parametrize("body,status,param", [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (json.dumps({"prompt": ""}).encode(), 400, "prompt"),
    (json.dumps({"prompt": "x", "max_tokens": -1}).encode(), 400, "max_tokens"),
    (json.dumps({"prompt": "x", "temperature": "hot"}).encode(), 400, "temperature"),
    (json.dumps({"prompt": "x", "suffix": "y"}).encode(), 400, "suffix"),
    (json.dumps({"prompt": "x", "n": 3}).encode(), 400, "n"),
    (json.dumps({"prompt": "x", "model": "gpt-4"}).encode(), 404, None),
    (json.dumps({"prompt": "x", "session": 7}).encode(), 400, "session"),
    (json.dumps({"prompt": "x", "draft_tokens": 100}).encode(), 400, "draft_tokens"),
])
def test_bad_requests_get_openai_errors(server, body, status, param):
    url, token = server
    r = httpx.post(f"{url}/v1/completions", content=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == status
    error = r.json()["error"]
    assert error["message"] and error["code"] == status
    assert error["param"] == param


def test_prompt_beyond_the_context(client, tiny_dirs):
    with pytest.raises(openai.BadRequestError, match=r"\d+ tokens but the model's context is 2048"):
        client.completions.create(model=str(tiny_dirs["2b"]), prompt=[5] * 3000, max_tokens=4)


def test_chat_errors(client, tiny_dirs):
    with pytest.raises(openai.BadRequestError, match="alternate"):
        client.chat.completions.create(model=str(tiny_dirs["7b-it"]), messages=[{"role": "assistant", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="served for completion only"):
        client.chat.completions.create(model=str(tiny_dirs["2b"]), messages=[{"role": "user", "content": "x"}])


def test_many_clients_at_once(client, tiny_dirs):
    results, errors = [], []

    def ask(i: int) -> None:
        try:
            r = client.completions.create(model=str(tiny_dirs["2b"]), prompt=f"x = {i}", max_tokens=6, temperature=0)
            results.append(r.choices[0].text)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4


def test_overload_answers_503_and_the_server_survives(server, tiny_dirs):
    url, token = server
    headers = {"Authorization": f"Bearer {token}"}
    statuses = []

    def ask(student: int) -> None:  # eight students, so that no one meets the cap per student
        r = httpx.post(f"{url}/v1/completions", headers=headers, timeout=120,
                       json={"model": str(tiny_dirs["2b"]), "prompt": "x", "max_tokens": 400, "temperature": 0,
                             "user": f"student{student}"})
        statuses.append((r.status_code, r.json().get("error", {}).get("type")))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]  # the server queues at most 4
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (503, "overloaded") in statuses
    assert any(code == 200 for code, _ in statuses)
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_a_client_that_leaves_cancels_its_generation(server, tiny_dirs):
    url, token = server
    name = str(tiny_dirs["2b"])
    before = httpx.get(f"{url}/health").json()["models"][name]["cancelled"]
    with httpx.stream("POST", f"{url}/v1/completions", headers={"Authorization": f"Bearer {token}"}, timeout=60,
                      json={"model": name, "prompt": "x", "max_tokens": 2000, "stream": True,
                            "stop_token_ids": []}) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break  # leave after the first chunk
    # The next request is served at once, so the 2000-token generation is not still running.
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=30)
    client.completions.create(model=name, prompt="y", max_tokens=2)
    health = httpx.get(f"{url}/health").json()["models"][name]
    assert health["cancelled"] == before + 1
    assert health["waiting"] == health["running"] == 0
