"""A student's Jupyter server and kernel that use a class's shared model server (TUTOR_ENDPOINT) never
import torch: it costs seconds and ~200 MiB per single-user server, thirty times over in a class.

Each check runs in a fresh interpreter (this one has torch already: conftest makes the tiny models),
against the real `tutor serve` of the ``server`` fixture; the same script with a local model must
import torch, so the check cannot pass by looking in the wrong place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_apps import free_port

# Loads the server extension the way `jupyter server` does (ServerApp.initialize, jpserver_extensions),
# asks it for a completion, loads the kernel extension into an IPython shell and fails a cell there,
# then makes the backend the settings ask for and streams a reply from it.
SCRIPT = r"""
import json, sys, threading
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell
from jupyter_server.serverapp import ServerApp

port, root, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
app = ServerApp()
app.initialize(argv=["--ServerApp.jpserver_extensions={'tutor.server': True}", f"--port={port}",
                     "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}", "--no-browser", "--allow-root"])
completer = app.web_app.settings["tutor_completer"]
after_server_load = "torch" in sys.modules

from tutor.server import CompletionRequest

request = CompletionRequest(request_id="r1", path="nb.ipynb", cell_id="c1", before="def add(a, b):\n    return ",
                            after="", max_tokens=3)
if mode == "remote":  # (a local model would start the embedded worker: another process, seconds)
    list(completer.complete(request, threading.Event()))
backend = completer.backend().describe()
completed = completer.counters.completed
completer.close()

shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "tutor")
failed = shell.run_cell("1 / 0")  # the error hook builds its panel
shell.run_line_magic("tutor", "status")

from tutor.backends import GenerationOptions, make_backend

chat = make_backend(in_process=mode == "local")
reply = chat.chat([{"role": "user", "content": "What is a list?"}], GenerationOptions(max_tokens=3)).run()
print(json.dumps({"after_server_load": after_server_load, "torch": "torch" in sys.modules, "backend": backend,
                  "completed": completed, "cell_failed": failed.error_in_exec is not None,
                  "reply_tokens": reply.completion_tokens}))
"""


def run_script(tmp_path: Path, env: dict[str, str], mode: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TUTOR_", "JUPYTER_", "JPY_"))}
    root = tmp_path / "root"
    root.mkdir()
    env = {**clean, "TUTOR_DEVICE": "cpu", "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "IPYTHONDIR": str(tmp_path / "ipython"), **env}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(free_port()), str(root), mode], env=env,
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_with_a_shared_endpoint_neither_extension_imports_torch(tmp_path, server, tiny_dirs):
    endpoint, token = server
    got = run_script(tmp_path, {"TUTOR_ENDPOINT": endpoint, "TUTOR_TOKEN": token,
                                # a local folder for its tokenizer (token-id prompts), as a teacher may set
                                "TUTOR_COMPLETION_MODEL": str(tiny_dirs["2b"])}, "remote")
    assert got["backend"].startswith("OpenAI-compatible server at " + endpoint)
    assert got["completed"] == 1 and got["cell_failed"] and got["reply_tokens"] > 0  # it all ran
    assert not got["after_server_load"], "loading tutor.server imported torch"
    assert not got["torch"], "a completion, the kernel extension or the remote backend imported torch"


def test_with_a_local_model_the_engine_is_imported(tmp_path, tiny_dirs):
    """The same script with the models in this process: torch is there, so the check above can fail."""
    got = run_script(tmp_path, {"TUTOR_COMPLETION_MODEL": str(tiny_dirs["2b"]),
                                "TUTOR_CHAT_MODEL": str(tiny_dirs["7b-it"])}, "local")
    assert got["reply_tokens"] > 0
    assert got["torch"]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the libraries a process has mapped (Linux)")
def test_the_check_sees_torch_where_it_is_loaded():
    """tests/test_server_ext.py looks for libtorch in a real server's memory map; the look itself works."""
    import torch  # noqa: F401 - this process has it (conftest)

    assert "libtorch" in Path("/proc/self/maps").read_text()
