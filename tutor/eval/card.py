"""The CodeGemma model card's coding figures (pass@1, %), to print beside a run's own."""

from __future__ import annotations

import re

VARIANTS = ("2B", "2B 1.1", "7B", "7B-IT", "7B-IT 1.1")
CARD: dict[str, dict[str, float]] = {
    "humaneval": dict(zip(VARIANTS, (31.1, 37.8, 44.5, 56.1, 60.4), strict=True)),
    "mbpp": dict(zip(VARIANTS, (43.6, 49.2, 56.2, 54.2, 55.6), strict=True)),
    "single-line": dict(zip(VARIANTS, (78.4, 79.3, 76.1, 68.3, 77.4), strict=True)),
    "multi-line": dict(zip(VARIANTS, (51.4, 51.0, 58.4, 20.1, 23.7), strict=True)),
}
TITLES = {"humaneval": "HumanEval", "mbpp": "MBPP", "single-line": "HumanEval single-line infilling",
          "multi-line": "HumanEval multi-line infilling"}

_NAME = re.compile(r"codegemma-(?:(?P<v>1\.1)-)?(?P<size>2b|7b)(?P<it>-it)?(?:$|[^a-z0-9])", re.IGNORECASE)


def card_variant(model: str | None) -> str | None:
    """The card's column for a model named like the released ones (google/codegemma-1.1-7b-it -> "7B-IT 1.1")."""
    match = _NAME.search(model or "")
    if match is None:
        return None
    name = match["size"].upper() + ("-IT" if match["it"] else "")
    return f"{name} 1.1" if match["v"] else name
