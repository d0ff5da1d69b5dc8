"""Ghost text in a real JupyterLab, in a real browser (Debian's chromium driven by Playwright),
from the tiny model through the server extension and the built labextension.

Needs the labextension built (`make labextension`, which `make test` runs). Screenshots go to
test-output/browser/ (or $TUTOR_TEST_OUTPUT/browser/).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import nbformat
import pytest
from waiting import wait_until

from tests.test_browser import CHROMIUM, FLAGS, OUTPUT  # skips the module when chromium is missing

BUILT = Path(__file__).resolve().parent.parent / "tutor" / "labextension"
if not (BUILT / "package.json").is_file():
    if os.environ.get("TUTOR_REQUIRE_BROWSER"):
        raise RuntimeError("the labextension is not built (make labextension), and TUTOR_REQUIRE_BROWSER is set")
    pytest.skip("the labextension is not built: run `make labextension`", allow_module_level=True)

from jupyter_apps import start_jupyter  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_dirs):
    root = tmp_path_factory.mktemp("inline-lab")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import math"), nbformat.v4.new_code_cell(""),
                nbformat.v4.new_code_cell("print(v142)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "typing.ipynb")
    config = tmp_path_factory.mktemp("jupyter-config")
    (config / "labconfig").mkdir()
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    # The built extension, found the way an installed one is: <data dir>/labextensions/<name>.
    data = tmp_path_factory.mktemp("jupyter-data")
    (data / "labextensions").mkdir()
    (data / "labextensions" / "tutor-inline-completion").symlink_to(BUILT, target_is_directory=True)
    settings = tmp_path_factory.mktemp("lab-settings")
    # JupyterLab's inline-completer settings are left at their defaults: our provider is on by default.
    ours = settings / "tutor-inline-completion"
    ours.mkdir()
    (ours / "plugin.jupyterlab-settings").write_text(json.dumps({"debounceMs": 100}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
    env.update({"TUTOR_COMPLETION_MODEL": str(tiny_dirs["2b"]), "TUTOR_DEVICE": "cpu",
                "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_PATH": str(data),
                "JUPYTERLAB_SETTINGS_DIR": str(settings)})
    app = start_jupyter("jupyterlab", root, env, "--LabApp.news_url=None",
                        "--ServerApp.jpserver_extensions={'tutor.server': True}")
    yield app.url, app.token, root
    app.stop()


def printable(text: str) -> str:
    """Random weights write control characters, which the editor and the ghost text draw differently."""
    return "".join(ch for ch in text if ch.isprintable())


def tutor_status(url: str, token: str) -> dict:
    return httpx.get(f"{url}/tutor/status", headers={"Authorization": f"token {token}"}, timeout=10).json()


def test_ghost_text_appears_and_tab_accepts_it(lab):
    url, token, lab_root = lab
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "inline-failure.png").unlink(missing_ok=True)
    typed = "v142 = 142"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(f"{url}/lab/tree/typing.ipynb?token={token}", timeout=120_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            cell = page.locator(".jp-NotebookPanel .jp-Cell").nth(1)
            cell.locator(".cm-content").click()
            page.keyboard.type(typed, delay=30)
            ghost = page.locator(".jp-GhostText")
            expect(ghost).to_be_visible(timeout=120_000)
            # Let the stream finish (the server says so), then until the ghost text stops changing:
            # the browser may still be drawing the last chunk.
            wait_until(lambda: (s := tutor_status(url, token))["active"] == 0 and s["completed"] >= 1, 60,
                       "the completion to finish on the server")
            seen = [ghost.inner_text()]

            def settled() -> str | None:
                seen.append(ghost.inner_text())
                return seen[-1] if seen[-1] == seen[-2] and seen[-1].strip() else None

            shown = wait_until(settled, 30, "the ghost text to settle", every=0.3)
            page.screenshot(path=str(OUTPUT / "inline-ghost-text.png"))
            page.keyboard.press("Tab")
            expect(ghost).to_have_count(0, timeout=10_000)
            source = cell.locator(".cm-content").inner_text()
            page.screenshot(path=str(OUTPUT / "inline-accepted.png"))
            assert source.startswith(typed) and len(source) > len(typed)
            page.keyboard.press("Control+s")  # the saved cell holds exactly what was accepted
            def saved_cell() -> str | None:
                source = nbformat.read(lab_root / "typing.ipynb", as_version=4).cells[1].source
                return source if source.startswith(typed) else None

            saved = wait_until(saved_cell, 30, "the notebook to be saved with the typed cell", every=0.3)
            assert printable(saved) == printable(typed + shown)
        except Exception:
            page.screenshot(path=str(OUTPUT / "inline-failure.png"))
            raise
        finally:
            browser.close()
