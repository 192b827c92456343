"""Issue 15 in a real browser: a blocked Start with its reason, one real run watched through
its phases (start-up, training, completed), then its evaluation and the runs table with
datasets. Screenshots go to test-artifacts/ (ux-*.png) for a human to look at."""

import os
import re
import shutil
import time

import pytest
from playwright.sync_api import expect

from core.progress_model import EVALUATING, enter_phase
from core.runs import RunDir
from tests.test_browser import (  # noqa: F401  (fixtures)
    app_root,
    app_url,
    assert_no_exception,
    go,
    page,
    shot,
)

pytestmark = pytest.mark.browser


def test_a_run_watched_through_its_phases(page, app_root):  # noqa: F811
    page.get_by_role("heading", name="Transfer Learning Studio").wait_for()
    go(page, "Train")
    start = page.get_by_role("button", name="Start training")
    expect(start).to_be_enabled()
    page.get_by_text("Fine-tune: train a Keras head").click()  # epochs to watch (auto is the default)
    page.get_by_text("Advanced settings").click()
    page.get_by_label("Batch size").fill("-5")
    page.get_by_label("Batch size").press("Enter")
    expect(page.get_by_text("Cannot start: Batch size: must be between 1 and 1024, got -5")).to_be_visible()
    expect(start).to_be_disabled()
    shot(page, "ux-01-blocked-start")

    page.get_by_label("Batch size").fill("16")
    page.get_by_label("Image size (px)").fill("96")
    page.get_by_label("Epochs", exact=True).fill("2")
    page.get_by_label("Epochs", exact=True).press("Enter")
    expect(start).to_be_enabled()
    start.click()
    page.get_by_text(re.compile(r"^Start-up: .* left in all")).wait_for(timeout=30_000)
    shot(page, "ux-02-train-startup")
    page.get_by_text(re.compile(r"^Training: epoch \d/2")).wait_for(timeout=120_000)
    shot(page, "ux-03-train-training")
    # The evaluation phase can pass between two polls of the page; test_page_train shows it.
    page.get_by_text(re.compile(r"^Completed: \d epochs in")).wait_for(timeout=150_000)
    assert_no_exception(page)
    shot(page, "ux-05-train-completed")

    page.get_by_role("button", name="See its evaluation").click()
    page.get_by_role("heading", name="Checkpoints", exact=True).wait_for()
    expect(page.get_by_role("tab", name="Evaluation", selected=True)).to_be_visible()
    expect(page.get_by_text("Confusion matrix")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("combobox", name="Run")).to_have_value(re.compile(r"-horse-or-human-mobilenet"))
    assert_no_exception(page)
    page.get_by_role("heading", name="Checkpoints", exact=True).scroll_into_view_if_needed()
    shot(page, "ux-06-checkpoints-table-and-evaluation")

    # A long evaluation leaves the user on the Evaluation tab, now showing the new split.
    page.get_by_role("button", name="Evaluate on train").click()
    page.get_by_text(re.compile(r"^Evaluated ")).wait_for(timeout=120_000)
    expect(page.get_by_role("tab", name="Evaluation", selected=True)).to_be_visible()
    expect(page.get_by_role("radio", name="train")).to_be_checked()
    assert_no_exception(page)
    shot(page, "ux-07-evaluated-on-train")

    # The evaluation phase passes between two polls of a run this small, so the page is shown
    # a copy of the real run whose status says it is evaluating (its process: this one, alive).
    [real] = [path for path in (app_root / "runs").iterdir() if path.is_dir()]
    evaluating = RunDir(shutil.copytree(real, real.with_name(real.name + "-evaluating")))
    timeline = [segment for segment in evaluating.status()["timeline"] if segment["phase"] != EVALUATING]
    evaluating.write_status(
        state="running", pid=os.getpid(), ended_at=None, phase="evaluating",
        timeline=enter_phase(timeline, EVALUATING, time.time()),
    )  # fmt: skip
    go(page, "Train")
    page.get_by_text(re.compile(r"^Evaluation: ")).wait_for(timeout=30_000)
    assert_no_exception(page)
    shot(page, "ux-04-train-evaluation")
    evaluating.write_status(state="completed", ended_at=time.time())
