"""`tutor serve` against bad input (issue 14): every body checked before a queue, limits before the body
is read, Host/Origin on an allow-list, a token beyond loopback. A real server process throughout."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import start_server

from tutor.serving.access import HostCheck, check_listen, host_name
from tutor.serving.schema import MAX_BODY_BYTES

TOKEN = "safety-token"
MAX_QUEUE = 2
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(tiny_dirs):
    """Its own server (the RSS test needs the process): a small queue, so a held slot shows at once."""
    proc, url = start_server("--model", str(tiny_dirs["2b"]), "--chat-model", str(tiny_dirs["7b-it"]),
                             "--token", TOKEN, "--dtype", "float32", "--max-queue", str(MAX_QUEUE),
                             "--scheduler", "fifo")
    yield proc, url
    proc.terminate()
    proc.wait(timeout=30)


def rss_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status", encoding="ascii"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def chat(*messages: object, **extra: object) -> bytes:
    return json.dumps({"messages": list(messages), "max_tokens": 2, **extra}).encode()


DEEP: list = [1]
for _ in range(40):
    DEEP = [DEEP]
NESTED = b'{"prompt": "x", "metadata": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
BAD = [
    # the reported hangs: a lone surrogate, non-text content, a role that is a list
    ("completions", b'{"prompt": "\\ud800", "max_tokens": 2}', "prompt"),
    ("chat", chat({"role": "system", "content": 5}, {"role": "user", "content": "hi"}), "messages[0].content"),
    ("chat", chat({"role": ["user"], "content": "hi"}), "messages[0].role"),
    ("chat", chat({"role": "wizard", "content": "hi"}), "messages[0].role"),
    ("chat", chat({"role": "user", "content": b"\\udfff".decode("unicode_escape")}),
     "messages[0].content"),
    ("chat", chat({"role": "user"}), "messages[0].content"),
    ("chat", chat({"role": "user", "content": [{"type": "text", "text": 7}]}), "messages[0].content"),
    ("chat", b'{"messages": "hi"}', "messages"),
    ("completions", json.dumps({"prompt": "x", "seed": 2**70}).encode(), "seed"),
    ("completions", json.dumps({"prompt": "x", "seed": -1}).encode(), "seed"),
    ("completions", json.dumps({"prompt": "x", "max_tokens": "5"}).encode(), "max_tokens"),
    ("completions", json.dumps({"prompt": [1, 2**40]}).encode(), "prompt"),
    ("completions", json.dumps({"prompt": "x", "stop_token_ids": ["a"]}).encode(), "stop_token_ids"),
    ("completions", json.dumps({"max_tokens": 2}).encode(), "prompt"),
    ("completions", b'{"prompt": "x", "\\ud800": 1}', None),
    ("completions", NESTED, None),
    ("completions", json.dumps({"prompt": "x", "metadata": DEEP}).encode(), "metadata"),  # past 32 levels
]


@pytest.mark.parametrize("endpoint,body,param", BAD, ids=[f"{e}-{p}-{i}" for i, (e, _, p) in enumerate(BAD)])
def test_bad_bodies_are_400s_naming_the_field(served, endpoint, body, param):
    _, url = served
    path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
    r = httpx.post(url + path, content=body, headers=AUTH, timeout=30)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == 400
    assert error["param"] == param
    if param:
        assert f"'{param}'" in error["message"]


def test_bad_bodies_never_hold_a_queue_slot(served):
    """After more than --max-queue of each reported hang, a good request is still served at once."""
    _, url = served
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        for endpoint, body, _ in BAD[:3] * (MAX_QUEUE + 2):
            path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
            assert client.post(path, content=body).status_code == 400
        r = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2})
        assert r.status_code == 200, r.text
        chat_ok = client.post("/v1/chat/completions",
                              json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert chat_ok.status_code == 200, chat_ok.text
        health = client.get("/health").json()
    assert all(m["waiting"] == 0 and m["running"] == 0 for m in health["models"].values())


def test_an_oversized_body_is_refused_from_its_length(served):
    _, url = served
    r = httpx.post(url + "/v1/completions", content=b" " * (MAX_BODY_BYTES + 1), headers=AUTH, timeout=30)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == 413


def _send_huge(url: str, size: int, seconds: float = 5.0) -> bytes:
    """Declare ``size`` bytes, send what the server takes in ``seconds``, return its answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=seconds) as sock:
        sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {size}\r\n\r\n".encode())
        chunk, sent, deadline = b"x" * (1 << 20), 0, time.monotonic() + seconds
        try:
            while sent < size and time.monotonic() < deadline:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server closed it: what we want
        try:
            return sock.recv(4096)
        except OSError:
            return b""


