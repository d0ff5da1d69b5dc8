"""`tutor serve --hub` as a JupyterHub managed service, for real: a Hub with configurable-http-proxy, the
dummy authenticator and two users, the tutor service on the tiny 2B, and each user's own single-user
server (spawned by the Hub, with the tutor server extension) getting completions through the service
with no setup of its own. The Hub's config is docs/jupyterhub_config.py, with only paths and ports changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from jupyter_apps import free_port

from tutor.backends import RemoteBackend
from tutor.backends.base import BackendError, GenerationOptions
from tutor.engine.errors import TutorError
from tutor.serving.hub import HubGate, service_from_env
from tutor.settings import hub_token, resolve_settings

ROOT = Path(__file__).resolve().parents[1]
PROXY_DIR = Path(__file__).parent / "hub"
PROXY = PROXY_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
USERS = ("ada", "bob")


def proxy_command() -> str:
    """configurable-http-proxy from tests/hub (`make hub-proxy`); installed here if npm is but it is not."""
    if not PROXY.exists():
        if shutil.which("npm") is None:
            reason = "no node/npm: JupyterHub's configurable-http-proxy cannot run (apt-get install nodejs npm)"
            if os.environ.get("TUTOR_REQUIRE_BROWSER"):
                pytest.fail(reason)
            pytest.skip(reason)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PROXY_DIR, check=True,
                       timeout=180)
    return str(PROXY)


def wait_for(check, what: str, timeout: float, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


HUB_CONFIG = """
import sys
load_subconfig({docs!r})
c.JupyterHub.bind_url = {public!r}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{tmp}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/hub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{tmp}/home/{{username}}"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--ServerApp.allow_root=True"]
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.interrupt_timeout = 3  # a quicker teardown: SIGINT, then SIGTERM after 3 s
c.Spawner.term_timeout = 3
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}  # POST .../server answers at once: both spawn together
c.Spawner.environment["TUTOR_ENDPOINT"] = "{public}/services/tutor"
c.Spawner.environment["JUPYTER_CONFIG_DIR"] = "{tmp}/jupyter-config"
tutor = c.JupyterHub.services[0]
assert tutor["name"] == "tutor" and tutor["command"][:3] == ["tutor", "serve", "--hub"]
tutor["url"] = "http://127.0.0.1:{service_port}"
tutor["command"] = [sys.executable, "-m", "tutor.cli", "serve", "--hub", "--model", {model!r}, "--dtype", "float32",
                    "--scheduler", "batched", "--slots", "3", "--max-per-user", "1"]
tutor["environment"] = {{"TUTOR_DEVICE": "cpu"}}
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory, tiny_dirs):
    """(public URL, {user: API token}, Hub log): the Hub up, its tutor service answering."""
    proxy = proxy_command()
    tmp = tmp_path_factory.mktemp("hub")
    for user in USERS:
        (tmp / "home" / user).mkdir(parents=True)
    (tmp / "jupyter-config").mkdir()
    # The student's server loads the tutor extension (as the installed etc/jupyter/ file would), and only
    # the extensions a test needs: a quicker start.
    (tmp / "jupyter-config" / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {"tutor.server": True, "jupyterlab": False,
                                               "notebook_shim": False, "jupyter_lsp": False}}}))
    public, hub_port = f"http://127.0.0.1:{free_port()}", free_port()
    (tmp / "jupyterhub_config.py").write_text(HUB_CONFIG.format(
        docs=str(ROOT / "docs" / "jupyterhub_config.py"), public=public, hub_port=hub_port, proxy=proxy,
        proxy_api_port=free_port(), tmp=tmp, users=set(USERS), service_port=free_port(), model=str(tiny_dirs["2b"])))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUTOR_", "JUPYTERHUB_", "JUPYTER_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))  # kept by the Hub
    log = tmp / "hub.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(tmp / "jupyterhub_config.py")],
                                   cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # The Hub's API answers (directly) while the Hub still waits for its service to start (importing
        # torch): the users' servers start meanwhile, the two slowest starts side by side.
        api = f"http://127.0.0.1:{hub_port}/hub/api"
        wait_for(lambda: httpx.get(f"{api}/", timeout=5).status_code == 200, "the Hub's API", 60, log)
        tokens = {}
        for user in USERS:  # as a student's script would: the dummy authenticator takes any password
            r = httpx.post(f"{api}/users/{user}/tokens", timeout=30,
                           json={"auth": {"username": user, "password": "any"}, "note": "test"})
            assert r.status_code == 201, r.text
            tokens[user] = r.json()["token"]
            r = httpx.post(f"{api}/users/{user}/server", headers=auth(tokens[user]), timeout=60)
            assert r.status_code in (201, 202), r.text
        wait_for(lambda: httpx.get(f"{public}/services/tutor/health", timeout=5).status_code == 200,
                 "the tutor service behind the Hub's proxy", 90, log)
        yield public, tokens, log
    finally:
        # The Hub stops its proxy, the service and the spawned servers (each in a session of its own).
        process.terminate()
        try:
            process.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever of its group is left (the proxy, the service)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def completion_body(user_field: str = "same-for-everyone", **kw) -> dict:
    # One OpenAI `user` field for all: only the Hub can tell the students apart.
    return {"prompt": "def add(a, b):", "max_tokens": 4, "temperature": 0, "user": user_field, **kw}


