"""Bounded waits for tests: poll a condition until a deadline, then fail once with what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, *, every: float = 0.05) -> T:
    """Return ``condition()``'s first truthy value; raise AssertionError naming ``what`` if none comes
    within ``timeout`` seconds. Exceptions of ``condition`` are not swallowed: a condition that can
    raise while the awaited state is not there yet must catch that itself."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}; it did not happen")
        time.sleep(every)