def test_huge_unauthenticated_bodies_do_not_grow_the_server(served):
    proc, url = served
    httpx.get(url + "/health", timeout=10)
    before = rss_bytes(proc.pid)
    answers = [_send_huge(url, 90 << 20) for _ in range(8)]
    grown = rss_bytes(proc.pid) - before
    assert grown < 64 << 20, f"the server grew by {grown >> 20} MiB"
    assert all(a == b"" or a.split(b" ")[1] in (b"400", b"401", b"413") for a in answers), answers
    assert httpx.get(url + "/health", timeout=10).json()["status"] == "ok"


def test_chunked_bodies_are_cut_off_too(served):
    proc, url = served

    def chunks():
        for _ in range(2 * MAX_BODY_BYTES // (1 << 16) + 2):
            yield b" " * (1 << 16)

    before = rss_bytes(proc.pid)
    try:
        r = httpx.post(url + "/v1/completions", content=chunks(), headers=AUTH, timeout=30)
        assert r.status_code in (400, 413)
    except httpx.HTTPError:
        pass  # tornado closed the connection once the limit was passed
    assert rss_bytes(proc.pid) - before < 64 << 20
    assert httpx.get(url + "/health", timeout=10).status_code == 200


@pytest.mark.parametrize("headers", [{"Host": "evil.example"}, {"Host": "evil.example:8000"},
                                     {"Origin": "http://evil.example"}, {"Origin": "null"}])
def test_foreign_host_or_origin_is_refused(served, headers):
    _, url = served
    for path in ("/health", "/v1/models"):
        r = httpx.get(url + path, headers={**AUTH, **headers}, timeout=10)
        assert r.status_code == 403
        assert "--allow-host" in r.json()["error"]["message"]
    r = httpx.post(url + "/v1/completions", json={"prompt": "x", "max_tokens": 1}, headers={**AUTH, **headers},
                   timeout=10)
    assert r.status_code == 403


def test_loopback_names_and_own_origin_are_allowed(served):
    _, url = served
    port = urlsplit(url).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert httpx.get(url + "/health", headers={"Host": host}, timeout=10).status_code == 200
    r = httpx.get(url + "/v1/models", headers={**AUTH, "Origin": f"http://localhost:{port}"}, timeout=10)
    assert r.status_code == 200


def test_host_check_rules():
    check = HostCheck("10.1.2.3", ["class.school.example"])
    assert check.refusal("10.1.2.3:8000", None) is None
    assert check.refusal("class.school.example", "https://class.school.example") is None
    assert check.refusal("[::1]:80", None) is None
    assert check.refusal("evil.example", None) is not None
    assert check.refusal(None, None) is not None
    assert HostCheck("127.0.0.1", ["*"]).refusal("anything", "http://else") is None
    assert host_name("[::1]:8000") == "::1" and host_name("A.B:80") == "a.b"


def test_no_token_beyond_loopback_is_refused():
    check_listen("127.0.0.1", None)
    check_listen("::1", None)
    check_listen("0.0.0.0", "secret")
    with pytest.raises(Exception, match="--token") as info:
        check_listen("0.0.0.0", None)
    assert "TUTOR_SERVE_TOKEN" in str(info.value)


def test_the_cli_refuses_before_loading(tiny_dirs, tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("TUTOR_TOKEN", "TUTOR_SERVE_TOKEN")}
    done = subprocess.run([sys.executable, "-m", "tutor.cli", "serve", "--host", "0.0.0.0", "--port", "0",
                           "--model", str(tiny_dirs["2b"])], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in done.stderr
    assert "--token" in done.stderr


def test_a_refused_body_still_gets_its_answer(served):
    """401 and 403 wait for a small body to arrive (and drop it): closing with bytes unread resets the
    connection, and the client would see that instead of the answer."""
    _, url = served
    body = json.dumps({"prompt": "x" * 100_000}).encode()
    with httpx.Client(base_url=url, timeout=10) as client:
        for headers, status in [({"Authorization": "Bearer wrong"}, 401), ({**AUTH, "Host": "evil.example"}, 403)] * 10:
            r = client.post("/v1/completions", content=body, headers=headers)
            assert r.status_code == status and r.json()["error"]["code"] == status
        assert client.post("/nowhere", content=body, headers=AUTH).status_code == 404
