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


class CompleteHandler(TutorHandler):
    _cancelled: threading.Event | None = None

    def on_connection_close(self) -> None:
        if self._cancelled is not None:
            self._cancelled.set()  # the browser went away: stop the generation

    @web.authenticated
    async def post(self) -> None:
        if len(self.request.body) > MAX_BODY_BYTES:  # jupyter_server has read it; at least go no further
            self.set_status(413)
            self.finish(json.dumps({"error": error_object(RequestError(
                f"the request body is too large (at most {MAX_BODY_BYTES} bytes)")), "done": True}))
            return
        try:
            body = parse_body(self.request.body or b"null")
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
