"""A chapter in JupyterLab, as a reader runs it: opened in headless Chromium, every cell run from the menu.

JupyterLab starts on localhost with a token on a copy of ``book/`` (so that its autosave never
touches the committed chapters), with its own runtime folder. The chapters are MyST Markdown; the
venv's ``overrides.json`` (``tools/lab_overrides.json``) makes jupytext's notebook view their default. The copy of chapter 2 has its ``parameters`` cell set to the smoke profile on MNIST, and
its models go to an empty cache (beside ``make``'s decoded data), so its classifier trains in
seconds and shows a tqdm bar. After Run All
Cells the test waits for the kernel to be idle, then fails on an error output, on a figure not
drawn, or on a progress bar not rendered as a widget; the saved notebook is read back too. The
server is then shut down, and no process started from its runtime folder may be left.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jupytext
import pytest
from browser_env import ROOT, SCREENSHOTS

CHAPTER = "02_classifiers.md"
PARAMETERS = 'profile = "smoke"\ndataset = "mnist"\nseed = 7\ndevice = "cpu"'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leftovers(marker: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


@pytest.fixture()
def lab(tmp_path):
    """JupyterLab serving a copy of book/ on a free localhost port: (url, folder, server process)."""
    folder = tmp_path / "book"
    shutil.copytree(ROOT / "book", folder)
    nb = jupytext.read(folder / CHAPTER)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = PARAMETERS
    jupytext.write(nb, folder / CHAPTER, fmt="md:myst")
    runtime = tmp_path / "runtime"
    cache = tmp_path / "cache"  # models train here, so a bar shows on every run; decoded data is make's
    cache.mkdir()
    make_data = Path(os.environ.get("DDSA_CACHE", ROOT / ".cache")) / "data"
    if make_data.is_dir():
        (cache / "data").symlink_to(make_data)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "DDSA_RESULTS": str(tmp_path / "results"),
           "DDSA_CACHE": str(cache)}
    env.pop("DDSA_PROGRESS", None)  # the reader's default: widgets
    shutil.copytree(ROOT / "results", tmp_path / "results")  # every record a reader's clone holds: chapter 2 reads paper and reduced
    token, port = secrets.token_hex(16), _free_port()
    cmd = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}", pytrace=False)
    yield url, token, folder
    server.terminate()
    server.wait(timeout=60)
    log.close()
    deadline = time.time() + 30
    while _leftovers(str(runtime)) and time.time() < deadline:
        time.sleep(0.5)
    assert not _leftovers(str(runtime)), f"processes left behind: {_leftovers(str(runtime))}"


def _kernel_ready(url: str, token: str) -> bool:
    """The chapter's kernel is connected to the page and idle (the server's view, not the page's)."""
    kernels = json.load(urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=5))
    return any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels)


def test_a_chapter_runs_in_jupyterlab(context, lab):
    url, token, folder = lab
    page = context.new_page()
    page.set_default_timeout(120_000)
    start = time.perf_counter()
    page.goto(f"{url}/lab/tree/{CHAPTER}?token={token}")
    deadline = time.time() + 120
    while not _kernel_ready(url, token):
        assert time.time() < deadline, "the chapter's kernel did not start"
        time.sleep(0.5)
    toolbar_idle = page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']")
    toolbar_idle.wait_for()  # the chapter's kernel has started
    page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook is the active widget, so Run All applies to it
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function("() => Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))"
                           ".some(p => p.textContent !== '[ ]:')", timeout=30_000)  # Run All has started
    page.wait_for_function(  # every code cell has run: no "[*]" prompt, the last one numbered
        """() => {
          const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')).map(p => p.textContent);
          return prompts.length > 0 && !prompts.some(p => p.includes('*')) && /\\[\\d+\\]/.test(prompts[prompts.length - 1]);
        }""", timeout=300_000)
    toolbar_idle.wait_for()
    elapsed = time.perf_counter() - start
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "jupyterlab-02_classifiers.png"))

    # JupyterLab draws a traceback as stderr; tqdm's bars are widgets here, so stderr holds no bar
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                          has_text="Traceback")
    assert errors.count() == 0, errors.first.inner_text()[:2000]
    assert page.locator(".jp-RenderedImage img").count() > 0, "no figure was drawn"
    bars = page.locator(".jp-OutputArea-output .jupyter-widgets.widget-hbox", has_text="100%")
    assert bars.count() > 0, "no tqdm bar was rendered as a widget"

    # Saved from Lab, the chapter stays MyST Markdown with the same cells: a reader's save is a prose diff
    before, written = jupytext.read(folder / CHAPTER), (folder / CHAPTER).stat().st_mtime_ns
    page.keyboard.press("Control+s")
    page.wait_for_timeout(2000)
    assert (folder / CHAPTER).stat().st_mtime_ns != written, "Lab did not save the chapter"
    saved = jupytext.read(folder / CHAPTER)
    assert (folder / CHAPTER).read_text().startswith("---\njupytext:")
    assert [(c.cell_type, c.source) for c in saved.cells] == [(c.cell_type, c.source) for c in before.cells]
    print(f"chapter 2 ran in JupyterLab in {elapsed:.1f} s")
