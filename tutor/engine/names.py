"""How CodeGemma checkpoints are named. Apart from :mod:`tutor.engine.config` (which needs torch for its
dtypes) so that a client of a shared server can tell served models apart without importing torch."""

from __future__ import annotations

import re

# How instruction-tuned checkpoints are named: codegemma-7b-it, codegemma-1.1-7b-it, ...
IT_NAME = re.compile(r"(^|[-_/])it($|[-_/.:])", re.IGNORECASE)
