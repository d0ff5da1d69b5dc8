"""Continuous batching (tutor.engine.batching): batched greedy decoding gives exactly the tokens of
single-sequence decoding, in float32, while sequences of different lengths join and leave."""

from __future__ import annotations

import threading

import pytest
import torch
from waiting import wait_until

from tutor.engine import PromptError
from tutor.engine.batching import BatchScheduler

TIMEOUT = 120  # seconds any one request may take on two busy cores


def prompts(tok, n):
    return [[tok.bos_id, *tok.encode(f"def f{i}(x):\n    return x * {i}\n" * (1 + i % 3))] for i in range(n)]


def greedy(model, ids, n, **options):
    return model.generate(ids, max_new_tokens=n, stop_token_ids=[], **options).token_ids


def results(streams):
    """Each stream's result, read on threads with a bound, so a hang fails the test instead of CI."""
    out: list = [None] * len(streams)

    def read(i, stream):
        try:
            out[i] = stream.run()
        except Exception as error:  # noqa: BLE001 - raised again below, on the test's thread
            out[i] = error

    threads = [threading.Thread(target=read, args=(i, s), daemon=True) for i, s in enumerate(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert all(r is not None for r in out), "a batched request did not finish in time"
    for r in out:
        if isinstance(r, Exception):
            raise r
    return out


@pytest.fixture
def scheduler(request):
    made = []

    def make(model, **options):
        made.append(BatchScheduler(model, **options))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.mark.parametrize("name", ["tiny_2b", "tiny_7b"])
def test_batched_greedy_equals_single_sequence_greedy(request, scheduler, name):
    """More requests than slots, of different prompt and output lengths, arriving at different times:
    rows join and leave mid-batch, prompts are packed and chunked, and every token matches."""
    model = request.getfixturevalue(name)
    ids = prompts(model.tokenizer, 9)
    lengths = [5, 12, 20, 3, 9, 16, 1, 7, 11]
    expected = [greedy(model, p, n) for p, n in zip(ids, lengths, strict=True)]
    batch = scheduler(model, slots=4, prefill_tokens=40)  # 40: the longer prompts go in two chunks
    streams = []
    for i, (p, n) in enumerate(zip(ids, lengths, strict=True)):
        streams.append(batch.generate(p, max_new_tokens=n, stop_token_ids=[], stream=True, user=f"u{i % 3}"))
        if i % 3 == 2:  # later arrivals join a batch that is already decoding
            decoded = batch.stats.steps
            wait_until(lambda: batch.stats.steps > decoded, TIMEOUT, "the batch to decode a step")  # noqa: B023
    got = results(streams)
    assert [r.token_ids for r in got] == expected
    assert all(r.finish_reason == "length" for r in got)
    assert batch.stats.steps < sum(lengths)  # tokens of several sequences per step: it did batch


def test_a_padded_pass_gives_the_same_tokens(tiny_2b, scheduler, monkeypatch):
    """What the GPU's captured pass does, here on the CPU: the rows (running sequences and new
    prompts' tokens) padded up to a bucket, the padding in the scratch slot; every sequence's tokens
    stay those of single-sequence decoding."""
    ids = prompts(tiny_2b.tokenizer, 5)
    expected = [greedy(tiny_2b, p, 6) for p in ids]
    batch = scheduler(tiny_2b, slots=5, prefill_tokens=512)
    batch.step.padded = True
    sizes = []
    body = batch.step._body
    monkeypatch.setattr(batch.step, "_body", lambda n: sizes.append(n) or body(n))
    got = results([batch.generate(p, max_new_tokens=6, stop_token_ids=[], stream=True) for p in ids])
    assert [r.token_ids for r in got] == expected
    assert set(sizes) <= set(batch.step.buckets)
    assert max(sizes) > batch.slots  # prompts rode in a pass with the rows


def test_text_stop_strings_and_stop_tokens_per_sequence(tiny_2b, scheduler):
    tok = tiny_2b.tokenizer
    ids = prompts(tok, 3)
    single = [tiny_2b.generate(p, max_new_tokens=16, stop_token_ids=[]) for p in ids]
    stop_token = single[0].token_ids[4]
    text = single[1].text
    stop_string = text[len(text) // 2:len(text) // 2 + 2] if len(text) > 3 else "zz"
    batch = scheduler(tiny_2b, slots=3)
    streams = [batch.generate(ids[0], max_new_tokens=16, stop_token_ids=[stop_token], stream=True),
               batch.generate(ids[1], max_new_tokens=16, stop_token_ids=[], stop_strings=[stop_string],
                              stream=True),
               batch.generate(ids[2], max_new_tokens=16, stop_token_ids=[], stream=True)]
    got = results(streams)
    want = [tiny_2b.generate(ids[0], max_new_tokens=16, stop_token_ids=[stop_token]),
            tiny_2b.generate(ids[1], max_new_tokens=16, stop_token_ids=[], stop_strings=[stop_string]),
            single[2]]
    for g, w in zip(got, want, strict=True):
        assert (g.text, g.finish_reason) == (w.text, w.finish_reason)
    assert got[0].token_ids == want[0].token_ids


def test_streamed_pieces_add_up_to_the_text(tiny_2b, scheduler):
    ids = prompts(tiny_2b.tokenizer, 1)[0]
    stream = scheduler(tiny_2b, slots=2).generate(ids, max_new_tokens=20, stop_token_ids=[], stream=True)
    pieces = list(stream)
    assert "".join(pieces) == stream.result.text == tiny_2b.generate(ids, max_new_tokens=20, stop_token_ids=[]).text


def test_seeded_sampling_is_repeatable_and_rows_sample_independently(tiny_2b, scheduler):
    ids = prompts(tiny_2b.tokenizer, 2)
    batch = scheduler(tiny_2b, slots=4)

    def run():
        return [r.token_ids for r in results([
            batch.generate(ids[0], max_new_tokens=12, temperature=1.0, seed=7, stop_token_ids=[], stream=True),
            batch.generate(ids[1], max_new_tokens=12, stop_token_ids=[], stream=True),  # greedy beside it
            batch.generate(ids[0], max_new_tokens=12, temperature=1.0, seed=8, stop_token_ids=[], stream=True)])]

    first, second = run(), run()
    assert first == second
    assert first[1] == greedy(tiny_2b, ids[1], 12)
    assert first[0] != first[2]  # two seeds, two samples (with a vocabulary of thousands)


def test_cancel_frees_the_slot_for_the_next_request(tiny_2b, scheduler):
    ids = prompts(tiny_2b.tokenizer, 2)
    batch = scheduler(tiny_2b, slots=1)
    long = batch.generate(ids[0], max_new_tokens=2000, stop_token_ids=[], stream=True)
    next(long)  # it runs
    waiting = batch.generate(ids[1], max_new_tokens=6, stop_token_ids=[], stream=True)
    long.cancel()
    cancelled, after = results([long, waiting])
    assert cancelled.finish_reason == "cancelled" and cancelled.completion_tokens < 2000
    assert after.token_ids == greedy(tiny_2b, ids[1], 6)


def test_a_cancelled_request_that_waits_never_runs(tiny_2b, scheduler):
    ids = prompts(tiny_2b.tokenizer, 2)
    batch = scheduler(tiny_2b, slots=1)
    running = batch.generate(ids[0], max_new_tokens=30, stop_token_ids=[], stream=True)
    queued = batch.generate(ids[1], max_new_tokens=30, stop_token_ids=[], stream=True)
    queued.cancel()
    first, second = results([running, queued])
    assert first.finish_reason == "length"
    assert (second.finish_reason, second.completion_tokens) == ("cancelled", 0)


def test_sessions_reuse_their_slot_and_give_the_same_tokens(tiny_2b, scheduler):
    tok = tiny_2b.tokenizer
    base = prompts(tok, 3)[2]
    batch = scheduler(tiny_2b, slots=2)
    first = batch.generate(base, max_new_tokens=8, stop_token_ids=[], session="editor-1")
    assert first.cached_tokens == 0
    typed = base + first.token_ids[:3] + tok.encode("x")
    again = batch.generate(typed, max_new_tokens=8, stop_token_ids=[], session="editor-1")
    assert again.cached_tokens >= len(base) + 2  # the prompt and the accepted tokens were not prefilled again
    assert again.token_ids == greedy(tiny_2b, typed, 8)
    # Another editor's requests take the other slot and leave this one's cache alone.
    other = prompts(tok, 1)[0]
    assert batch.generate(other, max_new_tokens=8, stop_token_ids=[], session="editor-2").token_ids == \
        greedy(tiny_2b, other, 8)
    third = batch.generate(typed, max_new_tokens=8, stop_token_ids=[], session="editor-1")
    assert third.cached_tokens == len(typed) - 1 and third.token_ids == again.token_ids


def test_a_newer_request_from_the_same_editor_cancels_the_older(tiny_2b, scheduler):
    ids = prompts(tiny_2b.tokenizer, 2)
    batch = scheduler(tiny_2b, slots=2)
    older = batch.generate(ids[0], max_new_tokens=2000, stop_token_ids=[], stream=True, session="e")
    next(older)
    newer = batch.generate(ids[1], max_new_tokens=6, stop_token_ids=[], stream=True, session="e")
    old, new = results([older, newer])
    assert old.finish_reason == "cancelled"
    assert new.token_ids == greedy(tiny_2b, ids[1], 6)


def test_evicting_an_idle_session_keeps_results_right(tiny_2b, scheduler):
    ids = prompts(tiny_2b.tokenizer, 4)
    batch = scheduler(tiny_2b, slots=2)
    for round_ in range(2):
        for i, p in enumerate(ids):  # four editors, two slots: each request evicts the idlest editor
            got = batch.generate(p, max_new_tokens=5, stop_token_ids=[], session=f"e{i}")
            assert got.token_ids == greedy(tiny_2b, p, 5), (round_, i)


def test_users_are_admitted_fairly_not_by_arrival(tiny_2b, scheduler):
    """One user queues many requests, then another user one: with one slot, the second user's
    request runs next, before the first user's backlog."""
    ids = prompts(tiny_2b.tokenizer, 1)[0]
    batch = scheduler(tiny_2b, slots=1)
    order: list[str] = []
    lock = threading.Lock()
    done = threading.Event()
    total = 5

    def deliver_as(name):
        def deliver(item):
            if not isinstance(item, str):
                with lock:
                    order.append(name)
                    if len(order) == total:
                        done.set()
        return deliver

    def request(n=4):
        return tiny_2b._request(ids, max_new_tokens=n, stop_token_ids=[])

    holder = request(5000)
    first_piece = threading.Event()
    batch.submit(holder, user="busy", deliver=lambda item: (first_piece.set(), deliver_as("busy-0")(item)))
    assert first_piece.wait(TIMEOUT)  # busy-0 holds the only slot
    for i in range(1, 4):
        batch.submit(request(), user="busy", deliver=deliver_as(f"busy-{i}"))
    batch.submit(request(), user="quiet", deliver=deliver_as("quiet"))
    wait_until(lambda: batch.stats.waiting == 4, TIMEOUT, "the four requests to wait for the busy slot")
    holder.cancel.set()
    assert done.wait(TIMEOUT)
    assert order[:2] == ["busy-0", "quiet"], order


def test_requests_that_do_not_fit_a_slot_or_ask_for_drafts_run_alone(tiny_2b, scheduler):
    ids = prompts(tiny_2b.tokenizer, 2)
    batch = scheduler(tiny_2b, slots=2, max_len=64)
    long = batch.generate(ids[0], max_new_tokens=100, stop_token_ids=[], stream=True)  # 100 > 64 positions
    drafted = batch.generate(ids[1] * 2, max_new_tokens=20, stop_token_ids=[], draft_tokens=4, stream=True)
    batched = batch.generate(ids[1], max_new_tokens=10, stop_token_ids=[], stream=True)
    got = results([long, drafted, batched])
    assert got[0].token_ids == greedy(tiny_2b, ids[0], 100)
    assert got[1].token_ids == greedy(tiny_2b, ids[1] * 2, 20) and got[1].drafted_tokens > 0
    assert got[2].token_ids == greedy(tiny_2b, ids[1], 10)


def test_bad_requests_fail_alone(tiny_2b, scheduler):
    batch = scheduler(tiny_2b, slots=2)
    with pytest.raises(PromptError):
        batch.generate([], max_new_tokens=4)
    with pytest.raises(PromptError):
        batch.generate([tiny_2b.config.vocab_size + 5], max_new_tokens=4)
    ids = prompts(tiny_2b.tokenizer, 1)[0]
    assert batch.generate(ids, max_new_tokens=4, stop_token_ids=[]).token_ids == greedy(tiny_2b, ids, 4)


def test_a_failing_step_fails_its_requests_and_the_scheduler_serves_on(tiny_2b, scheduler, monkeypatch):
    ids = prompts(tiny_2b.tokenizer, 2)
    batch = scheduler(tiny_2b, slots=2)
    real = batch.step.run

    def broken(b):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(batch.step, "run", broken)
    stream = batch.generate(ids[0], max_new_tokens=8, stop_token_ids=[], stream=True)
    with pytest.raises(RuntimeError, match="out of memory"):
        results([stream])
    monkeypatch.setattr(batch.step, "run", real)
    assert batch.generate(ids[1], max_new_tokens=8, stop_token_ids=[]).token_ids == greedy(tiny_2b, ids[1], 8)


def test_close_ends_running_requests(tiny_2b):
    ids = prompts(tiny_2b.tokenizer, 1)[0]
    batch = BatchScheduler(tiny_2b, slots=1)
    stream = batch.generate(ids, max_new_tokens=5000, stop_token_ids=[], stream=True)
    next(stream)
    batch.close()
    assert results([stream])[0].finish_reason == "cancelled"
    with pytest.raises(RuntimeError, match="closed"):
        batch.generate(ids, max_new_tokens=2)
