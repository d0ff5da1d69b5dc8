"""`tutor serve --scheduler batched` for a class: many requests in one batch, fairness and caps,
/metrics, and one model folder serving both roles. A real server process on the CPU."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest
from conftest import start_server
from prometheus_client.parser import text_string_to_metric_families

from tutor.engine import load
from tutor.prompts import chat_prompt, chat_stop_ids, fim_prompt, fim_stop_ids

TOKEN = "class-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def batched(tiny_dirs):
    proc, url = start_server("--model", str(tiny_dirs["2b"]), "--chat-model", str(tiny_dirs["7b-it"]),
                             "--token", TOKEN, "--dtype", "float32", "--scheduler", "batched", "--slots", "3",
                             "--max-per-user", "2")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def engine(tiny_dirs):
    return load(tiny_dirs["2b"], device="cpu", dtype="float32")


def wait_for(predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")


def health(url: str, name: str) -> dict:
    return httpx.get(f"{url}/health", timeout=10).json()["models"][name]


def metrics(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{url}/metrics", headers=AUTH, timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_concurrent_requests_of_different_lengths_equal_batch_one(batched, engine, tiny_dirs):
    """More requests than slots, of different prompt and answer lengths, from different students:
    each answer equals the engine's own greedy answer for it alone."""
    tok = engine.tokenizer
    cases = [(fim_prompt(tok, "def add(a, b):\n    return " * (1 + i % 3), "\n"), 4 + 5 * i) for i in range(7)]
    expected = [engine.generate(ids, max_new_tokens=n, stop_token_ids=[]).text for ids, n in cases]
    got: dict[int, str] = {}
    errors: list[BaseException] = []

    def ask(i: int) -> None:
        ids, n = cases[i]
        try:
            r = httpx.post(f"{batched}/v1/completions", headers=AUTH, timeout=120,
                           json={"prompt": ids, "max_tokens": n, "temperature": 0, "stop_token_ids": [],
                                 "user": f"student{i}"})
            r.raise_for_status()
            got[i] = r.json()["choices"][0]["text"]
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors
    assert [got.get(i) for i in range(len(cases))] == expected
    assert health(batched, str(tiny_dirs["2b"]))["scheduler"] == "batched"


def test_chat_in_the_batch_equals_the_engine(batched, tiny_dirs):
    chat_model = load(tiny_dirs["7b-it"], device="cpu", dtype="float32")
    messages = [{"role": "user", "content": "What is a list?"}]
    expected = chat_model.generate(chat_prompt(chat_model.tokenizer, messages), max_new_tokens=12,
                                   stop_token_ids=chat_stop_ids(chat_model.tokenizer))
    client = openai.OpenAI(base_url=f"{batched}/v1", api_key=TOKEN, max_retries=0, timeout=60)
    chunks = list(client.chat.completions.create(messages=messages, max_tokens=12, temperature=0, stream=True,
                                                 model=str(tiny_dirs["7b-it"])))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected.text


