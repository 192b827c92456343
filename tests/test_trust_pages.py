"""AppTest tests of the trust features in the dashboard: the Data page's Health tab, the
confusion-matrix drill-down and calibration on the Checkpoints page, and the Predict page's
table of many photos with its CSV download."""

import io
import json
import zipfile

import core.config
import core.embeddings
import core.launch
from tests.helpers import make_color_dataset, tree_digest, write_image
from tests.page_helpers import open_page


def test_health_tab_shows_findings_and_records_decisions_outside_the_dataset(dirs, monkeypatch):
    from core.exclusions import load_exclusions

    dataset = make_color_dataset(dirs.data / "colors", per_class=6)
    red, blue = str(dataset / "red" / "0.png"), str(dataset / "blue" / "3.png")
    lines = [
        json.dumps({"kind": "duplicate", "files": [red, str(dataset / "red" / "1.png")], "label": "red",
                    "suggested": None, "score": 0.99, "splits": ["all", "all"], "exact": False}),
        json.dumps({"kind": "label_issue", "files": [blue], "label": "blue", "suggested": "red",
                    "score": 0.1, "splits": ["all"]}),
        json.dumps({"summary": True, "images": 12, "findings": {"leakage": 0, "duplicate": 1,
                    "label_issue": 1, "outlier": 0}, "backbone": "mobilenet_v2", "image_size": 224}),
    ]  # fmt: skip
    calls = []
    monkeypatch.setattr(core.launch, "run_health", lambda *args, **kw: calls.append(args) or lines)
    before = tree_digest(dataset)
    at = open_page("pages/data.py", {"pending_dataset": "colors"})
    next(b for b in at.button if b.label == "Check data health").click().run()
    assert not at.exception and not at.error
    assert calls and calls[0][0] == dataset
    labels = [t.label for t in at.tabs]
    assert "Duplicates (1)" in labels and "Label issues (1)" in labels and "Leakage (0)" in labels
    assert "red/0.png" in [c for image in at.image for c in image.captions]
    at.checkbox(key="exclude_duplicate_0_0").check().run()
    at.checkbox(key="move_label_issue_0_0").check().run()
    assert not at.exception
    exclusions = load_exclusions(dataset)
    assert exclusions.excluded == ["red/0.png"] and exclusions.relabelled == {"blue/3.png": "red"}
    assert tree_digest(dataset) == before  # the dataset folder is never touched
    at.checkbox(key="exclude_duplicate_0_0").uncheck().run()
    assert load_exclusions(dataset).excluded == []
    assert "1 moved" in "\n".join(c.value for c in at.caption)


def test_checkpoints_show_calibration_and_the_photos_behind_a_cell(with_run):
    evaluation = json.loads((with_run / "evaluation.json").read_text())["validation"]
    at = open_page("pages/checkpoints.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Calibration error (ECE)"] == f"{evaluation['calibration']['ece_before']:.3f}"
    assert metrics["ECE, calibrated"] == f"{evaluation['calibration']['ece_after']:.3f}"
    reliability = [c for c in at.get("plotly_chart") if c.proto.id.endswith("reliability_chart")]
    assert reliability
    matrix, names = evaluation["confusion_matrix"], evaluation["class_names"]
    in_cell, true, predicted = max((n, t, p) for t, row in enumerate(matrix) for p, n in enumerate(row))
    assert in_cell > 0
    at.selectbox(key="cell_true").set_value(names[true]).run()
    at.selectbox(key="cell_predicted").set_value(names[predicted]).run()
    assert not at.exception
    captions = [c.value for c in at.caption if f": {names[predicted]} " in c.value]
    assert len(captions) == in_cell and all(c.endswith("%") for c in captions)
    summary = f"{in_cell} photo(s) of **{names[true]}** predicted **{names[predicted]}**"
    assert summary in "\n".join(c.value for c in at.caption)


def test_predict_many_photos_is_a_table_with_a_csv_download(with_run, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(14):
            color = (220, 40, 40) if i % 2 else (40, 40, 220)
            archive.writestr(f"photos/{i:02d}.png", write_image(tmp_path / f"{i}.png", color).read_bytes())
        archive.writestr("photos/notes.txt", "not a photo")
    at = open_page("pages/predict.py")
    at.file_uploader(key="photos_zip").set_value([("photos.zip", buffer.getvalue(), "application/zip")]).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["file"]) == [f"photos/{i:02d}.png" for i in range(14)]
    assert set(table["label"]) <= {"blue", "red"} and table["probability"].between(0, 1).all()
    assert set(table["unknown"]) <= {True, False}
    (download,) = at.get("download_button")
    assert download.proto.label == "Download as CSV"
    assert not [m for m in at.markdown if m.value.startswith("### ")]  # a table, not 14 cards


def test_results_csv_has_one_row_per_photo():
    from core.predict import results_csv, table_row

    rows = [
        table_row({"file": "a.png", "label": "red", "probabilities": {"red": 0.9, "blue": 0.1},
                   "confidence": 0.95, "unknown": False, "openset_score": 0.1}),
        table_row({"file": "b.png", "error": "not an image Pillow can read"}),
    ]  # fmt: skip
    lines = results_csv(rows).splitlines()
    assert lines[0] == "file,label,probability,confidence,unknown,openset_score,error"
    assert lines[1] == "a.png,red,0.9,0.95,False,0.1," and lines[2].startswith("b.png,,,,,,not an image")


def test_predictions_summary_counts_each_answer_most_common_first():
    from core.predict import predictions_summary

    rows = [{"label": "red", "unknown": False}] * 3 + [{"label": "blue", "unknown": True}]
    rows += [{"label": "blue", "unknown": False}, {"label": None, "unknown": None}]
    assert predictions_summary(rows) == (
        "6 photos: 3 red, 1 none of these, 1 blue, 1 unreadable (1 far from every training photo)"
    )
    assert predictions_summary(rows[:3]) == "3 photos: 3 red"
