"""The server extension in a real `jupyter server`, with the tiny model in the embedded worker."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from jupyter_apps import JupyterApp, start_jupyter
from waiting import wait_until


def start_server(root, env: dict[str, str], config_dir) -> JupyterApp:
    return start_jupyter("jupyter_server", root, {**env, "JUPYTER_CONFIG_DIR": str(config_dir)},
                         "--ServerApp.jpserver_extensions={'tutor.server': True}", log=root / "jupyter.log")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
    return {**env, "TUTOR_DEVICE": "cpu"}


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory, tiny_dirs):
    root = tmp_path_factory.mktemp("server")
    app = start_server(root, {**base_env(), "TUTOR_COMPLETION_MODEL": str(tiny_dirs["2b"])},
                       tmp_path_factory.mktemp("config"))
    yield app.url, app.token, app.process.pid
    app.stop()


def maps_torch(pid: int) -> bool | None:
    """Whether the process has libtorch mapped (torch imported); None where /proc cannot say (not Linux).
    tests/test_import_cost.py checks that this look sees torch where it is loaded."""
    maps = Path(f"/proc/{pid}/maps")
    return "libtorch" in maps.read_text() if maps.exists() else None


def body(**kw):
    return {"id": "r1", "path": "nb.ipynb", "cellId": "c1", "before": "def add(a, b):\n    return ", "after": "",
            "cellsBefore": ["import math"], "cellsAfter": ["print(add(1, 2))"], "language": "python", **kw}


def chunks(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in response.iter_lines() if line.strip()]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def status(url: str, token: str) -> dict:
    return httpx.get(f"{url}/tutor/status", headers=auth(token), timeout=10).json()


def test_requests_without_the_token_are_refused(jupyter):
    url, _, _ = jupyter
    assert httpx.post(f"{url}/tutor/complete", json=body(), timeout=10).status_code in (401, 403)
    assert httpx.get(f"{url}/tutor/status", timeout=10).status_code in (401, 403)
    assert httpx.post(f"{url}/tutor/complete", json=body(), headers=auth("wrong"), timeout=10).status_code in (401, 403)


def test_a_completion_streams_cumulative_text_and_publishes_the_worker(jupyter):
    url, token, pid = jupyter
    with httpx.stream("POST", f"{url}/tutor/complete", json=body(), headers=auth(token), timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        got = chunks(r)
    assert got and got[-1]["done"] is True and all(c["id"] == "r1" for c in got)
    assert all(not c["done"] for c in got[:-1]) and got[-1]["text"] == (got[-2]["text"] if len(got) > 1 else "")
    assert "\n" not in got[-1]["text"] or got[-1]["text"].count("\n") < 8  # max lines (default 8)
    s = status(url, token)
    assert s["requests"] >= 1 and s["completed"] >= 1 and s["errors"] == 0
    assert "running at http://127.0.0.1" in s["backend"]
    assert s["published_endpoint"].startswith("http://127.0.0.1")  # kernels started from now on inherit it
    assert maps_torch(pid) is not True  # the model runs in the worker: the notebook server never imports torch


def test_the_prompt_is_built_from_the_other_cells_within_the_budget(jupyter):
    url, token, _ = jupyter
    big = [f"x{i} = {i}" for i in range(300)]
    sizes = {}
    for budget in (64, 1500):  # the tiny model's context is 2048
        settings = {"contextBudget": budget, "maxTokens": 1}
        r = httpx.post(f"{url}/tutor/complete", json=body(settings=settings, cellsBefore=big),
                       headers=auth(token), timeout=120)
        assert r.status_code == 200
        sizes[budget] = status(url, token)["last_prompt_tokens"]
    assert 0 < sizes[64] <= 64 < sizes[1500] <= 1500


def test_bad_requests_get_a_clear_error_object(jupyter):
    url, token, _ = jupyter
    r = httpx.post(f"{url}/tutor/complete", json={"id": "x"}, headers=auth(token), timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["kind"] == "invalid_request" and "before" in r.json()["error"]["message"]


def test_a_newer_request_from_the_same_editor_stops_the_older_generation(jupyter):
    url, token, _ = jupyter
    long = {"maxTokens": 1024, "maxLines": 200}
    # Random weights stop at a stop token by chance; these prompts run 300 to 500 tokens with the tiny
    # model, long enough for the newer request to come while the older one is generating.
    for before_cursor in ("v142 = 142\n", "v125 = 125\n", "v82 = 82\n"):
        before = status(url, token)
        first = body(id="old", before=before_cursor, after="", settings=long)
        with httpx.Client(headers=auth(token), timeout=120) as client:
            with client.stream("POST", f"{url}/tutor/complete", json=first) as old:
                lines = old.iter_lines()
                assert json.loads(next(lines))["done"] is False  # the old one is generating
                new = client.post(f"{url}/tutor/complete", json=body(id="new", settings={"maxTokens": 4}))
                assert new.status_code == 200 and json.loads(new.text.splitlines()[-1])["done"] is True
                rest = [json.loads(line) for line in lines if line.strip()]
        assert rest[-1]["done"] is True and rest[-1]["id"] == "old"
        after = status(url, token)
        if after["superseded"] == before["superseded"]:
            continue  # the old one had finished before the new one came: try a longer one
        assert after["superseded"] == before["superseded"] + 1
        assert after["stopped_by_newer"] == before["stopped_by_newer"] + 1  # really stopped, not just ignored
        assert after["active"] == 0
        return
    pytest.fail("every older completion finished before the newer request came")


def test_without_a_model_the_error_says_what_to_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("nomodel")
    app = start_server(root, base_env(), tmp_path_factory.mktemp("config"))
    url, token = app.url, app.token
    try:
        r = httpx.post(f"{url}/tutor/complete", json=body(), headers=auth(token), timeout=30)
        last = json.loads(r.text.splitlines()[-1])
        assert last["done"] is True and last["error"]["kind"] == "not_configured"
        assert "TUTOR_COMPLETION_MODEL" in last["error"]["message"]
        assert status(url, token)["configured"] is False
    finally:
        app.stop()


def test_a_killed_worker_is_restarted_and_the_user_is_told_once(jupyter):
    import signal

    url, token, _ = jupyter
    httpx.post(f"{url}/tutor/complete", json=body(settings={"maxTokens": 2}), headers=auth(token), timeout=120)
    first = status(url, token)
    assert first["worker_pid"]
    os.kill(first["worker_pid"], signal.SIGKILL)
    # The next request must find a dead worker (not race its death): wait until the server sees it.
    wait_until(lambda: status(url, token)["worker_pid"] is None, 30, "the server to notice its killed worker")
    r = httpx.post(f"{url}/tutor/complete", json=body(id="after", settings={"maxTokens": 2}), headers=auth(token),
                   timeout=120)
    got = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert got[-1]["done"] is True and "error" not in got[-1]  # the completion still came
    notices = [c["notice"] for c in got if "notice" in c]
    assert len(notices) == 1 and "restarted" in notices[0] and "SIGKILL" in notices[0]
    again = status(url, token)
    assert again["worker_pid"] not in (None, first["worker_pid"])
    assert again["published_endpoint"] != first["published_endpoint"]  # new kernels get the new worker


def test_while_the_worker_loads_the_status_says_how_far(tmp_path_factory, tiny_dirs):
    # The worker sleeps 0.15 s after each progress event it reports (a test-only hook, TUTOR_TEST_LOAD_DELAY), so
    # that the tiny model's load, milliseconds, lasts a few seconds and can be watched.
    root = tmp_path_factory.mktemp("slowload")
    env = {**base_env(), "TUTOR_COMPLETION_MODEL": str(tiny_dirs["2b"]), "TUTOR_TEST_LOAD_DELAY": "0.15"}
    app = start_server(root, env, tmp_path_factory.mktemp("config"))
    url, token = app.url, app.token
    try:
        assert status(url, token)["state"] == "idle" and status(url, token)["loading"] is None
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, f"{url}/tutor/complete", json=body(settings={"maxTokens": 2}),
                                headers=auth(token), timeout=120)
            seen = []
            deadline = time.monotonic() + 120
            while not first.done() and time.monotonic() < deadline:
                s = status(url, token)
                if s["state"] == "loading" and s["loading"] is not None:
                    seen.append(s)
                time.sleep(0.1)
            last = json.loads(first.result(timeout=10).text.splitlines()[-1])
        assert last["done"] is True and "error" not in last
        fractions = [s["loading"]["fraction"] for s in seen]
        assert any(0 < f < 1 for f in fractions) and fractions == sorted(fractions), fractions
        reading = next(s for s in seen if 0 < s["loading"]["fraction"] < 1)
        assert reading["loading"]["role"] == "completion" and reading["loading"]["model"] == "codegemma-2b"
        assert reading["loading"]["phase"] == "reading" and 0 < reading["loading"]["done"] < reading["loading"]["total"]
        assert re.search(r"Loading the completion model codegemma-2b: reading weights, \d+%", reading["message"])
        after = status(url, token)
        assert after["state"] == "ready" and after["loading"] is None
    finally:
        app.stop()


def test_kernels_started_after_the_worker_inherit_its_endpoint(jupyter):
    url, token, server_pid = jupyter
    httpx.post(f"{url}/tutor/complete", json=body(settings={"maxTokens": 2}), headers=auth(token), timeout=120)
    published = status(url, token)["published_endpoint"]
    kernel = httpx.post(f"{url}/api/kernels", json={"name": "python3"}, headers=auth(token), timeout=60).json()
    try:
        environ = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not environ:
            for entry in os.listdir("/proc"):
                try:
                    ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
                    cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
                    if ppid == server_pid and kernel["id"].encode() in cmdline:
                        raw = open(f"/proc/{entry}/environ", "rb").read().split(b"\0")
                        environ = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
                except (ValueError, IndexError, OSError):
                    continue
            time.sleep(0.2)
        assert environ.get("TUTOR_ENDPOINT") == published and environ.get("TUTOR_TOKEN")
    finally:
        httpx.delete(f"{url}/api/kernels/{kernel['id']}", headers=auth(token), timeout=60)


def test_with_an_endpoint_no_worker_starts(tmp_path_factory, server, tiny_dirs):
    endpoint, served_token = server  # a shared `tutor serve` with the tiny models
    root = tmp_path_factory.mktemp("remote")
    env = {**base_env(), "TUTOR_ENDPOINT": endpoint, "TUTOR_TOKEN": served_token,
           "TUTOR_COMPLETION_MODEL": str(tiny_dirs["2b"])}  # the served name, and a local tokenizer
    app = start_server(root, env, tmp_path_factory.mktemp("config"))
    url, token = app.url, app.token
    try:
        r = httpx.post(f"{url}/tutor/complete", json=body(settings={"maxTokens": 4}), headers=auth(token), timeout=60)
        last = json.loads(r.text.splitlines()[-1])
        assert last["done"] is True and "error" not in last
        s = status(url, token)
        assert s["backend"].startswith("OpenAI-compatible server at " + endpoint)
        assert s["worker_pid"] is None and s["last_prompt_tokens"] > 0
        assert s["published_endpoint"] == endpoint  # left as the teacher set it
        assert maps_torch(app.process.pid) is not True  # a student's server on a class's endpoint: no torch
    finally:
        app.stop()


@pytest.mark.parametrize("raw", [
    b'{"id": "r1", "before": "x = \\ud800"}',  # an unpaired surrogate: no tokenizer can take it
    b'{"id": "r1", "before": "x", "cellsBefore": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"id": "r1", "before": "x", "settings": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
])
def test_bad_bodies_are_400s_not_500s(jupyter, raw):
    url, token, _ = jupyter
    r = httpx.post(f"{url}/tutor/complete", content=raw, headers=auth(token), timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["done"] is True and r.json()["error"]["message"]


def test_an_oversized_body_is_413(jupyter):
    url, token, _ = jupyter
    r = httpx.post(f"{url}/tutor/complete", content=b" " * (4 << 20 | 1), headers=auth(token), timeout=30)
    assert r.status_code == 413


def raw_post(url: str, headers: str, first: bytes) -> socket.socket:
    """A POST to /tutor/complete on a plain socket, with ``first`` the only bytes of its body sent (for now)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)  # every send and receive below: at most 10 s
    sock.sendall(f"POST /tutor/complete HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}\r\n".encode() + first)
    return sock


