"""The embedded default: one `tutor serve` process on loopback, started on first use.

The worker runs apart so that a crash or an out-of-memory kill takes down only the worker,
never the notebook server or a kernel. It listens on a free loopback port with a random token
(given through its environment, not its command line, so `ps` does not show it), exits when its
parent does, and is restarted on the next request after it dies; the caller is told.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import secrets
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path

import httpx

from ..engine.generation import GenerationStream
from ..engine.tokenizer import Tokenizer
from ..prompts import ContextFile
from .base import (
    DEFAULT_OPTIONS,
    Backend,
    BackendError,
    Completion,
    CompletionStream,
    GenerationOptions,
    Message,
)
from .progress import Loading, LoadingCallback, parse_progress_line
from .remote import RemoteBackend

READY_PREFIX = "tutor serve: listening on "


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        hint = " (often the machine running out of memory)" if returncode == -signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with status {returncode}"


def log_folder() -> Path:
    return Path(tempfile.gettempdir()) / f"tutor-{os.getuid()}"


def private_dir(folder: Path) -> Path:
    """``folder`` (``log_folder()``: ``$TMPDIR/tutor-<uid>``) made with mode 0700, checked to be ours.

    The temporary folder is shared by every user of the machine; a fixed name there, opened for
    append, lets another user plant a link that makes the worker write where they choose. A folder
    only its owner can enter, that is not a link and is owned by us, cannot be planted in.
    """
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise BackendError(f"cannot create the worker's log folder {folder} ({exc}); set TMPDIR to a folder "
                           "of yours.", 503, "worker_failed") from exc
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        what = ("a link" if stat.S_ISLNK(info.st_mode) else "not a folder" if not stat.S_ISDIR(info.st_mode)
                else f"owned by uid {info.st_uid}" if info.st_uid != os.getuid()
                else f"open to others (mode {stat.S_IMODE(info.st_mode):o})")
        raise BackendError(f"the worker's log folder {folder} is {what}, so another user could read or redirect "
                           "its log; remove it (it is remade private) or set TMPDIR to a folder of yours.",
                           503, "worker_failed")
    return folder


def open_log(path: Path) -> int:
    """``path`` opened for append, never through a link (a descriptor the caller closes)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise BackendError(f"cannot open the worker's log {path} ({exc.strerror}); if it is a link, remove it.",
                           503, "worker_failed") from exc


class ModelWorker:
    def __init__(self, completion_model: str | None, chat_model: str | None, *, device: str | None = None,
                 dtype: str | None = None, startup_timeout: float = 600.0, on_progress: LoadingCallback | None = None):
        """``on_progress`` hears each progress event of the worker's model loads, on the thread that starts it."""
        self.models = {"completion": completion_model, "chat": chat_model}
        self.on_progress = on_progress
        self.loading: Loading | None = None  # the latest progress event of the last start (kept once it is up)
        self.device, self.dtype = device, dtype
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.token = ""
        self.restarts = 0
        self.log_path = log_folder() / f"worker-{os.getpid()}.log"  # checked and made when the worker starts
        self._lock = threading.Lock()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def survived(self, error: BackendError, grace: float = 3.0) -> bool:
        """Whether the worker is still up after ``error``; a broken connection may mean it is dying."""
        if self.process is None:
            return False
        if error.kind == "unreachable":
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                return True
        return self.alive()

    def ensure(self) -> str | None:
        """Start the worker if it is not running. Returns a notice when it had died and was restarted."""
        with self._lock:
            if self.alive():
                return None
            notice = None
            if self.process is not None:
                notice = (f"The model worker had stopped ({describe_exit(self.process.returncode)}) "
                          "and has been restarted.")
                self.restarts += 1
            self._start()
            return notice

    def _start(self) -> None:
        token = secrets.token_urlsafe(24)
        cmd = [sys.executable, "-m", "tutor.cli", "serve", "--host", "127.0.0.1", "--port", "0",
               "--parent-pid", str(os.getpid()), "--progress", "lines"]
        for flag, value in (("--model", self.models["completion"]), ("--chat-model", self.models["chat"]),
                            ("--device", self.device), ("--dtype", self.dtype)):
            if value:
                cmd += [flag, value]
        env = {k: v for k, v in os.environ.items() if k not in ("TUTOR_ENDPOINT", "TUTOR_SERVE_TOKEN")}
        env["TUTOR_TOKEN"] = token
        private_dir(self.log_path.parent)
        log = open_log(self.log_path)
        try:
            process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                       text=True, env=env, start_new_session=True)
        finally:
            os.close(log)  # the child has its own copy
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True, name="tutor-worker-stdout").start()
        self.loading = None
        deadline = time.monotonic() + self.startup_timeout  # for the whole start: progress lines do not extend it
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                process.kill()
                raise BackendError(f"the model worker did not start within {self.startup_timeout:.0f} s; "
                                   f"see {self.log_path}.", 503, "worker_failed") from None
            if line is None:
                process.wait()
                raise BackendError(f"the model worker could not start ({describe_exit(process.returncode)}): "
                                   f"{self._log_tail()}", 503, "worker_failed")
            loading = parse_progress_line(line)
            if loading is not None:
                self.loading = loading
                if self.on_progress is not None:
                    self.on_progress(loading)
                continue
            if line.startswith(READY_PREFIX):
                url = line[len(READY_PREFIX):].strip()
                if not self._healthy(url):
                    process.kill()
                    raise BackendError(f"the model worker started but does not answer at {url}/health; "
                                       f"see {self.log_path}.", 503, "worker_failed")
                self.url, self.token, self.process = url, token, process
                return

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=10).json().get("status") == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return f"see {self.log_path}"
        errors = [line for line in lines if line.startswith("tutor: error:")]
        return (errors or lines or [f"see {self.log_path}"])[-1]

    def stop(self) -> None:
        with self._lock:
            if self.alive():
                assert self.process is not None
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
            self.process = None


