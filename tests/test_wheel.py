"""The wheel carries the JupyterLab extension: built by the Python build backend (hatch-jupyter-builder
runs npm), then installed where there is no node at all. 127 s on two loaded CPU cores (build 36 s)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run(*cmd: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600) -> str:
    done = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("npm") is None, reason="building the wheel needs npm (installing it does not)")
def test_a_wheel_built_from_source_installs_the_labextension_without_npm(tmp_path):
    started = time.monotonic()
    # A clean copy of the tracked sources: no built extension in it, so the build must make one.
    source = tmp_path / "src"
    files = run("git", "ls-files", cwd=ROOT).splitlines()
    for name in files:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    assert not (source / "tutor" / "labextension").exists()
    modules = ROOT / "labextension" / "node_modules"
    if modules.is_dir():  # npm install from an empty cache is slow; this keeps the test within minutes
        shutil.copytree(modules, source / "labextension" / "node_modules", symlinks=True)
    dist = tmp_path / "dist"
    # In this environment (it has hatchling, hatch-jupyter-builder and jupyterlab from the test extra):
    # pip's isolated build environment would first install jupyterlab and its ~80 dependencies, which
    # took 333 s of the test's 462 s. The build hook and the wheel are the same either way.
    # As in an activated venv: labextension/build.js finds jupyterlab's Python by the `jupyter` on PATH.
    here = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source, env=here)
    wheel = next(dist.glob("tutor-*.whl"))
    built = time.monotonic() - started

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    bin_dir = venv / "bin"
    no_npm = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR")}
    no_npm["PATH"] = str(bin_dir)  # nothing else: no node, no npm
    assert shutil.which("npm", path=no_npm["PATH"]) is None
    run(bin_dir / "python", "-m", "pip", "install", "-q", "torch==2.13.0", env=no_npm)  # a local wheel, in the cache
    run(bin_dir / "python", "-m", "pip", "install", "-q", f"{wheel}[lab]", env=no_npm)
    listed = run(bin_dir / "jupyter", "labextension", "list", env=no_npm)
    line = next((ln for ln in listed.splitlines() if "tutor-inline-completion" in ln), "")
    assert "enabled" in line and "OK" in line, listed
    servers = run(bin_dir / "jupyter", "server", "extension", "list", env=no_npm)
    assert "tutor.server" in servers and "enabled" in servers, servers
    print(f"wheel built in {built:.0f} s; installed and listed in {time.monotonic() - started - built:.0f} s")
