"""Files: a file that is not there, a folder opened as a file, a file that is closed, read in the wrong
mode or with the wrong encoding."""

from __future__ import annotations

import io
import os
import re

from .context import Context
from .model import Diagnosis
from .registry import rule
from .text import close, code, on, plain

_MAX_LISTED = 500  # entries of a folder read for a did-you-mean; more is not a student's folder


def _filename(ctx: Context) -> str | None:
    name = getattr(ctx.error, "filename", None)
    return name if isinstance(name, str) else None


def _near(path: str) -> tuple[str, list[str]]:
    """The folder ``path`` would be in, and a few of the names there."""
    folder = os.path.dirname(path) or "."
    try:
        with os.scandir(folder) as entries:
            names = []
            for i, entry in enumerate(entries):
                if i >= _MAX_LISTED:
                    break
                names.append(entry.name)
    except OSError:
        names = []
    return folder, names


@rule(FileNotFoundError, kinds="file-not-found")
def file_not_found(ctx: Context) -> Diagnosis | None:
    name, line = _filename(ctx), ctx.line
    if name is None:
        return None
    folder, names = _near(name)
    base = os.path.basename(name)
    cwd = os.getcwd()
    folder_exists = os.path.isdir(folder)
    writing = re.search(r"""open\(.*,\s*['"][wax]""", ctx.text) is not None
    guess = close(base, names, cutoff=0.6) if folder_exists else None
    if writing and not folder_exists:
        explanation = (f"{ctx.where(True)} a file is created in the folder {code(folder)}, but that folder doesn't "
                       "exist. Python creates the file, but not the folders on the way to it.")
        suggestion = f"Create the folder first with `os.makedirs({folder!r}, exist_ok=True)`, or check its name."
    else:
        where = "the notebook's folder" if not os.path.isabs(name) and folder == "." else code(folder)
        noun = "folder" if re.search(r"listdir|chdir|scandir|rmdir|walk\(", ctx.text) else "file"
        verb = "opened" if "open(" in ctx.text else "used"
        explanation = (f"{ctx.where(True)} the {noun} {code(name)} is {verb}, but there is no such {noun} in "
                       f"{where}. "
                       + (f"Names without a folder are looked up in the folder the notebook runs in, {code(cwd)}."
                          if not os.path.isabs(name) else "")
                       + ("" if folder_exists else f" The folder {code(folder)} doesn't exist either."))
        if guess:
            suggestion = f"Did you mean {code(os.path.join(folder, guess) if folder != '.' else guess)}?"
        elif names and len(names) <= 12:
            suggestion = "The files there are: " + ", ".join(code(n, 30) for n in sorted(names)) + "."
        elif noun == "folder":
            suggestion = "Check the spelling of the folder's name, and that it is inside the notebook's folder."
        else:
            suggestion = ("Check the spelling and the extension (`.txt`, `.csv`), and that the file is in the same "
                          "folder as the notebook (or give its full path).")
    noun = "folder" if re.search(r"listdir|chdir|scandir|rmdir|walk\(", ctx.text) else "file"
    return Diagnosis("file-not-found", f"The {noun} {plain(base)} is not there{on(line)}", explanation, line,
                     suggestion)


@rule(IsADirectoryError, kinds="is-a-directory")
def is_a_directory(ctx: Context) -> Diagnosis | None:
    name = _filename(ctx) or "this name"
    return Diagnosis(
        "is-a-directory", f"{plain(name)} is a folder, not a file{on(ctx.line)}",
        f"{ctx.where(True)} {code(name)} is opened as a file, but it is a folder. `open(...)` reads and writes "
        "files only.",
        ctx.line, f"Give the name of a file inside it, like {code(os.path.join(name, 'data.txt'))}; "
                  f"`os.listdir({name!r})` lists what it holds.")


@rule(NotADirectoryError, kinds="file-not-found")
def not_a_directory(ctx: Context) -> Diagnosis | None:
    name = _filename(ctx) or "this path"
    return Diagnosis(
        "file-not-found", f"A file is used as a folder{on(ctx.line)}",
        f"{ctx.where(True)} the path {code(name)} goes through something that is a file, as if it were a folder.",
        ctx.line, "Check the path: each part before the last `/` must be a folder.")


@rule(PermissionError, kinds="permission-denied")
def permission_denied(ctx: Context) -> Diagnosis | None:
    name = _filename(ctx) or "this file"
    return Diagnosis(
        "permission-denied", f"Not allowed to use {plain(os.path.basename(name) or name)}{on(ctx.line)}",
        f"{ctx.where(True)} {code(name)} can't be opened: the computer doesn't allow this notebook to read or "
        "write it (or it is open in another program, on Windows).",
        ctx.line, "Use a file in your own folder, or close the program that has it open.")


@rule(io.UnsupportedOperation, kinds="file-mode", order=10)
def file_mode(ctx: Context) -> Diagnosis | None:
    if ctx.message not in ("not readable", "not writable"):
        return None
    reading = ctx.message == "not readable"
    mode = "`'w'` or `'a'` (writing)" if reading else "`'r'` (reading, the default)"
    return Diagnosis(
        "file-mode", f"The file was opened for {'writing' if reading else 'reading'}{on(ctx.line)}",
        f"{ctx.where(True)} the file is {'read' if reading else 'written'}, but it was opened with the mode {mode}. "
        "The mode, the second value given to `open(...)`, decides what can be done with the file.",
        ctx.line, "Open it with `'r'` to read, `'w'` to write (it empties the file), `'a'` to add at the end, or "
                  "`'r+'` for both.")


@rule(ValueError, kinds="closed-file")
def closed_file(ctx: Context) -> Diagnosis | None:
    if not ctx.message.startswith("I/O operation on closed file"):
        return None
    return Diagnosis(
        "closed-file", f"The file is already closed{on(ctx.line)}",
        f"{ctx.where(True)} a file is read or written after it was closed. A file opened with `with open(...) as f:` "
        "is closed as soon as the indented block ends.",
        ctx.line, "Do the reading or writing inside the `with` block (indented under it), or open the file again.")


@rule(UnicodeDecodeError, kinds="file-encoding")
def file_encoding(ctx: Context) -> Diagnosis | None:
    err = ctx.error
    codec = getattr(err, "encoding", None)
    if not isinstance(codec, str):
        return None
    return Diagnosis(
        "file-encoding", f"The file is not {plain(codec)} text{on(ctx.line)}",
        f"{ctx.where(True)} bytes are read as `{codec}` text, but some of them are not valid `{codec}`. The file "
        "was probably saved with another encoding (often `latin-1` or `cp1252` from Windows), or is not a text "
        "file at all.",
        ctx.line, "Open it with the encoding it was saved in, like `open(name, encoding='latin-1')`, or with "
                  "`'rb'` to read raw bytes.")
