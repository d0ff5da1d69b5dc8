"""A Jupyter server extension for browser tests: tutor.server's completer answers by rule instead of
from a model. Only the model's choice is scripted (tiny random weights write arbitrary text); the
request, prompt, post-processing (Shaper), HTTP streaming and the labextension all run for real.

Load it next to tutor.server (``jpserver_extensions``) with this folder on PYTHONPATH.
"""

from __future__ import annotations

from typing import Any

from scripted import ScriptedBackend
from tornado.ioloop import IOLoop

WHITESPACE = "  \n    \n"  # what issue 20 saw after `def circumference(r):\n    return `
LINES = ("area = math.pi * r ** 2\nprint(area)",)  # a suggestion to accept a word or a line of


class RuleBackend(ScriptedBackend):
    """Answers a FIM request by the line before the cursor, consistently as the student accepts parts."""

    def fill_in_middle(self, prefix, suffix, options=None, *, files=(), path=None, session=None):
        line = prefix.rsplit("\n", 1)[-1]
        if line.strip() == "return":
            return self._stream(WHITESPACE)
        for target in LINES:
            if line.startswith("area = ") and target.startswith(line):
                return self._stream(target[len(line):])
        return self._stream("")

    def describe(self) -> str:
        return "scripted replies (browser tests)"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "scripted_completion"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    def install() -> None:  # after every extension has loaded, whatever their order
        serverapp.web_app.settings["tutor_completer"]._backend = RuleBackend()

    IOLoop.current().add_callback(install)
