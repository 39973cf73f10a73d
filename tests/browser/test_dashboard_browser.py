"""The real dashboard in headless Chromium: every page renders its heading and charts with no
exception, no request leaves the machine, the drill-down shows thumbnails, the item view opens
from its URL, and "Open results" lands on the page of the run's task; one Chromium serves
the module. With MIRADA_SCREENSHOTS=1, full-height screenshots of every view go to
test-artifacts/screenshots/<page>.png (git-ignored); they are off by default, since they cost
about 18 s of CPU and assert nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mirada.cli.demo import streamlit_command

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-artifacts" / "screenshots"
SCREENSHOTS = os.environ.get("MIRADA_SCREENSHOTS") == "1"
# Vega draws big charts (the heatmap) on a canvas, the others as SVG.
CHART = '[data-testid="stVegaLiteChart"] svg, [data-testid="stVegaLiteChart"] canvas'
RESULTS_TABS = {
    "Similarity heatmap": "results-heatmap",
    "Embeddings": "results-embeddings",
    "Zero-shot": "results-zeroshot",
    "Drill-down": "results-drilldown",
    "Hardest images": "results-hardest",
}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# page name -> (url path, heading, needs a chart)
PAGES: dict[str, tuple[str, str, bool]] = {
    "datasets": ("", "Datasets", True),
    "runs": ("runs", "Runs", False),
    "results": ("results", "Results", True),
    "compare": ("compare", "Compare", True),
    "captions": ("captions", "Captions", True),
    "hardware": ("hardware", "Hardware", True),
}

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # MIRADA_BROWSER_TEST_HOME points the test at an existing home, e.g. one filled by
    # `mirada demo --no-dashboard`: that is how docs/results-page.png is made from real runs
    # (with MIRADA_SCREENSHOTS=1: it is screenshots/results.png).
    existing = os.environ.get("MIRADA_BROWSER_TEST_HOME")
    if existing:
        return Path(existing)
    from dashboard_seed import copy_home, shared_seed

    from mirada.db import dispose_engines

    saved = {k: os.environ.get(k) for k in ("MIRADA_HOME", "MIRADA_DATABASE_URL")}
    # a copy of the session's shared seed: opening the Results page stores projections
    home = tmp_path_factory.mktemp("browser") / "home"
    copy_home(shared_seed(tmp_path_factory).home, home)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    dispose_engines()
    return home


@pytest.fixture(scope="module")
def server(seeded_home: Path) -> Iterator[str]:
    with _streamlit(seeded_home) as url:
        yield url


@contextmanager
def _streamlit(home: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "MIRADA_HOME": str(home)}
    env.pop("MIRADA_DATABASE_URL", None)
    # the dashboard exactly as `mirada dashboard` starts it (minimal toolbar: no "Deploy" button
    # in the screenshots or the README image)
    proc = subprocess.Popen(
        streamlit_command(ROOT / "dashboard/mirada/dashboard/app.py", "127.0.0.1", port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"streamlit did not start:\n{out[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _screenshot(page: Page, name: str) -> None:
    """Full-height screenshot: Streamlit scrolls inside stMain, so grow the viewport first."""
    if not SCREENSHOTS:
        return
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 12_000)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 900})


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module (a launch costs seconds of CPU); each test opens
    its own page in a fresh context."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium"
        print(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def _browser_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def _open(page: Page, url: str, heading: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
    _settled(page)


def _settled(page: Page) -> None:
    """Wait until the script has finished its run (the status widget's absence is no signal
    with the minimal toolbar): only then has everything it draws, an exception included,
    reached the page."""
    page.wait_for_function(
        "document.querySelector('[data-testid=\"stApp\"]')"
        "?.getAttribute('data-test-script-state') === 'notRunning'",
        timeout=60_000,
    )


def _uploaded(page: Page, files: int) -> None:
    """Wait until the uploader lists `files` files and none is still uploading: an Import
    clicked while a file is in flight submits the form without it (the page then asks for a
    file and never says "Imported"; seen under load)."""
    page.wait_for_function(
        f"document.querySelectorAll('[data-testid=\"stFileChipName\"]').length >= {files}"
        " && !document.querySelector('[data-testid=\"stFileChipIconSpinner\"]')",
        timeout=60_000,
    )


def _choose(page: Page, selectbox: str, option: str) -> None:
    """Pick `option` in a selectbox. The Runs page redraws its live queue every few seconds,
    which can close an open drop-down before the click lands (seen under load): open it again
    until the option shows."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(6):
        page.locator(selectbox).click()
        try:
            page.get_by_role("option", name=option).first.click(timeout=5_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    pytest.fail(f"option {option!r} never showed in {selectbox}")


def _off_machine(urls: list[str]) -> list[str]:
    """The requests that left 127.0.0.1 (data: and blob: URLs never do)."""
    out = []
    for url in urls:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme in ("data", "blob"):
            continue
        if parsed.hostname not in LOCAL_HOSTS:
            out.append(url)
    return out


def test_every_page_renders(browser: Browser, server: str) -> None:
    with _browser_page(browser) as page:
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        for name, (path, heading, needs_chart) in PAGES.items():
            _open(page, f"{server}/{path}", heading)
            if needs_chart:
                page.locator(CHART).first.wait_for(timeout=60_000)
            else:
                page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=60_000)
            page.wait_for_timeout(500)  # let the last charts finish drawing
            assert page.locator('[data-testid="stException"]').count() == 0, name
            assert page.locator('[data-testid="stAppDeployButton"]').count() == 0, name
            _screenshot(page, name)
            if name == "results":
                for tab, shot in RESULTS_TABS.items():
                    page.get_by_role("tab", name=tab).click()
                    panel = page.locator('[role="tabpanel"]:visible')
                    panel.first.wait_for(timeout=30_000)
                    if tab == "Drill-down":
                        # the grid draws on a canvas; its accessible table holds the cells
                        cell = panel.locator('[data-testid="stDataFrame"] td').filter(
                            has_text="data:image/jpeg;base64,"
                        )
                        cell.first.wait_for(state="attached", timeout=60_000)
                    elif tab == "Hardest images":
                        panel.locator("img").nth(5).wait_for(timeout=60_000)
                    else:
                        panel.locator(CHART).first.wait_for(timeout=60_000)
                    _settled(page)
                    page.wait_for_timeout(500)
                    assert page.locator('[data-testid="stException"]').count() == 0, tab
                    assert (
                        f"tab={urllib.parse.quote_plus(tab)}" in page.url or tab == "Per category"
                    )
                    _screenshot(page, shot)
        assert requests and not _off_machine(requests), _off_machine(requests)


