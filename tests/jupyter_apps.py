"""Start a real `jupyter server` or JupyterLab for a test, on a free loopback port with a token."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class JupyterApp:
    process: subprocess.Popen
    url: str
    token: str
    log: Path

    def stop(self) -> None:
        """SIGTERM, as a user's Ctrl-C or a service manager sends; a server that has not stopped in 90 s
        (bounded for two busy cores) is killed and fails the test with its log's end."""
        self.process.terminate()
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            tail = self.log.read_text()[-2000:]
            raise RuntimeError(f"the server did not stop within 90 s of SIGTERM: {tail}") from None


def start_jupyter(module: str, root: Path, env: dict[str, str], *args: str, log: Path | None = None,
                  timeout: float = 120) -> JupyterApp:
    """``python -m module`` (jupyter_server or jupyterlab) serving ``root``; waits until /api/status answers."""
    port, token = free_port(), secrets.token_hex(16)
    log = log or root.parent / f"{root.name}-{module}.log"
    with open(log, "w") as out:  # the child keeps its own descriptor
        process = subprocess.Popen([sys.executable, "-m", module, "--no-browser", f"--port={port}",
                                    "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
                                    f"--ServerApp.root_dir={root}", "--allow-root", *args],
                                   env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                return JupyterApp(process, url, token, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"{module} did not start: {log.read_text()[-2000:]}")
