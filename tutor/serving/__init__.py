"""`tutor serve`: an OpenAI-compatible HTTP server over the local engine (also the model worker)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import tornado.httpserver
import tornado.netutil

from .access import HostCheck, check_listen
from .schema import MAX_BODY_BYTES

if TYPE_CHECKING:
    from ..backends.local import LocalBackend


def serve(backend: LocalBackend, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_queue: int = 64, parent_pid: int | None = None, grading=None, scheduler: str = "auto",
          max_per_user: int = 0, slots: int | None = None, slot_tokens: int | None = None, hub=None,
          prefix: str = "/", allow_hosts: Sequence[str] = (), in_process: bool = False,
          progress: str = "bar", stream_interval: float = 0.0) -> None:
    """Load the models, listen, print the URL on one line, and serve until stopped.

    With ``parent_pid`` the server exits when that process is gone, so a worker never outlives
    the notebook server or kernel that started it. Without it (a standalone server, which runs for
    hours) the GPU decode step is compiled unless TUTOR_COMPILE says otherwise: the warm-up below
    pays the compile time before the first request. A worker starts on a user's first request,
    so it does not compile unless asked, and it runs one request at a time (``scheduler`` "auto"
    means the batch only for a standalone server on a GPU). With ``hub`` (a tutor.serving.hub.HubGate)
    the Hub authenticates every request, and the routes sit under ``prefix``.

    The batch runs in a child process (tutor.serving.engine_process), so that the HTTP server and
    the batch each have a core, unless ``in_process``; ``progress`` (bar, lines, none) is how the
    child shows its models' loading, as the backend's own callback does in this process.
    """
    # Here, not at the top: tutor.serving.schema is also the inline completer's (tutor.server), which must not
    # import the engine (torch) with this package when the model is on a shared server.
    from .app import make_app

    if hub is None:  # under the Hub, every request needs a Hub token
        check_listen(host, token)  # before minutes of loading, not after
    if parent_pid is None:
        os.environ.setdefault("TUTOR_COMPILE", "1")
    elif scheduler == "auto":
        scheduler = "fifo"  # one user's model worker: no batch slots taking half the GPU's memory
    engine = None
    started = time.monotonic()
    if not in_process and any(backend.sources.values()) and _batched(backend, scheduler):
        from .engine_process import EngineConfig, EngineProcess

        engine = EngineProcess(EngineConfig(backend.sources["completion"], backend.sources["chat"],
                                            device=backend.device, dtype=backend.dtype, progress=progress,
                                            slots=slots, slot_tokens=slot_tokens))
        engine.wait_ready()  # loads and warms up there: a broken folder fails here, with its message
    for role, source in backend.sources.items():
        if source and engine is None:
            backend.model(role)  # load now: a broken folder fails here, with its message, not later
    app = make_app(backend, token=token, max_queue=max_queue, grading=grading, scheduler=scheduler,
                   max_per_user=max_per_user, slots=slots, slot_tokens=slot_tokens, hub=hub, prefix=prefix,
                   # Under the Hub its proxy forwards the public name as Host, and the Hub's token guards
                   # every request: the allow-list is for a server that answers anyone who reaches it.
                   hosts=HostCheck(host, ["*"] if hub is not None else allow_hosts), engine=engine,
                   stream_interval=stream_interval)
    state = app.settings["tutor_state"]
    for served in state.models.values():
        if engine is None:
            started = time.monotonic()
            backend.report_phase(served.roles[0], "warming up")  # compiling or capturing can take a while
            served.scheduler.warm_up()
        print(f"tutor serve: {served.name} ({', '.join(served.roles)}): {served.scheduler.decode_path}, "
              f"ready in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    try:
        asyncio.run(_serve(app, host, port, parent_pid, prefix))
    finally:
        state.close()


def _batched(backend: LocalBackend, scheduler: str) -> bool:
    """Whether the models will be served by the batch ("auto": on a GPU), without loading them."""
    if scheduler != "auto":
        return scheduler == "batched"
    import torch

    from ..engine.codegemma import default_device

    return (torch.device(backend.device) if backend.device else default_device()).type == "cuda"


async def _serve(app, host: str, port: int, parent_pid: int | None, prefix: str = "/") -> None:
    engine = app.settings["tutor_state"].engine
    if engine is not None:
        engine.attach(asyncio.get_running_loop())
    sockets = tornado.netutil.bind_sockets(port, host)
    # Bodies past the largest limit of any endpoint are refused by tornado from Content-Length (or as a
    # chunked body grows), before a byte is buffered; the handlers answer each endpoint's own 413.
    server = tornado.httpserver.HTTPServer(app, max_body_size=2 * MAX_BODY_BYTES, max_buffer_size=2 * MAX_BODY_BYTES)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    print(f"tutor serve: listening on http://{shown}:{bound[1]}{prefix.rstrip('/')}", flush=True)

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
