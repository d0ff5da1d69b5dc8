"""A model load's progress: from the engine's loader, through the real model worker process, to a text bar."""

from __future__ import annotations

import io

import pytest

from tutor.backends import GenerationOptions, ModelWorker, WorkerBackend
from tutor.backends.progress import Loading, TextBar, parse_progress_line, progress_line
from tutor.engine import inspect_checkpoint, load
from tutor.engine.checkpoint import iter_tensors
from tutor.engine.progress import LOADED, PREPARING, QUANTIZING, READING, LoadProgress


def check_one_load(events: list[LoadProgress], reading: str = READING) -> None:
    """Bytes never go back, the phases come in order, and the load ends at the whole."""
    assert events, "no progress was reported"
    assert [e.done for e in events] == sorted(e.done for e in events)
    phases = [e.phase for e in events]
    assert phases[0] == reading and phases[-1] == LOADED and PREPARING in phases
    order = [reading, PREPARING, LOADED]
    assert [order.index(p) for p in phases] == sorted(order.index(p) for p in phases)
    assert events[0].fraction == 0.0 and events[-1].fraction == 1.0
    assert any(0 < e.fraction < 1 for e in events), "no step between nothing and everything"
    assert len({e.total for e in events}) == 1 and len({e.model for e in events}) == 1


def test_the_loader_reports_bytes_read_of_the_total_in_order(tiny_2b_dir):
    events: list[LoadProgress] = []
    load(tiny_2b_dir, device="cpu", dtype="float32", progress=events.append)
    check_one_load(events)
    checkpoint = inspect_checkpoint(tiny_2b_dir)
    stored = sum(t.numel() * t.element_size() for _, t in iter_tensors(checkpoint))
    assert events[-1].total == checkpoint.tensor_bytes == stored  # the total is what is read, from the headers
    assert events[0].model == tiny_2b_dir.name
    assert "reading weights, " in events[1].describe() and "%" in events[1].describe()


def test_quantizing_is_a_phase_of_its_own(tiny_2b_dir):
    events: list[LoadProgress] = []
    load(tiny_2b_dir, device="cpu", dtype="float32", quantize="int8", progress=events.append)
    check_one_load(events, reading=QUANTIZING)


def test_the_real_worker_relays_each_models_progress_to_its_parent(tiny_dirs):
    heard: list[Loading] = []
    worker = ModelWorker(str(tiny_dirs["2b"]), str(tiny_dirs["7b-it"]), dtype="float32", startup_timeout=120,
                         on_progress=heard.append)
    backend = WorkerBackend(worker)
    try:
        assert backend.load_progress() is None  # nothing has loaded yet
        assert backend.fill_in_middle("def f(", ")", GenerationOptions(max_tokens=2)).run().completion_tokens >= 1
        roles = [e.role for e in heard if e.progress.phase != "warming up"]  # both warm up after both loaded
        assert roles == sorted(roles, key=["completion", "chat"].index)  # one model after the other
        for role, folder in (("completion", tiny_dirs["2b"]), ("chat", tiny_dirs["7b-it"])):
            events = [e.progress for e in heard if e.role == role]
            warm = [e for e in events if e.phase == "warming up"]  # tutor serve's own step, after the engine's
            assert warm and events[-1] == warm[-1] and warm[-1].fraction == 1.0
            check_one_load([e for e in events if e.phase != "warming up"])
            assert events[0].model == folder.name
        assert backend.load_progress() == heard[-1]  # kept once the worker is up
    finally:
        backend.close()


def test_a_progress_line_carries_the_event_and_other_lines_are_not_events():
    event = Loading("chat", LoadProgress("codegemma-7b-it", READING, 2_100_000_000, 5_000_000_000))
    line = progress_line(event)
    assert "\n" not in line and parse_progress_line(line + "\n") == event
    assert event.as_json()["fraction"] == 0.42
    for other in ("tutor serve: listening on http://127.0.0.1:1", "tutor serve: loading {not json", ""):
        assert parse_progress_line(other) is None


@pytest.mark.parametrize("disable", [False, None])
def test_the_text_bar_is_tqdm_and_draws_off_a_terminal_only_when_asked(disable):
    out = io.StringIO()  # not a terminal
    bar = TextBar(out, disable=disable)
    for done, phase in ((0, READING), (300, READING), (1000, PREPARING), (1000, LOADED), (1000, "warming up")):
        bar(Loading("completion", LoadProgress("codegemma-2b", phase, done, 1000)))
    bar.close()
    text = out.getvalue()
    if disable is None:
        assert text == ""  # `tutor serve` with stderr in a log file: no carriage-return noise
    else:
        assert "Loading codegemma-2b" in text and "100%" in text
        assert "warming up" not in text  # after it is loaded, the bar is left as it ended
