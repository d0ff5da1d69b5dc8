"""A student in a real JupyterLab, in a real browser (Debian's chromium driven by Playwright).

Screenshots go to test-output/browser/ (or $TUTOR_TEST_OUTPUT/browser/).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
OUTPUT = Path(os.environ.get("TUTOR_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-output")) / "browser"

if CHROMIUM is None:
    if os.environ.get("TUTOR_REQUIRE_BROWSER"):
        raise RuntimeError("chromium is not installed (apt-get install chromium), and TUTOR_REQUIRE_BROWSER is set")
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

from jupyter_apps import start_jupyter  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402 - after the skip above
from waiting import wait_until  # noqa: E402


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_dirs):
    root = tmp_path_factory.mktemp("lab")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext tutor"),
                nbformat.v4.new_code_cell("scores = [90, 85]\nprint(scores[5])")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "failing.ipynb")
    nb.cells = [nbformat.v4.new_code_cell("%load_ext tutor\n%tutor")]
    nbformat.write(nb, root / "chat.ipynb")
    # The kernel's model worker inherits its environment: the test-only TUTOR_TEST_LOAD_DELAY makes it sleep 0.3 s
    # after each progress event it reports, so that the tiny model's load (milliseconds) can be watched.
    nb.cells = [nbformat.v4.new_code_cell("import os\nos.environ['TUTOR_TEST_LOAD_DELAY'] = '0.3'\n%load_ext tutor"),
                nbformat.v4.new_code_cell("%%explain\nsquares = [n * n for n in range(5)]")]
    nbformat.write(nb, root / "loading.ipynb")
    config = tmp_path_factory.mktemp("jupyter-config")
    # No announcements, no news: the page should not wait on the network.
    (config / "labconfig").mkdir()
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env = {**os.environ, "TUTOR_CHAT_MODEL": str(tiny_dirs["7b-it"]), "TUTOR_DEVICE": "cpu",
           "JUPYTER_CONFIG_DIR": str(config)}
    env.pop("TUTOR_ENDPOINT", None)
    app = start_jupyter("jupyterlab", root, env, "--LabApp.news_url=None")
    yield app.url, app.token
    app.stop()


@contextmanager
def browser_page(shot: str) -> Iterator[Any]:
    """A chromium page; test-output/browser/<shot>-failure.png if the test fails."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / f"{shot}-failure.png").unlink(missing_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            yield page
        except Exception:
            page.screenshot(path=str(OUTPUT / f"{shot}-failure.png"))
            raise
        finally:
            browser.close()


def open_and_run_all(page, url: str, token: str, notebook: str, cells: int) -> None:
    # A workspace of its own: JupyterLab would otherwise reopen the other tests' notebooks beside it.
    workspace = notebook.removesuffix(".ipynb")
    page.goto(f"{url}/lab/workspaces/{workspace}/tree/{notebook}?token={token}", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    # The kernel must be connected and idle (the status bar says so) before cells are run.
    expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=120_000)
    for _ in range(3):  # a run that races the kernel's start is not executed: try again
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        try:
            expect(page.locator(".jp-InputPrompt", has_text=f"[{cells}]:")).to_have_count(1, timeout=30_000)
            break
        except AssertionError:
            continue