def test_hardware_page_draws_its_charts(browser: Browser, server: str) -> None:
    """The Hardware page in Chromium: the overview grid, the advice (a contended run's
    withheld, with the reason), and the latency, throughput and speed-against-accuracy charts
    drawn as SVG, with no exception (MIRADA_SCREENSHOTS=1: screenshots/hardware-full.png, the
    source of docs/hardware-page-seed.png; docs/hardware-page.png is the demo home's)."""
    with _browser_page(browser) as page:
        _open(page, f"{server}/hardware", "Hardware")
        page.get_by_role("heading", name="What should I use?").wait_for(timeout=60_000)
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=60_000)
        charts = page.locator('[data-testid="stVegaLiteChart"] svg')
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=\"stVegaLiteChart\"] svg').length >= 3",
            timeout=60_000,
        )
        page.wait_for_timeout(500)  # let the last marks finish drawing
        assert charts.count() >= 3
        assert page.locator('[data-testid="stException"]').count() == 0
        text = page.locator('[data-testid="stMain"]').inner_text()
        assert "None" not in text.split()  # Markdown and alerts; grids draw on a canvas
        if "contention" in text:  # the seed has a contended run; a demo home may not
            assert "re-run on an idle machine" in text
        _screenshot(page, "hardware-full")


def _finished_run(home: Path, task: str) -> tuple[int, int]:
    """(id of the newest finished run of `task` in `home`, an item id of its dataset)."""
    from mirada.db import dispose_engines
    from mirada.queries.common import finished_runs, item_frame

    saved = {k: os.environ.get(k) for k in ("MIRADA_HOME", "MIRADA_DATABASE_URL")}
    os.environ["MIRADA_HOME"] = str(home)
    os.environ.pop("MIRADA_DATABASE_URL", None)
    dispose_engines()
    try:
        run = finished_runs(task=task).iloc[0]
        return int(run["id"]), int(item_frame(int(run["dataset_id"]))["item_id"].iloc[-1])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        dispose_engines()


