"""The curated bank: broad coverage, and every problem checked in the sandbox."""

from __future__ import annotations

import sys

import pytest

from tutor.grading import HINT_LADDER, LEVELS, TOPICS, Limits, check_solution, load_bank, run_reference

BANK = load_bank()
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")


def test_bank_covers_every_topic_and_level():
    assert len(BANK) >= 30
    assert {p.topic for p in BANK} == set(TOPICS)
    assert {p.level for p in BANK} == set(LEVELS)
    for p in BANK:
        assert len(p.hints) == len(HINT_LADDER)
        assert p.public_tests and p.hidden_tests


def test_lookup_by_id_topic_and_level():
    assert BANK.get("factorial").topic == "recursion"
    assert [p.level for p in BANK.find(topic="loops")] == [1, 2, 3]
    assert all(p.level == 3 for p in BANK.find(level=3))
    with pytest.raises(KeyError, match="no problem 'nope'"):
        BANK.get("nope")


@linux_only
def test_every_reference_passes_and_every_starter_fails():
    # One sandbox process per solution, all tests batched into it (speed: benchmarks/bench_grading.py).
    quick = Limits(cpu_seconds=1, wall_seconds=3)  # one starter is deliberately exponential
    problems_with_failing_references, starters_that_pass = [], []
    for p in BANK:
        reference = run_reference(p)
        if not reference.ok:
            problems_with_failing_references.append((p.id, reference.status, reference.failures))
        if check_solution(p, p.starter, quick).ok:
            starters_that_pass.append(p.id)
    assert not problems_with_failing_references
    assert not starters_that_pass