def test_a_failing_cell_gets_the_tutor_panel_and_its_buttons_work(lab):
    url, token = lab
    with browser_page("error-panel") as page:
        page.goto(f"{url}/lab/tree/failing.ipynb?token={token}", timeout=120_000)
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
        # The kernel must be connected and idle (the status bar says so) before cells are run.
        expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=120_000)
        # A run that races the kernel's start is dropped: nothing runs and nothing is queued ("[*]").
        # Poll until the second cell has run, running all cells again only when nothing is pending.
        second_ran = page.locator(".jp-InputPrompt", has_text="[2]:")

        def ran_or_run_again() -> bool:
            if second_ran.count():
                return True
            if not page.locator(".jp-InputPrompt", has_text="[*]").count():
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_text("Run All Cells", exact=True).click()
            return False

        wait_until(ran_or_run_again, 120, "the notebook's cells to run", every=3)

        panel = page.locator(".tutor-panel")
        expect(panel).to_be_visible(timeout=120_000)
        expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
               ).to_contain_text("IndexError", timeout=30_000)  # the usual traceback is still there
        expect(panel.locator(".tutor-title")).to_contain_text("outside the list", ignore_case=True)
        page.screenshot(path=str(OUTPUT / "error-panel.png"))

        before = len(panel.locator(".tutor-body").inner_text())
        panel.locator("button[data-id='more']").click()
        expect(panel).to_have_attribute("data-state", "working", timeout=30_000)
        expect(panel).to_have_attribute("data-state", "done", timeout=120_000)
        assert len(panel.locator(".tutor-body").inner_text()) > before  # the reply streamed in

        panel.locator("button[data-id='fix']").click()
        expect(panel.locator(".tutor-status")).to_contain_text("No fix is shown", timeout=120_000)
        page.screenshot(path=str(OUTPUT / "after-fix.png"))
        assert page.locator(".jp-Cell").nth(1).locator(".cm-content").inner_text().startswith("scores = [90, 85]")

        # "Insert below" on a checked fix: the panel's event, answered by the tutor's lab extension.
        handled = panel.evaluate("""el => {
            const event = new CustomEvent("tutor:insert-cell",
                {detail: {code: "print(scores[1])"}, bubbles: true, cancelable: true});
            el.dispatchEvent(event);
            return event.defaultPrevented;
        }""")
        assert handled
        expect(page.locator(".jp-Cell")).to_have_count(3)
        assert page.locator(".jp-Cell").nth(2).locator(".cm-content").inner_text() == "print(scores[1])"
        assert page.locator(".jp-Cell").nth(1).locator(".cm-content").inner_text().startswith("scores = [90, 85]")


def test_the_chat_sends_on_enter_and_shift_enter_starts_a_new_line(lab):
    url, token = lab
    with browser_page("chat") as page:
        open_and_run_all(page, url, token, "chat.ipynb", 1)
        chat = page.locator(".tutor-chat")
        expect(chat).to_be_visible(timeout=120_000)
        box = chat.locator(".tutor-chat-input")
        box.click()
        box.press_sequentially("What is a list?")
        box.press("Shift+Enter")  # a new line, not a message, and not JupyterLab's "run the cell"
        box.press_sequentially("And a tuple?")
        expect(box).to_have_value("What is a list?\nAnd a tuple?")
        assert chat.locator(".tutor-chat-turn").count() == 0
        box.press("Enter")
        user = chat.locator(".tutor-chat-turn[data-role='user']")
        expect(user).to_have_count(1, timeout=30_000)
        expect(user).to_contain_text("What is a list?")
        expect(user).to_contain_text("And a tuple?")
        expect(box).to_have_value("")
        expect(chat).to_have_attribute("data-state", "idle", timeout=120_000)
        expect(page.locator(".jp-Cell")).to_have_count(1)  # no key reached the notebook
        page.screenshot(path=str(OUTPUT / "chat.png"))


def test_while_the_model_loads_the_panel_draws_a_bar(lab):
    url, token = lab
    with browser_page("loading") as page:
        open_and_run_all(page, url, token, "loading.ipynb", 2)
        panel = page.locator(".tutor-panel")
        bar = panel.locator("progress.tutor-progress")
        expect(bar).to_be_visible(timeout=120_000)
        wait_until(lambda: 0 < float(bar.get_attribute("value") or 0) < 1, 60, "the bar to stand between the ends")
        expect(panel.locator(".tutor-status")).to_contain_text("reading weights")
        page.screenshot(path=str(OUTPUT / "loading-panel.png"))
        expect(panel).to_have_attribute("data-state", "done", timeout=120_000)
        expect(bar).to_be_hidden()
        # The text bar, for frontends without widgets, is in the cell's output too.
        expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
               ).to_contain_text("Loading codegemma-7b-it", timeout=30_000)
        page.screenshot(path=str(OUTPUT / "loaded-panel.png"))