def test_item_view_and_links_that_go_where_they_say(
    browser: Browser, server: str, seeded_home: Path
) -> None:
    match_run, item = _finished_run(seeded_home, "match")
    caption_run, caption_item = _finished_run(seeded_home, "caption")
    with _browser_page(browser) as page:
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        # the item view opens straight from its URL, the image large
        _open(page, f"{server}/results?run={match_run}&item={item}", "Results")
        view = page.locator(".st-key-item_view")
        view.get_by_role("heading", name="Image:").wait_for(timeout=60_000)
        view.locator("img").first.wait_for(timeout=60_000)
        image = view.locator("img").first.element_handle()
        page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=image, timeout=30_000)
        view.get_by_text("Reference captions").wait_for()
        assert "correct caption at rank" in view.inner_text()
        _screenshot(page, "item-view")
        _open(page, f"{server}/captions?run={caption_run}&item={caption_item}", "Captions")
        view = page.locator(".st-key-item_view")
        view.get_by_text("Generated caption").wait_for(timeout=60_000)
        _screenshot(page, "item-view-caption")
        # "Open captions" on a caption run lands on /captions?run=<that id>
        _open(page, f"{server}/runs", "Runs")
        _choose(page, ".st-key-runs_action_run", f"#{caption_run} ")
        link = page.get_by_role("link", name="Open captions")
        link.wait_for(timeout=30_000)
        link.click()
        page.get_by_role("heading", name="Captions").first.wait_for(timeout=60_000)
        page.wait_for_url(lambda u: u.endswith(f"/captions?run={caption_run}"), timeout=30_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        _screenshot(page, "open-caption-run")
        assert not _off_machine(requests), _off_machine(requests)


def test_a_new_user_gets_hints_on_every_page_then_uploads_a_dataset(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """On an empty database every page says what to do first; then the Datasets page's
    uploader goes through the real importer, report included (one server for both: a
    Streamlit start costs seconds of CPU)."""
    import zipfile

    from mirada.demo.synthetic import write_demo_dataset

    src = write_demo_dataset(tmp_path / "shapes", split="demo", n=6)
    bad_csv = tmp_path / "bad" / "captions.csv"
    bad_csv.parent.mkdir()
    bad_csv.write_text(
        (src / "captions.csv").read_text() + "missing.png,a caption for no image,circle\n"
    )
    good_zip = tmp_path / "shapes.zip"
    with zipfile.ZipFile(good_zip, "w") as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f"shapes/{f.name}")
    images = sorted(str(p) for p in src.glob("*.png"))

    home = tmp_path_factory.mktemp("new-user") / "home"
    with _streamlit(home) as server, _browser_page(browser) as page:
        for name, (path, heading, _) in PAGES.items():
            _open(page, f"{server}/{path}", heading)
            page.wait_for_timeout(300)
            assert page.locator('[data-testid="stException"]').count() == 0, name
            hint = page.locator('[data-testid="stAlert"], [data-testid="stAlertContainer"]')
            assert hint.count() > 0, f"{name}: no first-step hint on an empty database"
            _screenshot(page, f"empty-{name}")

        _open(page, f"{server}/", "Datasets")
        uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
        uploader.set_input_files([str(bad_csv), *images])
        _uploaded(page, 1 + len(images))
        page.get_by_role("button", name="Import").click()
        page.get_by_text("Nothing was imported").wait_for(timeout=60_000)
        _settled(page)
        # the row-by-row report is a data grid (drawn on a canvas, so its text is not in the
        # DOM); the importer's messages themselves are checked in tests/test_import_*.py
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)
        _screenshot(page, "upload-rejected")

        _open(page, f"{server}/", "Datasets")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
            str(good_zip)
        )
        _uploaded(page, 1)
        page.get_by_role("button", name="Import").click()
        page.get_by_text("Imported").first.wait_for(timeout=60_000)
        _settled(page)  # the preview below is drawn after the message
        assert page.locator('[data-testid="stException"]').count() == 0
        _screenshot(page, "upload-imported")


