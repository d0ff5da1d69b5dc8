"""The Makefile's `make lab` command line, as make would run it (`make -n`: nothing is installed or started)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def lab_command(*assignments: str) -> str:
    # -o: take the venv and the front end as made, so that only the lab's own recipe is printed.
    out = subprocess.run(["make", "-n", "--no-print-directory", "lab", "-o", "labextension", "-o", ".venv/.torch",
                          *assignments], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    [line] = [line for line in out.splitlines() if "jupyter lab" in line]
    return line


def test_make_lab_passes_allow_root_only_as_root():
    assert "--allow-root" in lab_command("USER_ID=0").split()
    assert "--allow-root" not in lab_command("USER_ID=1000").split()


def test_make_lab_as_whoever_runs_the_tests():
    is_root = subprocess.run(["id", "-u"], capture_output=True, text=True, check=True).stdout.strip() == "0"
    assert ("--allow-root" in lab_command().split()) == is_root


def test_lab_args_reach_jupyter():
    words = lab_command("USER_ID=1000", "LAB_ARGS=--ip=0.0.0.0 --no-browser").split()
    assert "--ip=0.0.0.0" in words and "--no-browser" in words
    assert words[-1] == "notebooks/getting-started.ipynb"
