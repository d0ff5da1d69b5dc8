"""Model-free explanations of the errors beginners meet, for a failing notebook cell.

:func:`diagnose` takes the cell's source, the exception it raised and (optionally) the user's
variables, and returns a :class:`Diagnosis`: a stable ``kind``, a one-line ``title``, a short
plain-language ``explanation`` in Markdown (no HTML), the 1-based ``line`` in the cell and a
concrete ``suggestion``. It returns ``None`` when no rule is sure (a model may take over then):
no explanation is better than a wrong one.

Rules are cheap: they read the message, the cell's text and tokens, the traceback and the values the
student already has; nothing here imports a package, runs user code or walks the file system beyond
``os.path.isfile`` checks on traceback file names and, for a missing file, one listing of its folder.
:func:`diagnose` never raises.

Adding a rule: pick the module of its error family below (or start a new one and add it to the import
list), write a function ``(ctx) -> Diagnosis | None`` and decorate it with
``@rule(TheError, kinds="your-kind")`` (registry.py says in which order rules are tried). Code that a
suggestion proposes goes through ``propose(...)``: it is compiled before it is shown, and a suggestion
whose code doesn't compile is dropped. Add programs of the new kind to tests/diagnose_corpus/.

Families: syntax (Python's named syntax errors), syntax_named (the rarer ones whose message names the
rule), syntax_tokens and syntax_bare (bare "invalid syntax", read from the tokens), indentation, names,
attributes, none_values (helpers for ``None``), type_errors, calls,
lookups (indexing and keys), values, builtin_args (a built-in given the wrong kind of value),
arithmetic, imports, files, flow (recursion, iteration),
exercises (a lesson's stub, a failed ``assert``).
"""

from __future__ import annotations

from collections.abc import Mapping

from . import (  # noqa: F401 - importing a family registers its rules (tried in `order`, registry.py)
    arithmetic,
    attributes,
    builtin_args,
    calls,
    exercises,
    files,
    flow,
    imports,
    indentation,
    lookups,
    names,
    syntax,
    syntax_bare,
    syntax_named,
    syntax_tokens,
    type_errors,
    values,
)
from .context import Context
from .model import Diagnosis
from .registry import all_kinds, run

__all__ = ["Diagnosis", "KINDS", "diagnose"]

KINDS: tuple[str, ...] = all_kinds()


def diagnose(source: str, error: BaseException, namespace: Mapping[str, object] | None = None,
             *, strict: bool = False) -> Diagnosis | None:
    """Explain ``error``, raised by the cell ``source``, for a beginner; ``None`` when no rule applies.

    ``namespace`` holds the user's variables (for did-you-mean and for reading lengths, keys and
    values). Never raises (unless ``strict``, for tests: then a rule's own bug is raised, not hidden);
    returns ``None`` for ``KeyboardInterrupt``, ``SystemExit`` and anything that is not an ``Exception``.
    """
    try:
        if not isinstance(error, Exception):
            return None
        return run(Context(source, error, namespace), strict=strict)
    except Exception:  # a helper must never turn one error into two
        if strict:
            raise
        return None
