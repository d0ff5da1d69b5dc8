"""Python 3.10 to 3.13 word their errors differently: the diagnoses must match every version's messages.

Two checks:
- table-driven, on any machine: tests/diagnose_corpus/messages.json holds what each corpus program raises
  under each Python (recorded with ``corpus.py --write-messages``). Each program is run here for real, its
  exception is given the other version's message (a syntax error is rebuilt with that version's message
  and position), and the diagnosis must be the expected one;
- live, where other interpreters are installed (``TUTOR_TEST_PYTHONS``, a ``:``-separated list, or the
  ``python3.X`` found on PATH and in pyenv): the whole corpus runs and is diagnosed in that interpreter.
"""

from __future__ import annotations

import ast
import builtins
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "diagnose_corpus"))
import corpus  # noqa: E402

from tutor.tutoring import diagnose  # noqa: E402

TABLE = json.loads(corpus.MESSAGES.read_text(encoding="utf-8"))
HERE_VERSION = "{}.{}".format(*sys.version_info[:2])
PROGRAMS = corpus.load()


def replay(error: BaseException, recorded: dict) -> BaseException | None:
    """``error`` as the recorded version raised it: its message (and, for syntax errors, its position)."""
    cls = getattr(builtins, recorded["type"], None)
    if isinstance(error, SyntaxError):
        if not (isinstance(cls, type) and issubclass(cls, SyntaxError)):
            return None
        return cls(recorded["msg"], (error.filename, recorded["lineno"], recorded["offset"], recorded["text"],
                                     recorded["end_lineno"], recorded["end_offset"]))
    if type(error).__name__ != recorded["type"] or recorded.get("args") is None:
        return None  # another exception type in that version: the live check covers it
    error.args = tuple(corpus.restore(ast.literal_eval(a)) for a in recorded["args"])
    return error


def test_the_table_covers_four_versions_and_the_corpus():
    assert {"3.10", "3.11", "3.12", "3.13"} <= set(TABLE)
    for version, rows in TABLE.items():
        known = [p for p in PROGRAMS if p.id in rows]
        assert len(known) >= 400, f"{version}: re-run corpus.py --write-messages after changing the corpus"


@pytest.mark.parametrize("version", sorted(v for v in TABLE if v != HERE_VERSION))
def test_other_versions_messages_get_the_same_diagnoses(version):
    rows = TABLE[version]
    checked, wrong, unexplained = 0, [], []
    for program in PROGRAMS:
        recorded = rows.get(program.id)
        if recorded is None:
            continue

        def then(error, ns, program=program, recorded=recorded):
            other = replay(error, recorded)
            return (other, diagnose(program.source, other, ns, strict=True)) if other is not None else None

        _, _, result = corpus.run(program, then=then)
        if result is None:
            continue
        other, found = result
        checked += 1
        verdict = corpus.Outcome(program, other, found).verdict
        if verdict == "wrong":
            wrong.append(f"{program.id}: {recorded.get('msg') or recorded.get('str')!r} -> {found}")
        elif verdict == "unexplained" and not program.known_unexplained:
            unexplained.append(f"{program.id}: {recorded.get('msg') or recorded.get('str')!r}")
    assert checked >= 400
    assert wrong == []
    assert unexplained == []


def _other_pythons() -> list[str]:
    listed = os.environ.get("TUTOR_TEST_PYTHONS")
    candidates = listed.split(":") if listed else (
        [shutil.which(f"python3.{n}") for n in range(10, 14)]
        + sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[0-3]*/bin/python"))))
    found: dict[str, str] = {}
    for python in filter(None, candidates):
        try:
            version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                     capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if version and version != HERE_VERSION and version not in found:
            found[version] = python
    return [found[v] for v in sorted(found)]


@pytest.mark.parametrize("python", _other_pythons() or [pytest.param(None, marks=pytest.mark.skip(
    reason="no other Python 3.10-3.13 here; set TUTOR_TEST_PYTHONS to run the corpus in them"))])
def test_the_corpus_in_other_pythons(python):
    out = subprocess.run([python, "-W", "ignore", str(Path(corpus.__file__)), "--standalone"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == len(PROGRAMS)
    assert [r for r in rows if r["verdict"] == "wrong"] == []
    claimed = [r for r in rows if r["expected"] != corpus.UNEXPLAINED]
    assert sum(r["verdict"] == "right" for r in claimed) / len(claimed) >= 0.90
