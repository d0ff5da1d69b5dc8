from tutor.backends import LocalBackend, RemoteBackend, WorkerBackend, make_backend
from tutor.settings import resolve_settings


def test_precedence_flags_then_environment_then_jupyter_config():
    env = {"TUTOR_CHAT_MODEL": "env-chat", "TUTOR_COMPLETION_MODEL": "env-completion", "TUTOR_ENDPOINT": ""}
    config = {"chat_model": "config-chat", "completion_model": "config-completion", "device": "cuda:1"}
    s = resolve_settings({"chat_model": "flag-chat", "completion_model": None}, config, env)
    assert (s.chat_model, s.completion_model, s.device, s.endpoint) == ("flag-chat", "env-completion", "cuda:1", None)
    assert s.sources == {"chat_model": "command line", "completion_model": "environment TUTOR_COMPLETION_MODEL",
                         "device": "Jupyter config"}
    assert not s.remote


def test_describe_hides_the_token():
    s = resolve_settings(environ={"TUTOR_ENDPOINT": "http://school:8000/", "TUTOR_TOKEN": "secret"})
    assert s.endpoint == "http://school:8000" and s.remote
    text = "\n".join(s.describe())
    assert "secret" not in text and "token: (set)" in text and "environment TUTOR_ENDPOINT" in text


def test_an_endpoint_means_nothing_loads_here(tmp_path):
    remote = make_backend(resolve_settings(environ={"TUTOR_ENDPOINT": "http://127.0.0.1:9", "TUTOR_CHAT_MODEL": "x"}))
    assert isinstance(remote, RemoteBackend)
    worker = make_backend(resolve_settings(environ={"TUTOR_CHAT_MODEL": str(tmp_path)}))
    assert isinstance(worker, WorkerBackend) and not worker.worker.alive()
    local = make_backend(resolve_settings(environ={}), in_process=True)
    assert isinstance(local, LocalBackend)
