"""CompletionSession: reusing the cache of a shared prefix gives exactly CodeGemma.generate's tokens."""

from __future__ import annotations

import threading

import pytest

from tutor.engine import CompletionSession, PromptError
from tutor.engine.session import common_prefix

BEFORE = ("import numpy as np\n\ndef total(numbers):\n    result = 0\n    for value in numbers:\n"
          "        result = result + value\n    return result\n\nclass CountItems:\n    def __init__(self, count):\n")
OTHER = "while True:\n    line = input()\n    if not line:\n        break\n"
N = 12


def greedy(model, ids, n=N):
    return model.generate(ids, max_new_tokens=n, stop_token_ids=[]).token_ids


@pytest.mark.parametrize("name", ["tiny_2b", "tiny_7b"])
def test_reuse_gives_the_same_tokens_as_generate(request, name):
    model = request.getfixturevalue(name)
    tok = model.tokenizer
    base = [tok.bos_id, *tok.encode(BEFORE)]
    session = CompletionSession(model)

    def check(ids, at_least):
        held = session.cached_ids
        result = session.generate(ids, max_new_tokens=N, stop_token_ids=[])
        assert result.token_ids == greedy(model, ids), f"differs after reusing {result.cached_tokens} tokens"
        # The longest common prefix is reused, short of the last prompt token (prefilled for its logits).
        assert result.cached_tokens == min(common_prefix(held, ids), len(ids) - 1) >= at_least
        assert session.cached_ids == ids + result.token_ids[:-1]  # the last sampled token is never fed
        return result

    first = check(base, 0)                                                  # cold
    check(base, len(base) - 1)                                              # the same prompt twice
    check(base + first.token_ids[:6], len(base) + 5)                        # the completion, accepted in part
    check(base + tok.encode("        self"), len(base))                    # extended by a few tokens
    edited = base[:-3] + tok.encode("x = 1")
    assert edited[len(base) - 3] != base[-3]
    check(edited, len(base) - 3)                                            # its last tokens differ
    check(base[:20], 19)                                                    # shorter than the cached prefix
    assert tok.encode(OTHER)[0] != base[0]
    check(tok.encode(OTHER), 0)                                             # shares nothing, not even <bos>


def test_generated_tokens_are_reused(tiny_2b):
    tok = tiny_2b.tokenizer
    base = [tok.bos_id, *tok.encode(BEFORE)]
    session = CompletionSession(tiny_2b)
    first = session.generate(base, max_new_tokens=N, stop_token_ids=[])
    follow = base + first.token_ids + tok.encode("\n")  # accept the completion, type on
    result = session.generate(follow, max_new_tokens=N, stop_token_ids=[])
    assert result.cached_tokens == len(base) + N - 1
    assert result.token_ids == greedy(tiny_2b, follow)


def test_the_cache_grows_and_keeps_the_prefix(tiny_2b):
    tok = tiny_2b.tokenizer
    base = [tok.bos_id, *tok.encode(BEFORE)]
    session = CompletionSession(tiny_2b)
    session.generate(base, max_new_tokens=N, stop_token_ids=[])
    small = session._cache.max_len
    long = base + tok.encode(BEFORE * 6)
    assert len(long) + N > small
    result = session.generate(long, max_new_tokens=N, stop_token_ids=[])
    assert session._cache.max_len > small
    assert result.cached_tokens == len(base)
    assert result.token_ids == greedy(tiny_2b, long)