# --- a fresh demo home reads cleanly ---------------------------------------------------------

# A cell or label that reads like a missing value leaked through a formatter.
_MISSING_WORDS = r"\b(None|nan|NaN|null|undefined)\b"
# Headings, metric labels, tab names and column headers whose text is cut with an ellipsis
# (CSS overflow): the text is wider than its box.
_TRUNCATED_JS = """
() => {
  const sel = ['[data-testid="stMetricLabel"] p', '[data-testid="stMetricLabel"] div',
               '[data-testid="stHeading"] h1', '[data-testid="stHeading"] h2',
               '[data-testid="stHeading"] h3', 'button[role="tab"] p',
               '[data-testid="stWidgetLabel"] p', '[data-testid="stCaptionContainer"]'];
  const out = [];
  for (const el of document.querySelectorAll(sel.join(','))) {
    const style = getComputedStyle(el);
    const clipped = style.textOverflow === 'ellipsis' || style.overflow === 'hidden'
      || style.overflowX === 'hidden';
    if (clipped && el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0) {
      out.push(el.innerText.trim());
    }
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh `mirada demo --no-dashboard` home: the numbers a new user sees first."""
    home = tmp_path_factory.mktemp("demo-tour") / "home"
    env = {**os.environ, "MIRADA_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("MIRADA_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "mirada", "demo", "--no-dashboard"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return home


def _reads_cleanly(page: Page, where: str) -> None:
    """No exception, no None/nan in text or grid cells, no title cut off, on what is drawn."""
    import re

    assert page.locator('[data-testid="stException"]').count() == 0, where
    main = page.locator('[data-testid="stMain"]')
    text = main.inner_text()
    cells = main.locator(
        '[data-testid="stDataFrame"] td, [data-testid="stDataFrame"] th, '
        '[data-testid="stTable"] td, [data-testid="stTable"] th'
    ).all_inner_texts()
    leaks = [m.group(0) for t in (text, *cells) for m in re.finditer(_MISSING_WORDS, t)]
    assert not leaks, f"{where}: missing values shown as {sorted(set(leaks))}"
    cut = page.evaluate(_TRUNCATED_JS)
    assert not cut, f"{where}: truncated {cut}"


def test_a_fresh_demo_home_reads_cleanly_on_every_page_and_tab(
    browser: Browser, demo_home: Path
) -> None:
    """The tour of a fresh demo home: every page, every Results tab, the item view; nothing
    reads None or nan, no title is cut off (MIRADA_SCREENSHOTS=1: screenshots/demo-*.png)."""
    with _streamlit(demo_home) as server, _browser_page(browser) as page:
        for name, (path, heading, _) in PAGES.items():
            _open(page, f"{server}/{path}", heading)
            page.wait_for_timeout(800)  # charts and grids finish drawing
            _reads_cleanly(page, name)
            _screenshot(page, f"demo-{name}")
            if name != "results":
                continue
            tabs = page.get_by_role("tab").all_inner_texts()
            assert "Probe" in tabs, tabs
            for tab in tabs:
                page.get_by_role("tab", name=tab).click()
                page.locator('[role="tabpanel"]:visible').first.wait_for(timeout=30_000)
                _settled(page)
                page.wait_for_timeout(800)
                _reads_cleanly(page, f"results/{tab}")
                slug = tab.lower().replace(" ", "-").replace("/", "-")
                _screenshot(page, f"demo-results-{slug}")
