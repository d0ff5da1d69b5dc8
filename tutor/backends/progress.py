"""A model load's progress on its way to whoever waits: which role's model, how far, and a text bar.

The engine reports :class:`~tutor.engine.progress.LoadProgress`; a backend adds the role it loads
for. The model worker (`tutor serve --progress lines`) prints each event as one line on its stdout,
which :class:`~tutor.backends.worker.ModelWorker` reads while it waits for the worker to listen.
Text surfaces (`tutor serve` in a terminal, the kernel's cell output) draw it with tqdm.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from ..engine.progress import LOADED, LoadProgress

PROGRESS_PREFIX = "tutor serve: loading "
# Test-only: seconds `tutor serve --progress lines` sleeps after each event it prints, so that a test can
# watch a tiny model (which loads in milliseconds) while it loads. Nothing else sets it.
TEST_DELAY_ENV = "TUTOR_TEST_LOAD_DELAY"


@dataclass(frozen=True)
class Loading:
    role: str  # "completion" or "chat"
    progress: LoadProgress

    def describe(self) -> str:
        return f"the {self.role} model {self.progress.describe()}"

    def as_json(self) -> dict[str, Any]:
        """What /tutor/status and the worker's progress lines carry."""
        return {"role": self.role, **asdict(self.progress), "fraction": round(self.progress.fraction, 4)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Loading:
        return cls(str(data["role"]), LoadProgress(str(data["model"]), str(data["phase"]), int(data["done"]),
                                                   int(data["total"])))


LoadingCallback = Callable[[Loading], None]


def progress_line(loading: Loading) -> str:
    return PROGRESS_PREFIX + json.dumps(loading.as_json())


def parse_progress_line(line: str) -> Loading | None:
    """The event on one of the worker's stdout lines; None for any other line (or a garbled one)."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    try:
        return Loading.from_json(json.loads(line[len(PROGRESS_PREFIX):]))
    except (ValueError, KeyError, TypeError):
        return None


def line_reporter(out: TextIO | None = None) -> LoadingCallback:
    """A callback that prints each event as a progress line (the model worker's side of the relay)."""
    delay = float(os.environ.get(TEST_DELAY_ENV) or 0)

    def report(loading: Loading) -> None:
        print(progress_line(loading), file=out or sys.stdout, flush=True)
        if delay > 0:
            time.sleep(delay)

    return report


class TextBar:
    """A tqdm bar (bytes, scaled) fed with :class:`Loading` events; a new bar for each model, closed (left on
    screen) when it is loaded; what comes after that (a warm-up) is for other lines to say.

    ``disable=None`` draws only on a terminal (tqdm's rule), for `tutor serve`; a kernel's cell output is
    not a terminal but shows a bar well (it honours the carriage return), so it passes False."""

    def __init__(self, file: TextIO | None = None, *, disable: bool | None = None):
        self.file, self.disable = file, disable
        self._bar: Any = None
        self._model: tuple[str, str] | None = None
        self._finished: set[tuple[str, str]] = set()

    def __call__(self, loading: Loading) -> None:
        from tqdm import tqdm

        p = loading.progress
        key = (loading.role, p.model)
        if key in self._finished:
            return
        if self._bar is None or self._model != key:
            self.close()
            self._model = key
            self._bar = tqdm(total=p.total, desc=f"Loading {p.model}", unit="B", unit_scale=True,
                             file=self.file or sys.stderr, disable=self.disable, dynamic_ncols=True,
                             mininterval=0.2)
        self._bar.set_postfix_str(p.phase, refresh=False)
        self._bar.update(p.done - self._bar.n)
        if p.phase == LOADED:
            self._finished.add(key)
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