def test_streams_stops_and_sampling_match_generate(tiny_2b):
    tok = tiny_2b.tokenizer
    base = [tok.bos_id, *tok.encode(BEFORE)]
    session = CompletionSession(tiny_2b)
    free = greedy(tiny_2b, base, 30)
    session.generate(base, max_new_tokens=4)
    stop_text = tok.decode(free)[10:13]
    stream = session.generate(base, max_new_tokens=30, stop_token_ids=[], stop_strings=[stop_text], stream=True)
    pieces = list(stream)
    want = tiny_2b.generate(base, max_new_tokens=30, stop_token_ids=[], stop_strings=[stop_text])
    assert (stream.result.text, stream.result.finish_reason) == (want.text, "stop")
    assert "".join(pieces) == want.text and stream.result.cached_tokens == len(base) - 1
    sampled = dict(max_new_tokens=20, temperature=1.0, top_p=0.9, seed=5, stop_token_ids=[])
    assert session.generate(base, **sampled).token_ids == tiny_2b.generate(base, **sampled).token_ids


def test_a_closed_stream_leaves_a_usable_cache(tiny_2b):
    tok = tiny_2b.tokenizer
    base = [tok.bos_id, *tok.encode(BEFORE)]
    session = CompletionSession(tiny_2b)
    stream = session.generate(base, max_new_tokens=N, stop_token_ids=[], stream=True)
    next(stream)
    next(stream)
    stream.close()
    assert len(session.cached_ids) > len(base)  # the prompt and the tokens fed so far
    follow = session.cached_ids + tok.encode(" x")
    result = session.generate(follow, max_new_tokens=N, stop_token_ids=[])
    assert result.cached_tokens > len(base)
    assert result.token_ids == greedy(tiny_2b, follow)


class WatchedLock:
    """The session's lock, with an event set when a caller finds it taken and has to wait."""

    def __init__(self):
        self._lock = threading.Lock()
        self.waiting = threading.Event()

    def __enter__(self):
        if not self._lock.acquire(blocking=False):
            self.waiting.set()
            self._lock.acquire()
        return self

    def __exit__(self, *exc):
        self._lock.release()


def test_a_second_request_waits_for_the_first(tiny_2b):
    tok = tiny_2b.tokenizer
    first_ids = [tok.bos_id, *tok.encode(BEFORE)]
    second_ids = [tok.bos_id, *tok.encode(OTHER)]
    session = CompletionSession(tiny_2b)
    session._lock = lock = WatchedLock()
    stream = session.generate(first_ids, max_new_tokens=N, stop_token_ids=[], stream=True)
    next(stream)  # the first request now holds the session, paused mid-generation
    results = []
    other = threading.Thread(target=lambda: results.append(
        session.generate(second_ids, max_new_tokens=N, stop_token_ids=[])))
    other.start()
    # Proof without a clock: the second request found the session taken and is parked on it.
    assert lock.waiting.wait(timeout=60), "the second request never asked for the session"
    assert not results  # waiting, not writing into the cache in use
    list(stream)
    other.join(timeout=60)
    assert not other.is_alive(), "the second request was not let in when the first ended"
    assert stream.result.token_ids == greedy(tiny_2b, first_ids)
    assert results[0].token_ids == greedy(tiny_2b, second_ids)


def test_concurrent_requests_do_not_corrupt_each_other(tiny_7b):
    tok = tiny_7b.tokenizer
    prompts = [[tok.bos_id, *tok.encode(BEFORE)][:n] for n in (30, 45, 60, 45)]
    want = [greedy(tiny_7b, p) for p in prompts]
    session = CompletionSession(tiny_7b)
    got: dict[int, list[int]] = {}

    def run(i):
        for _ in range(3):
            got[i] = session.generate(prompts[i], max_new_tokens=N, stop_token_ids=[]).token_ids

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [got[i] for i in range(len(prompts))] == want


def test_bad_requests_leave_the_session_as_it_was(tiny_2b):
    tok = tiny_2b.tokenizer
    base = [tok.bos_id, *tok.encode(BEFORE)]
    session = CompletionSession(tiny_2b)
    session.generate(base, max_new_tokens=N, stop_token_ids=[])
    held = session.cached_ids
    for bad in ([], [10**9]):
        with pytest.raises(PromptError):
            session.generate(bad)
    assert session.cached_ids == held
    session.reset()
    assert session.cached_ids == [] and session.generate(base, max_new_tokens=2).cached_tokens == 0
