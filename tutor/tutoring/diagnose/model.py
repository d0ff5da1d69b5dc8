"""What a diagnosis is: the one result type every rule returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    """One explained error."""

    kind: str  # stable id, e.g. "missing-colon"; every kind is declared by the rule that gives it
    title: str  # one short plain-text line for a panel heading
    explanation: str  # Markdown for a beginner, 2-5 sentences, no HTML
    line: int | None  # 1-based line in the cell source, when known
    suggestion: str | None  # a concrete next step (Markdown), when there is one; any code it proposes compiles