def test_an_editor_session_reuses_its_prefix(batched, engine):
    tok = engine.tokenizer
    first = fim_prompt(tok, "import math\n\ndef area(r):\n    return math.pi * r", "\n")
    second = fim_prompt(tok, "import math\n\ndef area(r):\n    return math.pi * r *", "\n")
    body = {"max_tokens": 3, "temperature": 0, "session": "editor-1", "stop_token_ids": fim_stop_ids(tok)}
    httpx.post(f"{batched}/v1/completions", headers=AUTH, json={**body, "prompt": first}, timeout=60)
    r = httpx.post(f"{batched}/v1/completions", headers=AUTH, json={**body, "prompt": second}, timeout=60).json()
    cached = r["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached > len(first) // 2  # a keystroke prefills only what changed
    assert r["choices"][0]["text"] == engine.generate(second, max_new_tokens=3, stop_token_ids=fim_stop_ids(tok)).text


def test_another_student_naming_the_same_session_cancels_nothing(batched, engine):
    """A session is one editor of one requester: a second student who sends the first one's session
    name does not cancel the first one's running completion (as a newer request of its own would)."""
    tok = engine.tokenizer
    body = {"max_tokens": 400, "temperature": 0, "session": "editor-shared", "stop_token_ids": [],
            "prompt": fim_prompt(tok, "def long(x):\n    return ", "\n"), "stream": True, "user": "alice"}
    finish, overlapped = None, False
    with httpx.stream("POST", f"{batched}/v1/completions", headers=AUTH, json=body, timeout=120) as r:
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            choice = json.loads(line[6:])["choices"][0]
            if not overlapped:  # the other student's request comes while this one generates
                other = httpx.post(f"{batched}/v1/completions", headers=AUTH, timeout=60,
                                   json={**body, "stream": False, "max_tokens": 2, "user": "mallory"})
                assert other.status_code == 200, other.text
                overlapped = True
            finish = choice["finish_reason"] or finish
    assert finish == "length"


def test_the_cap_per_student_answers_429_and_others_go_on(batched, tiny_dirs):
    name = str(tiny_dirs["2b"])
    long = {"prompt": "x", "max_tokens": 2000, "temperature": 0, "stop_token_ids": [], "user": "greedy",
            "stream": True}
    with httpx.Client(timeout=60) as c1, httpx.Client(timeout=60) as c2:
        streams = [c.stream("POST", f"{batched}/v1/completions", headers=AUTH, json=long) for c in (c1, c2)]
        responses = [s.__enter__() for s in streams]
        try:
            assert [r.status_code for r in responses] == [200, 200]
            lines = [r.iter_lines() for r in responses]  # kept: a dropped iterator closes its response
            for line in lines:
                assert next(line).startswith("data:")  # both are generating
            third = httpx.post(f"{batched}/v1/completions", headers=AUTH, json={**long, "stream": False},
                               timeout=60)
            assert third.status_code == 429
            assert third.json()["error"]["type"] == "rate_limit_exceeded"
            assert "wait for one to finish" in third.json()["error"]["message"]
            other = httpx.post(f"{batched}/v1/completions", headers=AUTH, timeout=60,
                               json={"prompt": "y", "max_tokens": 2, "user": "patient"})
            assert other.status_code == 200
        finally:
            for s in streams:
                s.__exit__(None, None, None)  # leaving cancels both
    wait_for(lambda: health(batched, name)["running"] == 0, "the cancelled requests to leave the batch")
    assert metrics(batched)[("tutor_requests_total", (("endpoint", "completions"), ("model", name),
                                                      ("outcome", "rejected")))] >= 1


def test_metrics_in_the_prometheus_format(batched, tiny_dirs):
    name = str(tiny_dirs["2b"])
    key = ("tutor_requests_total", (("endpoint", "completions"), ("model", name), ("outcome", "length")))
    before = metrics(batched)
    r = httpx.post(f"{batched}/v1/completions", headers=AUTH, timeout=60,
                   json={"prompt": "z", "max_tokens": 5, "temperature": 0, "stop_token_ids": []})
    assert r.status_code == 200
    after = metrics(batched)
    assert after[key] == before.get(key, 0) + 1
    ttft = ("tutor_time_to_first_token_seconds_count", (("model", name),))
    assert after[ttft] == before.get(ttft, 0) + 1
    tokens = ("tutor_generated_tokens_total", (("model", name),))
    assert after[tokens] >= before.get(tokens, 0) + 5
    for gauge in ("tutor_queue_depth", "tutor_active_sequences", "tutor_tokens_per_second"):
        assert (gauge, (("model", name),)) in after
    assert httpx.get(f"{batched}/metrics", timeout=10).status_code == 401  # behind the token, as the rest


def test_one_folder_serves_both_roles(tiny_dirs):
    """Issue 19: --model X --chat-model X loads X once and answers chat and completions on it."""
    it = str(tiny_dirs["7b-it"])
    proc, url = start_server("--model", it, "--chat-model", it, "--dtype", "float32", "--scheduler", "batched")
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == [it]
        reply = client.chat.completions.create(model=it, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        assert reply.choices[0].finish_reason in ("stop", "length")
        assert client.completions.create(model=it, prompt="def", max_tokens=2).usage.completion_tokens >= 1
        assert health(url, it)["roles"] == ["completion", "chat"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_pieces_from_another_thread_reach_the_loop_in_order_and_can_be_taken_together():
    """The scheduler's thread posts pieces in bursts (one wake-up of the loop each); a reply that fell
    behind takes every piece that has come at once, in order, and the end after them."""
    import asyncio
    import threading

    from tutor.backends.base import Completion
    from tutor.serving.scheduling import Generation

    async def main():
        generation = Generation(asyncio.get_running_loop(), prepared=None)
        end = Completion(text="abc", finish_reason="stop", prompt_tokens=1, completion_tokens=3)
        poster = threading.Thread(target=lambda: [generation.put(x) for x in ("a", "b", "c", end)])
        poster.start()
        poster.join(10)
        first = await asyncio.wait_for(generation.get(), 10)
        return [first, *generation.ready()]

    items = asyncio.run(main())
    assert items[:3] == ["a", "b", "c"] and items[3].finish_reason == "stop" and len(items) == 4