@pytest.mark.slow
def test_requests_without_a_hub_token_are_refused(hub):
    public, _, _ = hub
    service = f"{public}/services/tutor/v1"
    r = httpx.post(f"{service}/completions", json=completion_body(), timeout=30)
    assert r.status_code == 401 and "JupyterHub token" in r.json()["error"]["message"]
    r = httpx.post(f"{service}/completions", json=completion_body(), headers=auth("not-a-hub-token"), timeout=30)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{service}/models", headers={"Authorization": "token bogus"}, timeout=30).status_code == 401
    assert httpx.get(f"{public}/services/tutor/metrics", timeout=30).status_code == 401
    assert httpx.get(f"{public}/services/tutor/health", timeout=30).status_code == 200  # for the operator's probe


@pytest.mark.slow
def test_a_token_without_access_to_the_service_is_refused(hub):
    public, tokens, _ = hub
    r = httpx.post(f"{public}/hub/api/users/ada/tokens", headers=auth(tokens["ada"]), timeout=30,
                   json={"scopes": ["read:users:name!user"], "note": "no service access"})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{public}/services/tutor/v1/completions", json=completion_body(), timeout=30,
                   headers=auth(r.json()["token"]))
    assert r.status_code == 403 and "access:services!service=tutor" in r.json()["error"]["message"]


@pytest.mark.slow
def test_each_student_is_a_requester_of_their_own(hub, tiny_dirs):
    """--max-per-user 1: Ada's second request at once is refused, Bob's goes on (same address, same `user`)."""
    public, tokens, _ = hub
    url = f"{public}/services/tutor/v1/completions"
    long = completion_body(prompt="x", max_tokens=2000, stop_token_ids=[], stream=True)
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", url, headers=auth(tokens["ada"]), json=long) as running:
            assert running.status_code == 200
            lines = running.iter_lines()
            assert next(lines).startswith("data:")  # Ada's first is generating
            second = httpx.post(url, headers=auth(tokens["ada"]), json=completion_body(), timeout=60)
            assert second.status_code == 429, second.text
            assert second.json()["error"]["type"] == "rate_limit_exceeded"
            other = httpx.post(url, headers={"Authorization": f"token {tokens['bob']}"}, json=completion_body(),
                               timeout=60)
            assert other.status_code == 200, other.text
            assert other.json()["choices"][0]["finish_reason"] in ("length", "stop")


@pytest.mark.slow
def test_the_remote_backend_sends_the_servers_hub_token(hub, monkeypatch):
    """As in a student's server: TUTOR_ENDPOINT names the Hub's service, JUPYTERHUB_API_TOKEN is the key."""
    public, tokens, _ = hub
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", tokens["bob"])
    monkeypatch.delenv("JUPYTERHUB_BASE_URL", raising=False)
    backend = RemoteBackend(f"{public}/services/tutor")
    try:
        result = backend.complete("def add(a, b):", GenerationOptions(max_tokens=3, temperature=0)).run()
        assert result.completion_tokens >= 1
    finally:
        backend.close()
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "revoked-or-wrong")
    backend = RemoteBackend(f"{public}/services/tutor")
    try:
        with pytest.raises(BackendError) as refused:
            backend.complete("def add(a, b):", GenerationOptions(max_tokens=3, temperature=0)).run()
        assert refused.value.status == 401
    finally:
        backend.close()


