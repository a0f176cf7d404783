"""Browsing for real: a sweep logged to `mlflow server`, opened in headless Chromium.

Chromium is Debian's (`apt-get install chromium`, done by .ci/run), driven by Playwright through
`executable_path`: Playwright never downloads a browser here. Screenshots are saved in the test's
tmp_path and copied to outputs/ui-screenshots/ (git-ignored).
"""

import os
import re
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import SMALL

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "outputs" / "ui-screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: headless, no sandbox (root), and no traffic but loopback: no sync, updates or field trials
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000  # for each wait on the page: the React app renders in a few seconds


def _unavailable(reason: str):
    """Skip on a developer's machine without the browser; fail in CI, which installs it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the UI test: .ci/run installs Chromium)")
    pytest.skip(reason)


@pytest.fixture
def browser_page(tmp_path):
    """A page of headless Debian Chromium with a fresh profile, closed after the test."""
    if not os.path.isfile(CHROMIUM):
        _unavailable("Chromium not installed: apt-get install -y chromium")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("Playwright not installed: pip install -e '.[dev]'")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1440, "height": 900},
            timeout=TIMEOUT_MS,
        )
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.set_default_navigation_timeout(TIMEOUT_MS)
            yield page
        finally:
            context.close()


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENSHOTS / name)
    print(f"screenshot: {path} (copied to {SCREENSHOTS / name})")
    return path


def _close_assistant(page):
    """The MLflow Assistant side panel opens by default and narrows the page: close it if shown."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count() == 1 and close.is_visible():
        close.click()


def test_sweep_runs_and_a_metric_chart_in_the_mlflow_ui(browser_page, tmp_path, run_mlpx, mlflow_server):
    from playwright.sync_api import expect

    page = browser_page
    completed = run_mlpx(
        ["-m", "tracking=server", "optimizer.lr=0.05,0.1", *SMALL],
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": mlflow_server},
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr
    client = MlflowClient(mlflow_server)
    experiment_id = client.get_experiment_by_name("mlpx").experiment_id
    runs = client.search_runs([experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("mlpx.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2
    assert parent.info.run_name.startswith("sweep ")

    def run_link(run):  # each run name in the table links to its run page
        return page.locator(f'a[href$="/runs/{run.info.run_id}"]')

    # The experiment's runs table ("Model training" view): the parent run alone, its children
    # nested under it until its row is expanded.
    page.goto(
        f"{mlflow_server}/#/experiments/{experiment_id}/runs?workflowType=machine_learning",
        wait_until="domcontentloaded",
    )
    expect(run_link(parent)).to_have_text(parent.info.run_name)
    expect(page.get_by_text("matching runs")).to_have_text("3 matching runs")  # all runs loaded
    _close_assistant(page)
    for child in children:
        expect(run_link(child)).to_have_count(0)
    parent_cell = page.get_by_role("gridcell").filter(has=run_link(parent))
    parent_cell.get_by_role("button").click()  # the [+] in front of the parent's name
    for child in children:
        expect(run_link(child)).to_be_visible()
        expect(run_link(child)).to_have_text(child.info.run_name)
    learning_rates = sorted(re.search(r"optimizer\.lr=([\d.]+)", c.info.run_name)[1] for c in children)
    assert learning_rates == ["0.05", "0.1"]  # the children are the sweep's jobs
    _screenshot(page, tmp_path, "runs-table.png")

    # A child's run page, "Model metrics" tab: the val_acc chart draws one point per epoch.
    child = children[0]
    run_link(child).click()
    expect(page).to_have_url(re.compile(f"/runs/{child.info.run_id}"))
    page.get_by_role("tab", name="Model metrics").click()
    page.get_by_placeholder("Search metric charts").fill("val_acc")
    card = page.get_by_test_id("experiment-view-compare-runs-card").filter(
        has=page.locator('h4[title="val_acc"]')
    )
    expect(card).to_have_count(1)
    expect(card.locator("svg.main-svg").first).to_be_visible()
    expect(card.locator("path.js-line").first).to_have_attribute("d", re.compile(r"^M[\d.]+,[\d.]+L"))
    expect(card.locator("path.point")).to_have_count(2)  # trainer.epochs=2 in SMALL
    _screenshot(page, tmp_path, "run-metric-chart.png")
