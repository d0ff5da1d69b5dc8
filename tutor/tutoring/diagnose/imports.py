"""Imports: a module that is not installed or misspelt, a name a module doesn't have, and a file of the
student's own that hides a standard module (a ``random.py`` next to the notebook)."""

from __future__ import annotations

import os
import re
import sys
import sysconfig
import types

from .context import Context
from .model import Diagnosis
from .names import POPULAR_MODULES
from .registry import rule
from .text import close, code, plain, propose

_PIP_NAMES = {"sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "pillow", "bs4": "beautifulsoup4",
              "yaml": "pyyaml", "IPython": "ipython"}


def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib") if paths.get(k))


def shadowing_file(name: str) -> str | None:
    """The student's own file that was imported instead of the standard module ``name``, if that happened."""
    top = name.split(".")[0]
    if top not in getattr(sys, "stdlib_module_names", ()):
        return None
    module = sys.modules.get(top)
    if not isinstance(module, types.ModuleType):
        return None
    path = vars(module).get("__file__")
    if not isinstance(path, str):
        return None
    real = os.path.realpath(path)
    if any(real.startswith(d + os.sep) for d in _stdlib_dirs()):
        return None
    return path


def _shadowed(ctx: Context, name: str, path: str) -> Diagnosis:
    base = os.path.basename(path)
    return Diagnosis(
        "shadowed-module", f"Your file {plain(base)} hides Python's {plain(name)} module",
        f"`import {name}` loaded your own file `{path}` instead of Python's standard `{name}` module, because "
        "files in the notebook's folder are found first. Your file doesn't have what the real module has.",
        ctx.line, f"Rename your file (for example to `my_{base}`), delete any `__pycache__` folder next to it, and "
                  "restart the kernel.")


@rule(AttributeError, kinds="shadowed-module", order=20)
def shadowed_module_attribute(ctx: Context) -> Diagnosis | None:
    m = ctx.match(r"(?:partially initialized )?module '([\w.]+)' has no attribute '(\w+)'")
    path = shadowing_file(m.group(1)) if m else None
    return _shadowed(ctx, m.group(1), path) if m and path else None


@rule(ImportError, AttributeError, kinds="circular-import", order=30)
def circular_import(ctx: Context) -> Diagnosis | None:
    """``partially initialized module 'x'``: a module imported again while its first import still runs."""
    m = re.search(r"partially initialized module '([\w.]+)'", ctx.message)
    if not m or "circular import" not in ctx.message:
        return None
    module = m.group(1)
    return Diagnosis(
        "circular-import", f"{plain(module)} is imported again while it is still loading",
        f"`{module}` was imported a second time before its first import had finished, so some of its names "
        "did not exist yet. This happens when two files import each other (a circular import), or when a file "
        "imports itself, for example because it has the name of the module it wants to use.",
        ctx.line, f"Remove the `import {module}` from the file `{module}.py` itself if it is there; otherwise move "
                  "what both files need into a third file, or import inside the function that needs it.")


