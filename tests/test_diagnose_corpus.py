"""Every program of the beginner error corpus (tests/diagnose_corpus/), run for real and diagnosed.

A diagnosis of the wrong kind (or pointing at the wrong line) fails its program's test; so does a rule
that crashes (diagnose runs ``strict``). The corpus as a whole must be at least 90% explained, and every
kind a rule can give must have at least one program.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "diagnose_corpus"))
import corpus  # noqa: E402

from tutor.tutoring import KINDS, diagnose  # noqa: E402

PROGRAMS = corpus.load()
# Kinds that no corpus program can produce on every machine, and the test that covers them instead.
ELSEWHERE = {"permission-denied": "test_diagnose.py::test_permission_denied (root may open any file)"}
_OUTCOMES: dict[str, corpus.Outcome] = {}


def outcome(program: corpus.Program) -> corpus.Outcome:
    if program.id not in _OUTCOMES:
        error, ns, found = corpus.run(program, then=lambda e, ns: diagnose(program.source, e, ns, strict=True))
        _OUTCOMES[program.id] = corpus.Outcome(program, error, found, ns)
    return _OUTCOMES[program.id]


def _html(text: str) -> bool:
    outside = re.sub(r"``.*?``|`[^`]*`", "", text)
    return bool(re.search(r"<\s*/?\s*[A-Za-z!][^>]*>", outside)) or "&lt;" in outside


@pytest.mark.parametrize("program", PROGRAMS, ids=[f"{p.id} {p.description}" for p in PROGRAMS])
def test_program(program):
    result = outcome(program)
    found = result.found
    if program.known_unexplained:
        assert result.verdict in ("right", "unexplained"), f"wrong: {found}"
        return
    assert result.verdict == "right", (f"{result.error_type}: {result.error}\nexpected {program.kind}"
                                       f"{' line ' + str(program.line) if program.line else ''}, got {found}")
    if found is None:
        return
    assert "\n" not in found.title and len(found.title) <= 80
    sentences = [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z`])", found.explanation) if s.strip()]
    assert 2 <= len(sentences) <= 5, found.explanation
    assert found.suggestion, "every diagnosis says what to do next"
    for text in (found.title, found.explanation, found.suggestion):
        assert not _html(text) and "\x02" not in text and "\x03" not in text, text


def test_the_corpus_is_big_and_mostly_explained():
    outcomes = [outcome(p) for p in PROGRAMS]
    claimed = [o for o in outcomes if o.program.kind != corpus.UNEXPLAINED]
    explained = [o for o in claimed if o.verdict == "right"]
    assert len(PROGRAMS) >= 400
    assert [o.program.id for o in outcomes if o.verdict == "wrong"] == []
    assert len(explained) / len(claimed) >= 0.90


def test_every_kind_has_a_program_and_every_program_a_known_kind():
    expected = {p.kind for p in PROGRAMS} - {corpus.UNEXPLAINED}
    assert expected <= set(KINDS), expected - set(KINDS)
    assert set(KINDS) - expected - set(ELSEWHERE) == set()


def test_programs_are_unique():
    sources = [(tuple(p.cells), p.input) for p in PROGRAMS]
    assert len(sources) == len(set(sources))