def test_an_oversized_body_is_refused_before_it_is_sent(jupyter):
    """Announced at 100 MiB by a client that waits to be told to go on (Expect: 100-continue, as curl does):
    the answer is 413 at once and none of the body is asked for. jupyter_server by itself would say
    "100 Continue" and wait for, and buffer, all of it."""
    url, token, _ = jupyter
    with raw_post(url, f"Authorization: token {token}\r\nContent-Type: application/json\r\n"
                       f"Expect: 100-continue\r\nContent-Length: {100 << 20}\r\n", b"") as sock:
        reply = b""
        while chunk := sock.recv(65536):  # until the server closes (a timeout here: it waited for the body)
            reply += chunk
    head, _, content = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    answer = json.loads(content)
    assert answer["done"] is True and "too large" in answer["error"]["message"]


def test_an_oversized_body_being_sent_is_not_waited_for(jupyter):
    """Announced at 100 MiB and being sent (64 KiB so far): the server answers and closes without reading
    the rest. The client may get the 413 or only the reset that closing under an unread upload causes."""
    url, token, _ = jupyter
    with raw_post(url, f"Authorization: token {token}\r\nContent-Length: {100 << 20}\r\n", b" " * 65536) as sock:
        try:
            reply = sock.recv(65536)  # a timeout (10 s) here: the server waited for the body
        except ConnectionResetError:
            reply = b"reset"
    assert reply.startswith(b"HTTP/1.1 413") or reply == b"reset", reply[:200]