@pytest.mark.slow
def test_each_students_server_completes_through_the_service(hub):
    """The Hub spawned both users' servers; their tutor extension finds the service with no setup."""
    public, tokens, log = hub  # the fixture asked the Hub to spawn them

    def ready(user: str) -> bool:
        model = httpx.get(f"{public}/hub/api/users/{user}", headers=auth(tokens[user]), timeout=10).json()
        return bool((model.get("servers") or {}).get("", {}).get("ready"))

    for user in USERS:
        wait_for(lambda user=user: ready(user), f"{user}'s single-user server", 90, log)
    body = {"id": "r1", "path": "nb.ipynb", "cellId": "c1", "before": "def add(a, b):\n    return ", "after": "",
            "cellsBefore": ["import math"], "cellsAfter": [], "language": "python"}
    for user in USERS:
        server = f"{public}/user/{user}"
        with httpx.stream("POST", f"{server}/tutor/complete", json=body, headers=auth(tokens[user]),
                          timeout=60) as r:
            assert r.status_code == 200
            got = [json.loads(line) for line in r.iter_lines() if line.strip()]
        assert got[-1]["done"] is True and "error" not in got[-1], got[-1]
        status = httpx.get(f"{server}/tutor/status", headers=auth(tokens[user]), timeout=30).json()
        assert f"{public}/services/tutor/v1" in status["backend"] and status["completed"] == 1, status
    # Another user's token does not open Ada's server.
    r = httpx.post(f"{public}/user/ada/tutor/complete", json=body, headers=auth(tokens["bob"]), timeout=30)
    assert r.status_code == 403


def test_the_hub_token_goes_to_the_hubs_services_only():
    env = {"JUPYTERHUB_API_TOKEN": "t0k", "JUPYTERHUB_BASE_URL": "/"}
    assert hub_token("http://127.0.0.1:8000/services/tutor", env) == "t0k"
    assert hub_token("https://hub.example/services/tutor/v1", env) == "t0k"
    assert hub_token("http://vllm.example:8000/v1", env) is None  # never to another server
    assert hub_token("https://hub.example/jhub/services/tutor", {**env, "JUPYTERHUB_BASE_URL": "/jhub/"}) == "t0k"
    assert hub_token("https://hub.example/services/tutor", {**env, "JUPYTERHUB_BASE_URL": "/jhub/"}) is None
    settings = resolve_settings(environ={**env, "TUTOR_ENDPOINT": "http://127.0.0.1:8000/services/tutor/"})
    assert settings.token == "t0k" and "JUPYTERHUB_API_TOKEN" in settings.sources["token"]
    settings = resolve_settings(environ={**env, "TUTOR_ENDPOINT": "http://127.0.0.1:8000/services/tutor",
                                         "TUTOR_TOKEN": "own"})
    assert settings.token == "own"  # a token set on purpose wins


def test_hub_mode_says_what_is_missing(monkeypatch):
    with pytest.raises(TutorError, match="managed service"):
        service_from_env({})
    service = service_from_env({"JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
                                "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10101",
                                "JUPYTERHUB_SERVICE_PREFIX": "/services/tutor/"})
    assert (service.host, service.port, service.prefix) == ("127.0.0.1", 10101, "/services/tutor/")
    monkeypatch.setitem(sys.modules, "jupyterhub.services.auth", None)  # as if jupyterhub were not installed
    with pytest.raises(TutorError, match="pip install jupyterhub"):
        HubGate()


def test_hub_and_a_class_token_exclude_each_other(monkeypatch, capsys):
    from tutor.cli import main

    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")
    assert main(["serve", "--hub", "--token", "class-token", "--model", "unused"]) == 2
    assert "--hub and --token exclude each other" in capsys.readouterr().err
