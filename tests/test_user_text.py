"""Names from a user's files and folders are shown as text, never as Markdown."""

import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

import core.config
from core.text import code, md
from tests.helpers import make_color_dataset

PROJ_ROOT = Path(__file__).resolve().parents[1]
EVIL = "[Session expired - log in](https:evil.example) `x` **b** :red[c] $y$"


def test_md_escapes_what_markdown_would_act_on_and_nothing_else():
    assert md(EVIL + "\n# heading") == (
        "\\[Session expired - log in\\](https\\:evil.example) "
        "\\`x\\` \\*\\*b\\*\\* \\:red\\[c\\] \\$y\\$ # heading"
    )
    assert md("# 1. <b>_x_</b> www.a.b") == "\\# 1. \\<b\\>\\_x\\_\\</b\\> www\\.a.b"
    assert md("1. first") == "1\\. first"
    ordinary = "epochs: must be between 1 and 1000, got 5000 (mobilenet_v2_0.35, lr 1e-3)."
    assert md(ordinary) == ordinary  # messages and names read the same in the page source


def test_code_spans_survive_backticks_in_the_text():
    span = code("a `b` ``c``")
    assert span.startswith("``` ") and span.endswith(" ```")


def test_a_hostile_folder_and_class_name_render_as_text(tmp_path, monkeypatch, trained_run):
    """The Data page's dataset caption and the Predict page's classes, with a link-shaped name."""
    data = tmp_path / "data"
    make_color_dataset(data / EVIL.replace("/", "-"), per_class=3)
    runs = tmp_path / "runs"
    run = Path(shutil.copytree(trained_run, runs / trained_run.name))
    (run / "labels.json").write_text('["[win](https:evil.example)", "red"]')
    monkeypatch.setattr(core.config, "DATA_ROOT", data)
    monkeypatch.setattr(core.config, "RUNS_DIR", runs)
    at = AppTest.from_file(str(PROJ_ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/data.py").run()
    at.radio(key="source").set_value("A folder in the data folder").run()
    assert not at.exception
    caption = [c.value for c in at.caption if c.value.startswith("The Train page uses this dataset")][0]
    assert caption.count("``") == 2 and "`` " in caption  # its backticks stay inside one code span
    at.switch_page("pages/predict.py").run()
    classes = [c.value for c in at.caption if c.value.startswith("Classes:")][0]
    assert "\\[win\\](https\\:evil.example)" in classes
