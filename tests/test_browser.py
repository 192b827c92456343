"""The dashboard in a real browser: `streamlit run` driven by Debian's Chromium via Playwright.

One walk through the app as a person would: every page, the sample's augmented grid, a
tiny real training run (MobileNetV2 x0.35 with ImageNet weights, 96 px, in the default auto
mode: its leaderboard and learning curve) watched live, the run and its evaluation on
Checkpoints, and photos classified on Predict, with Grad-CAM. Screenshots go to
test-artifacts/ for a human to look at.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.dashboard_helpers import streamlit_server

PROJ_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = PROJ_ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SAMPLE = PROJ_ROOT / "data" / "sample" / "horse-or-human"

pytestmark = pytest.mark.browser
IMAGES_SHOWN = """(count) => {
    const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
    return imgs.length === count && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""
DISTINCT_COPIES = """() => {
    const srcs = [...document.querySelectorAll('[data-testid="stImage"] img')].map(i => i.src);
    return srcs.length === 16 && new Set(srcs.slice(0, 8)).size === 8;
}"""


@pytest.fixture(scope="module")
def app_root(tmp_path_factory) -> Path:
    """The dashboard's own folder: data/, runs/, cache/ and its log."""
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def app_url(app_root, keras_home):
    """A `streamlit run` server on a free port, with its own data and runs folders."""
    root = app_root
    env = {
        **os.environ,
        "KERAS_HOME": str(keras_home),
        "TLS_DATA_ROOT": str(root / "data"),
        "TLS_RUNS_DIR": str(root / "runs"),
        "TLS_CACHE_DIR": str(root / "cache"),
    }
    try:
        with streamlit_server("streamlit_app.py", root, env) as (url, _):
            yield url
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "streamlit.log").write_text((root / "streamlit.log").read_text())