@rule(ModuleNotFoundError, kinds="module-not-found")
def module_not_found(ctx: Context) -> Diagnosis | None:
    name = getattr(ctx.error, "name", None)
    if not isinstance(name, str):
        m = re.search(r"No module named '([\w.]+)'", ctx.message)
        if not m:
            return None
        name = m.group(1)
    top = name.split(".")[0]
    line = ctx.line
    not_package = re.search(r"No module named '([\w.]+)'; '([\w.]+)' is not a package", ctx.message)
    if not_package and "." in name:
        parent, part = name.rsplit(".", 1)
        module = sys.modules.get(parent)
        if module is not None and not hasattr(module, part):  # `import os.pathh`: no such name inside it either
            try:
                names = [n for n in dir(module) if not n.startswith("_")]
            except Exception:
                names = []
            guess = close(part, names, cutoff=0.7)
            fix = None
            if guess is not None:
                fix = f"import {parent}.{guess}" if f"{parent}.{guess}" in sys.modules else \
                    f"from {parent} import {guess}"
            return Diagnosis(
                "module-not-found", f"{plain(parent)} has nothing called {plain(part)}",
                f"`import {name}` looks for `{part}` inside the module `{parent}`, but `{parent}` has no module "
                f"and no name `{part}`. Names must be spelt exactly.",
                line, f"Did you mean {propose(fix)}?" if fix else
                      f"Check the spelling of `{part}`; `dir({parent})` lists what `{parent}` has.")
        return Diagnosis(
            "module-not-found", f"{plain(parent)} is a module, and {plain(part)} is inside it",
            f"`import {name}` treats `{part}` as a module inside a package `{parent}`, but `{parent}` is a single "
            f"module and `{part}` is a name inside it. `import` loads modules; `from ... import` takes names out "
            "of them.",
            line, f"Write {propose('from ' + parent + ' import ' + part)}, or {propose('import ' + parent)} and "
                  f"then use `{parent}.{part}`.")
    if "." in name and top in sys.modules:
        parent, part = name.rsplit(".", 1)
        try:
            names = [n for n in dir(sys.modules.get(parent)) if not n.startswith("_")]
        except Exception:
            names = []
        guess = close(part, names + ["pyplot"] * (parent == "matplotlib"), cutoff=0.7)
        return Diagnosis(
            "module-not-found", f"{plain(parent)} has no module {plain(part)}",
            f"`{parent}` is installed, but it has no part called `{part}`. Module names must be spelt exactly.",
            line, f"Did you mean `{parent}.{guess}`?" if guess else f"Check the spelling of `{part}`.")
    if top in POPULAR_MODULES or top in _PIP_NAMES:
        package = _PIP_NAMES.get(top, top)
        return Diagnosis(
            "module-not-found", f"The package {plain(top)} is not installed",
            f"`{top}` is a package that doesn't come with Python, and it is not installed in the environment this "
            "notebook runs in. Installing it once makes it available to every notebook that uses this kernel."
            + (f" On PyPI its name is `{package}`." if package != top else ""),
            line, f"Run `%pip install {package}` in a cell, then run this cell again.")
    guess = close(top, list(POPULAR_MODULES) + sorted(getattr(sys, "stdlib_module_names", ())), cutoff=0.75)
    if guess:
        return Diagnosis(
            "module-not-found", f"No module named {plain(top)}: a spelling mistake?",
            f"Python can't find a module called `{top}`. Module names must be spelt exactly, and `{guess}` is a "
            "well-known module with a very similar name.",
            line, f"Did you mean `{guess}`?")
    return Diagnosis(
        "module-not-found", f"No module named {plain(name)}",
        f"Python can't find a module called `{name}`. Either the name is misspelt, or it's a package that is not "
        "installed in the environment this notebook runs in.",
        line, f"Check the spelling; if it's a package from PyPI, run `%pip install {top}` in a cell "
              "(the name to install is sometimes different).")


@rule(ImportError, kinds=("import-name", "shadowed-module", "relative-import"))
def import_name(ctx: Context) -> Diagnosis | None:
    if ctx.message.startswith("attempted relative import with no known parent package"):
        return Diagnosis(
            "relative-import", "A relative import outside a package",
            "`from . import ...` imports from the package this file belongs to. A notebook cell belongs to no "
            "package, so there is nothing for the `.` to mean.",
            ctx.line, "Import the module by its own name, like `from mymodule import name` (with `mymodule.py` in "
                      "the notebook's folder).")
    m = re.match(r"cannot import name '(\w+)' from (?:partially initialized module )?'([\w.]+)'", ctx.message)
    if not m:
        return None
    name, module = m.groups()
    path = shadowing_file(module)
    if path:
        return _shadowed(ctx, module, path)
    names: list[str] = []
    mod = sys.modules.get(module)
    if mod is not None:
        try:
            names = [n for n in dir(mod) if not n.startswith("_")]
        except Exception:
            names = []
    guess = close(name, names, cutoff=0.6)
    return Diagnosis(
        "import-name", f"{plain(module)} has no {plain(name)}",
        f"The module `{module}` was found, but it has nothing called `{name}` to import. Names must be spelt "
        "exactly as the module spells them.",
        ctx.line, f"Did you mean `{guess}`?" if guess else f"Look up what `{module}` offers with "
                                                            f"{code('dir(' + module + ')')} after "
                                                            f"{code('import ' + module)}.")