def test_an_unannounced_body_is_read_no_further_than_the_limit(jupyter):
    """A chunked body (no Content-Length) that grows past the limit: the server stops reading it near twice
    the limit (8 MiB) and closes the connection; it never takes the 64 MiB that are offered."""
    url, token, _ = jupyter
    piece = b" " * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = 0
    with raw_post(url, f"Authorization: token {token}\r\nTransfer-Encoding: chunked\r\n", b"") as sock:
        with pytest.raises(OSError):  # broken pipe or reset: the server has closed the connection
            while sent < 64 << 20:
                sock.sendall(chunk)
                sent += len(piece)
    assert sent < 64 << 20


def test_an_oversized_body_without_the_token_is_refused_unread(jupyter):
    """Authentication comes first, and also before the body: 403, with none of the body asked for."""
    url, _, _ = jupyter
    with raw_post(url, f"Expect: 100-continue\r\nContent-Length: {100 << 20}\r\n", b"") as sock:
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]


def test_settings_from_a_jupyter_config_file(tmp_path_factory, tiny_dirs):
    """`c.Tutor.*` in a real jupyter_server_config.py of the config dir (JUPYTER_CONFIG_DIR), with no
    TUTOR_* variable set: the server extension's completions come from the model named there."""
    root, config = tmp_path_factory.mktemp("configured"), tmp_path_factory.mktemp("config")
    (config / "jupyter_server_config.py").write_text(
        f"c.Tutor.completion_model = {str(tiny_dirs['2b'])!r}\nc.Tutor.device = 'cpu'\n")
    env = base_env()
    env.pop("TUTOR_DEVICE")
    app = start_server(root, env, config)
    try:
        assert status(app.url, app.token)["configured"] is True
        r = httpx.post(f"{app.url}/tutor/complete", json=body(settings={"maxTokens": 2}), headers=auth(app.token),
                       timeout=120)
        last = json.loads(r.text.splitlines()[-1])
        assert last["done"] is True and "error" not in last, last
        assert f"completion: {tiny_dirs['2b']}" in status(app.url, app.token)["backend"]
    finally:
        app.stop()
