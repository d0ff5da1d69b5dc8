"""How far a model load has come: the weights' bytes handled of their total, and the phase.

:func:`tutor.engine.load` calls an optional callback with a :class:`LoadProgress` after each tensor
(a few hundred calls for a real checkpoint), so that whoever waits can draw a bar. The engine only
reports; what shows it (a tqdm bar, a widget, a status bar) lives in the surfaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# The phases, in order. Bytes grow while reading (or quantizing); the later phases come at the total.
READING = "reading"  # weights used as stored (or converted to the asked dtype)
QUANTIZING = "quantizing"  # weights read and converted to int8 as they come
PREPARING = "preparing"  # every weight read: fusing, transposing, choosing kernels
LOADED = "loaded"  # the model is built; the last event of a load
PHASE_WORDS = {READING: "reading weights", QUANTIZING: "quantizing weights to int8", PREPARING: "preparing",
               LOADED: "loaded"}


@dataclass(frozen=True)
class LoadProgress:
    model: str  # the checkpoint folder's name, as the user knows it (codegemma-7b-it)
    phase: str  # one of the phases above, or a later one a caller adds (e.g. "warming up")
    done: int  # bytes of weights handled so far
    total: int  # bytes of all the weights the model reads (from the safetensors headers)

    @property
    def fraction(self) -> float:
        """``done / total`` in [0, 1]; 1.0 for a load with nothing to read."""
        return min(1.0, self.done / self.total) if self.total > 0 else 1.0

    def describe(self) -> str:
        """One line for a person: ``codegemma-2b: reading weights, 42% (2.1 GB of 5.0 GB)``."""
        words = PHASE_WORDS.get(self.phase, self.phase)
        if self.phase in (READING, QUANTIZING):
            return f"{self.model}: {words}, {self.fraction:.0%} ({_size(self.done)} of {_size(self.total)})"
        return f"{self.model}: {words}"


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


ProgressCallback = Callable[[LoadProgress], None]