def launch_chromium(playwright):
    """Debian's Chromium, headless, with the flags this sandbox needs; a clear failure without it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


@pytest.fixture
def page(app_url):
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(30_000)
        page.goto(app_url)
        try:
            yield page
        finally:
            shot(page, "last")  # where the walk ended, for a failure's post-mortem
            browser.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def go(page, title: str) -> None:
    """Follow the sidebar link (keeps the session, unlike typing a URL) and wait for the title."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).click()
    page.get_by_role("heading", name=title, exact=True).wait_for()


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def test_the_whole_app_in_chromium(page):
    # Home
    page.get_by_role("heading", name="Transfer Learning Studio").wait_for()
    page.get_by_text("Runs are kept in").wait_for()
    page.get_by_text(re.compile("GPU found|No GPU found")).wait_for()
    card_heights = [
        page.get_by_role("link", name=step).evaluate(
            "link => link.closest('[data-testid=\"stVerticalBlock\"]').getBoundingClientRect().height"
        )
        for step in ("1. Data", "2. Train", "3. Predict")
    ]
    assert max(card_heights) - min(card_heights) < 2, card_heights  # the step cards line up
    shot(page, "01-home")

    # Data: the bundled sample, its report, and the augmented grids
    go(page, "Data")
    page.get_by_text("The bundled sample").click()
    page.get_by_text("Valid images").wait_for()
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    shot(page, "02-data-report")
    page.get_by_role("tab", name="Augmentation").click()
    page.get_by_role("button", name="Use the reference recipe").click()
    # 16 images, and the 8 copies of one image all different: augmented, not just shown
    page.wait_for_function(DISTINCT_COPIES, timeout=60_000)
    page.get_by_text("A random augmented batch").scroll_into_view_if_needed()
    assert_no_exception(page)
    shot(page, "03-data-augmentation")

    # Train: a tiny real run in the default auto mode, watched live until it completes
    go(page, "Train")
    page.get_by_text(re.compile("^Auto: the frozen mobilenet_v2_0.35 embeds")).wait_for()
    page.get_by_text("Advanced settings").click()  # the knobs are folded below Start
    page.get_by_label("Image size (px)").fill("96")
    page.get_by_label("Batch size").fill("16")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"^Run \d{8}-\d{6}-horse-or-human-mobilenet_v2_0\.35-96")).wait_for()
    try:  # the live progress bar, if the run is slow enough to catch it
        page.get_by_text(re.compile(r"^Trying candidates: ")).wait_for(timeout=45_000)
        shot(page, "04-train-running")
    except Exception:
        pass
    page.get_by_text(re.compile("^Completed: .+ chosen and fitted")).wait_for(timeout=150_000)
    page.get_by_text(re.compile("^Chosen: ")).wait_for()
    charts = page.locator('[data-testid="stPlotlyChart"]')
    expect(charts.first.locator(".barlayer .point").first).to_be_visible()  # the leaderboard's bars
    expect(charts.nth(1).locator(".scatterlayer .trace .point")).to_have_count(4)  # 25/50/75/100%
    accuracy = charts.nth(2)
    expect(accuracy.locator(".scatterlayer .trace")).to_have_count(2)  # train and validation
    assert_no_exception(page)
    shot(page, "05-train-completed")

    # Checkpoints: the run, its checkpoints, downloads, and the evaluation made on completion
    go(page, "Checkpoints")
    run_choice = page.get_by_role("combobox", name="Run")
    expect(run_choice).to_have_value(re.compile(r"^\d{8}-\d{6}-horse-or-human-mobilenet_v2_0\.35-96$"))
    page.get_by_role("button", name="Download best").wait_for()
    expect(page.get_by_text("best.keras").first).to_be_visible()
    page.get_by_text(re.compile("^Chosen: ")).wait_for()  # the auto run's leaderboard
    expect(page.get_by_text(re.compile("^Fine-tuning the backbone: "))).to_be_visible()
    assert_no_exception(page)
    shot(page, "06-checkpoints")
    page.get_by_role("tab", name="Evaluation").click()
    expect(page.locator(".heatmaplayer .hm")).to_have_count(1)  # the confusion matrix
    expect(page.get_by_text("Confusion matrix")).to_be_visible()
    expect(page.get_by_text("ROC curve")).to_be_visible()  # two classes: ROC and PR curves
    page.get_by_role("button", name="Evaluate on train").wait_for()
    assert_no_exception(page)
    shot(page, "07-checkpoints-evaluation")
    # The training left the gallery's Grad-CAM for later: asking draws it in the background
    page.get_by_text("Show where the model looked (Grad-CAM)").click()
    overlays = page.get_by_text(re.compile("^Grad-CAM: where it looked"))
    expect(overlays.first).to_be_visible(timeout=90_000)  # drawn, then shown by the page's poll
    assert_no_exception(page)
    overlays.first.scroll_into_view_if_needed()
    shot(page, "07b-checkpoints-gradcam")

    # Predict: two sample photos, each with a label and a probability chart, then Grad-CAM
    go(page, "Predict")
    photos = [
        SAMPLE / "horses" / "horse02-0.jpg",
        SAMPLE / "humans" / sorted(os.listdir(SAMPLE / "humans"))[0],
    ]
    photos_region = page.get_by_role("region", name="Photos", exact=True)  # beside it: the zip's uploader
    photos_input = photos_region.get_by_test_id("stFileUploaderDropzoneInput")
    photos_input.set_input_files([str(p) for p in photos])
    labels = page.locator("h3", has_text=re.compile("^(horses|humans)"))
    expect(labels).to_have_count(2, timeout=60_000)  # expect() retries while the page renders
    expect(page.locator('[data-testid="stPlotlyChart"] .barlayer')).to_have_count(2)
    page.wait_for_function(IMAGES_SHOWN, arg=2, timeout=30_000)  # each photo itself is displayed
    assert_no_exception(page)
    shot(page, "08-predict")
    page.get_by_text("Show where the model looked (Grad-CAM)").click()
    page.wait_for_function(IMAGES_SHOWN, arg=4, timeout=60_000)  # each photo and its overlay
    expect(page.get_by_text(re.compile("^Grad-CAM: where it saw"))).to_have_count(2)
    # the rerun has replaced the two-column cards: one chart per photo, none left from before
    expect(page.locator('[data-testid="stPlotlyChart"] .barlayer')).to_have_count(2, timeout=30_000)
    assert_no_exception(page)
    shot(page, "09-predict-gradcam")

    # Data: the strategy advisor measures the sample for real, and hands its recipe to Train
    go(page, "Data")
    page.get_by_role("tab", name="Which strategy?").click()
    page.get_by_role("button", name="Recommend a strategy").click()
    page.get_by_text(re.compile("^Recommended: ")).wait_for(timeout=180_000)  # two networks measured
    expect(page.get_by_text("Similarity to ImageNet")).to_be_visible()
    assert_no_exception(page)
    shot(page, "10-data-strategy")
    page.get_by_role("button", name="Use this on the Train page").click()
    page.get_by_role("link", name="The Train page opens with it").click()
    page.get_by_role("heading", name="Train", exact=True).wait_for()
    expect(page.get_by_role("combobox", name="Preset")).to_have_value(re.compile("^advisor: "))
    page.get_by_text(re.compile("^Auto: the frozen mobilenet_v2 embeds")).wait_for()  # its one click: auto
    assert_no_exception(page)
    shot(page, "11-train-advised")


def test_a_deep_link_as_a_fresh_servers_first_request_opens_the_page_inside_the_app(tmp_path, keras_home):
    """A shared link to /checkpoints, the first request a (re)started server gets, opens that
    page with the app's navigation and wide layout, not as a bare legacy page."""
    env = {**os.environ, "KERAS_HOME": str(keras_home), "TLS_RUNS_DIR": str(tmp_path / "runs"),
           "TLS_DATA_ROOT": str(tmp_path / "data"), "TLS_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    with streamlit_server("streamlit_app.py", tmp_path, env) as (url, _), sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/checkpoints")
        page.get_by_role("heading", name="Checkpoints", exact=True).wait_for(timeout=60_000)
        nav = page.locator('[data-testid="stSidebarNav"] a')
        expect(nav).to_have_count(5)  # Home, Data, Train, Checkpoints, Predict; not the pages/ files
        expect(nav.filter(has_text="streamlit app")).to_have_count(0)
        assert page.url == f"{url}/checkpoints"
        assert page.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"] > 1000  # wide
        shot(page, "deep-link")
        browser.close()
