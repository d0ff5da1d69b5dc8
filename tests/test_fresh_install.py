"""A newcomer's install: the package without its test extras, in a fresh venv, then the getting-started
notebook top to bottom. The test extras pull in much (numpy among them) that the package itself may forget
to declare; this is where a missing runtime dependency shows.

nbval (with the ipykernel it brings) is installed into that venv as the runner only: the notebook needs a
kernel, which a student's JupyterLab provides.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The torch build the Makefile installs by default (a local wheel on the CI machines); another with e.g.
# TUTOR_TEST_TORCH="torch --index-url https://download.pytorch.org/whl/cpu".
TORCH = os.environ.get("TUTOR_TEST_TORCH", "torch==2.13.0")


def run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{' '.join(cmd)} took more than {timeout:.0f} s:\n{exc.stdout}\n{exc.stderr}") from None


def missing_modules(text: str) -> list[str]:
    return sorted(set(re.findall(r"No module named '([^']+)'", text)))


@pytest.mark.slow
def test_the_package_alone_runs_the_getting_started_notebook(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUTOR_", "PYTHON", "VIRTUAL_ENV"))}
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=env, timeout=120)
    assert made.returncode == 0, made.stderr
    python, pip = str(venv / "bin" / "python"), [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    # The build backend goes in first and the package builds without isolation: an isolated build would
    # install jupyterlab (the labextension hook's build requirement) for minutes, for a hook that skips
    # the prebuilt extension anyway; the wheel's own build is tests/test_wheel.py's. None of the backend's
    # few packages is a runtime dependency of the tutor, so a missing one still shows.
    steps = (("torch", TORCH.split()), ("the build backend", ["hatchling>=1.21", "hatch-jupyter-builder>=0.9"]),
             ("the package, no extras", ["--no-build-isolation", str(ROOT)]), ("nbval (runner)", ["nbval"]))
    for what, args in steps:
        installed = run([*pip, *args], cwd=tmp_path, env=env, timeout=900)
        assert installed.returncode == 0, f"installing {what} failed:\n{installed.stderr[-3000:]}"

    # `tutor make-tiny`: the stand-in the notebook makes, from the command line (it once needed numpy).
    tiny = run([str(venv / "bin" / "tutor"), "make-tiny", str(tmp_path / "tiny"), "--variant", "7b-it"],
               cwd=tmp_path, env=env, timeout=300)
    assert tiny.returncode == 0 and "Traceback" not in tiny.stderr, \
        f"tutor make-tiny failed (missing: {missing_modules(tiny.stderr)}):\n{tiny.stderr[-3000:]}"

    # The notebook alone in a folder, with no project configuration around it.
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "getting-started.ipynb", work)
    (work / "pytest.ini").write_text("[pytest]\n")
    result = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
                  "getting-started.ipynb"], cwd=work, env=env, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, (f"the getting-started notebook failed in a fresh install (missing runtime "
                                    f"dependencies: {missing_modules(output) or 'none named'}):\n{output[-4000:]}")