class WorkerBackend(Backend):
    """A RemoteBackend to the worker, which starts it first and restarts it after a crash."""

    def __init__(self, worker: ModelWorker):
        self.worker = worker
        self._remote: RemoteBackend | None = None
        self._tokenizer: Tokenizer | None = None
        source = worker.models["completion"]
        if source and (Path(source) / "tokenizer.model").is_file():
            self._tokenizer = Tokenizer(Path(source) / "tokenizer.model")  # prompts go as token ids

    def load_progress(self) -> Loading | None:
        return self.worker.loading

    def describe(self) -> str:
        state = f"running at {self.worker.url}" if self.worker.alive() else "started on first use"
        models = ", ".join(f"{role}: {src or 'not configured'}" for role, src in self.worker.models.items())
        return f"model worker on this machine, {state} ({models})"

    def complete(self, prompt, options: GenerationOptions = DEFAULT_OPTIONS, *, stop_token_ids=None, session=None):
        return self._call(lambda r: r.complete(prompt, options, stop_token_ids=stop_token_ids, session=session))

    def fill_in_middle(self, prefix: str, suffix: str, options: GenerationOptions = DEFAULT_OPTIONS, *,
                       files: tuple[ContextFile, ...] | list[ContextFile] = (), path: str | None = None,
                       session: str | None = None):
        return self._call(lambda r: r.fill_in_middle(prefix, suffix, options, files=files, path=path, session=session))

    def chat(self, messages: list[Message], options: GenerationOptions = DEFAULT_OPTIONS):
        return self._call(lambda r: r.chat(messages, options))

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()
        self.worker.stop()

    def _call(self, start: Callable[[RemoteBackend], CompletionStream]) -> CompletionStream:
        notice = self.worker.ensure()
        if self._remote is None or self._remote.endpoint != self.worker.url.rstrip("/") + "/v1":
            if self._remote is not None:
                self._remote.close()
            self._remote = RemoteBackend(self.worker.url, self.worker.token, tokenizer=self._tokenizer)
        try:
            stream = start(self._remote)
        except BackendError as exc:
            if self.worker.survived(exc):
                raise
            raise self._crashed() from exc
        return GenerationStream(self._watch(stream, notice), stream.cancel_event)

    def _watch(self, stream: CompletionStream, notice: str | None) -> Generator[str, None, Completion]:
        try:
            yield from stream
        except BackendError as exc:
            if self.worker.survived(exc):
                raise
            raise self._crashed() from exc
        result = stream.result
        assert result is not None
        return dataclasses.replace(result, notices=(*result.notices, notice)) if notice else result

    def _crashed(self) -> BackendError:
        process = self.worker.process
        how = describe_exit(process.returncode if process is not None else None)
        try:
            self.worker.ensure()  # bring it back now so the next request finds it ready
            again = "It has been restarted: ask again."
        except BackendError as exc:
            again = f"Restarting it failed too: {exc}"
        return BackendError(f"The model worker stopped while answering ({how}). {again}", 503, "worker_restarted")
