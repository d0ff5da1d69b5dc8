"""HTTP for inline completion: thin handlers on jupyter_server's authenticated APIHandler.

POST /tutor/complete  -> newline-delimited JSON, one object a line:
    {"id": ..., "text": <the whole completion so far>, "done": false}  ... then
    {"id": ..., "text": <final>, "done": true}   or   {"id": ..., "error": {...}, "done": true}
    and, rarely, {"id": ..., "notice": "the model worker ... has been restarted", "done": false}
GET  /tutor/status    -> the state (not_configured, idle, loading, ready, unreachable), while loading how far
                         ("loading": {"fraction", "phase", ...}), the backend and counters (requests, ...)
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from ..serving.schema import MAX_BODY_BYTES, check_tree, parse_body
from .completion import Completer, CompletionRequest, Notice, RequestError, error_object

_DONE = object()


class TutorHandler(APIHandler):
    def initialize(self, completer: Completer, executor: ThreadPoolExecutor) -> None:
        self.completer = completer
        self.executor = executor


class StatusHandler(TutorHandler):
    @web.authenticated
    def get(self) -> None:
        self.finish(json.dumps(self.completer.status()))


# How much of an oversized body is read (and thrown away) so that the client hears the 413: a server that
# closes while a client is still sending resets the connection, and the client sees that, not the answer.
# Past this, the answer comes at once and the connection closes unread (the client may see only the reset).
# tutor serve draws the same line (tutor.serving: its HTTP server's max_body_size).
DRAIN_LIMIT = 2 * MAX_BODY_BYTES


@web.stream_request_body
class CompleteHandler(TutorHandler):
    """The body is streamed to :meth:`data_received` rather than read by tornado first: jupyter_server's
    HTTP server reads bodies of up to ``ServerApp.max_body_size`` (512 MiB) into memory before any
    handler runs, which a shared notebook host cannot afford per request. Here the limit is this
    endpoint's own: at most MAX_BODY_BYTES are kept; the rest of an oversized body, up to DRAIN_LIMIT,
    is read and dropped, then answered 413; a body announced larger than that is answered 413 before a
    byte of it is read, and tornado stops reading a chunked one there (400, connection closed)."""

    _cancelled: threading.Event | None = None

    async def prepare(self) -> None:
        await super().prepare()  # authentication, host and origin checks (jupyter_server's APIHandler)
        self._chunks: list[bytes] = []
        self._size = 0
        if self.current_user is None:
            raise web.HTTPError(403)  # as @web.authenticated would, but before the body is read
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > DRAIN_LIMIT:
            # Now, with the body unread (a client that sent "Expect: 100-continue" has sent none of it);
            # tornado closes the connection after the answer, the only way not to read the rest. The
            # limit is raised to what is announced only so that tornado does not add a 400 of its own.
            self.request.connection.set_max_body_size(int(length))
            self.too_large()
            return
        self.request.connection.set_max_body_size(DRAIN_LIMIT)

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > MAX_BODY_BYTES:
            self._chunks.clear()  # what is left is read only to be dropped
        else:
            self._chunks.append(chunk)

    def too_large(self) -> None:
        error = error_object(RequestError(f"the request body is too large (at most {MAX_BODY_BYTES} bytes)"))
        self.set_status(413)
        self.finish(json.dumps({"error": {**error, "status": 413}, "done": True}))

    def on_connection_close(self) -> None:
        super().on_connection_close()  # a streamed body's reader must hear of it too
        if self._cancelled is not None:
            self._cancelled.set()  # the browser went away: stop the generation

    @web.authenticated
    async def post(self) -> None:
        if self._size > MAX_BODY_BYTES:
            self.too_large()
            return
        raw = b"".join(self._chunks)
        try:
            body = parse_body(raw or b"null")
            check_tree(body)  # valid Unicode, bounded depth: what from_json's type checks cannot see
            request = CompletionRequest.from_json(body)
        except (ValueError, RequestError) as exc:  # RequestSchemaError is a ValueError
            self.set_status(400)
            self.finish(json.dumps({"error": error_object(RequestError(str(exc))), "done": True}))
            return
        self.set_header("Content-Type", "application/x-ndjson; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        cancelled = self._cancelled = threading.Event()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def produce() -> None:
            try:
                for text in self.completer.complete(request, cancelled):
                    kind = "notice" if isinstance(text, Notice) else "text"
                    loop.call_soon_threadsafe(queue.put_nowait, (kind, str(text)))
            except Exception as exc:  # an error object for the frontend, never a broken stream
                self.completer.counters.errors += 1
                self.log.warning("tutor inline completion failed: %s", exc)
                loop.call_soon_threadsafe(queue.put_nowait, ("error", error_object(exc)))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, (_DONE, None))

        self.executor.submit(produce)
        text = ""
        try:
            # Small writes go out at once: with Nagle's algorithm on, the first chunk after the headers
            # waits for the browser's delayed ACK (40 ms on Linux). Tornado turns it back off after.
            self.request.connection.stream.set_nodelay(True)
            await self.flush()  # headers now: the browser's fetch returns and its (untimed) stream waits
            while True:
                kind, value = await queue.get()
                if kind is _DONE:
                    break
                if kind == "error":
                    self.write(json.dumps({"id": request.request_id, "error": value, "done": True}) + "\n")
                    await self.flush()
                    self.finish()
                    return
                if kind == "notice":
                    self.write(json.dumps({"id": request.request_id, "notice": value, "done": False}) + "\n")
                    continue
                text = value
                self.write(json.dumps({"id": request.request_id, "text": text, "done": False}) + "\n")
                await self.flush()
            self.write(json.dumps({"id": request.request_id, "text": text, "done": True}) + "\n")
            self.finish()
        except StreamClosedError:
            cancelled.set()
