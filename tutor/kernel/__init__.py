"""The IPython extension: `%load_ext tutor`."""

from __future__ import annotations

from typing import Any

from .extension import TutorExtension
from .generate import GenerateMagics
from .magics import TutorMagics
from .practice import PracticeMagics

_loaded: dict[int, TutorExtension] = {}


def load_ipython_extension(shell: Any) -> None:
    if id(shell) in _loaded:
        return
    extension = TutorExtension(shell)
    shell.register_magics(TutorMagics(shell, extension))
    shell.register_magics(PracticeMagics(shell, extension))
    shell.register_magics(GenerateMagics(shell, extension))
    shell.events.register("post_run_cell", extension.post_run_cell)
    _loaded[id(shell)] = extension
    if extension.policy_state.notice:  # a broken policy file: said once, here, not at every cell
        print(extension.policy_state.notice)


def unload_ipython_extension(shell: Any) -> None:
    extension = _loaded.pop(id(shell), None)
    if extension is not None:
        shell.events.unregister("post_run_cell", extension.post_run_cell)
        extension.close()
