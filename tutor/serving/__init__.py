"""`tutor serve`: an OpenAI-compatible HTTP server over the local engine (also the model worker)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import tornado.httpserver
import tornado.netutil

from ..backends.local import LocalBackend
from .app import make_app

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(backend: LocalBackend, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_queue: int = 16, parent_pid: int | None = None, grading=None) -> None:
    """Load the models, listen, print the URL on one line, and serve until stopped.

    With ``parent_pid`` the server exits when that process is gone, so a worker never outlives
    the notebook server or kernel that started it. Without it (a standalone server, which runs for
    hours) the GPU decode step is compiled unless TUTOR_COMPILE says otherwise: the warm-up below
    pays the compile time before the first request. A worker starts on a user's first request,
    so it does not compile unless asked.
    """
    if parent_pid is None:
        os.environ.setdefault("TUTOR_COMPILE", "1")
    for role, source in backend.sources.items():
        if source:
            model = backend.model(role)  # load now: a broken folder fails here, with its message, not later
            started = time.monotonic()
            model.warm_up()
            if model.decode_path != "plain":
                print(f"tutor serve: {role} model's decode step ready ({model.decode_path}, "
                      f"{time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
    if host not in LOOPBACK and not token:
        print(f"tutor serve: warning: listening on {host} without --token; anyone who can reach this "
              "machine can use the model.", file=sys.stderr)
    asyncio.run(_serve(backend, host, port, token, max_queue, parent_pid, grading))


async def _serve(backend: LocalBackend, host: str, port: int, token: str | None, max_queue: int,
                 parent_pid: int | None, grading=None) -> None:
    app = make_app(backend, token=token, max_queue=max_queue, grading=grading)
    sockets = tornado.netutil.bind_sockets(port, host)
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    print(f"tutor serve: listening on http://{shown}:{bound[1]}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            if parent_pid is not None and not _alive(parent_pid):
                break
    server.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return os.getppid() != 1 or pid == 1
