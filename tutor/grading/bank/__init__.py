"""The curated problem bank: one JSON file per topic in this folder (format: tutor.grading.problem)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..problem import Problem, ProblemFormatError, load_problems

BANK_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bank:
    problems: tuple[Problem, ...]

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self):
        return iter(self.problems)

    def get(self, problem_id: str) -> Problem:
        for p in self.problems:
            if p.id == problem_id:
                return p
        raise KeyError(f"no problem {problem_id!r} in the bank; known ids: {', '.join(p.id for p in self.problems)}")

    def find(self, topic: str | None = None, level: int | None = None) -> list[Problem]:
        """Problems of a topic and/or level, in bank order."""
        return [p for p in self.problems
                if (topic is None or p.topic == topic) and (level is None or p.level == level)]


def load_bank(folder: str | Path | None = None) -> Bank:
    """All problems in `folder` (default: the curated bank), checked for format and unique ids."""
    return _load(Path(folder).resolve() if folder else BANK_DIR)


@lru_cache(maxsize=4)
def _load(folder: Path) -> Bank:
    problems: list[Problem] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.json")):
        for p in load_problems(path):
            if p.id in seen:
                raise ProblemFormatError(f"problem id {p.id!r} is used twice: {seen[p.id]} and {path}")
            seen[p.id] = path
            problems.append(p)
    return Bank(tuple(problems))
