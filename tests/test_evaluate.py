"""Evaluating a run: metrics that line up with the right files, galleries, evaluation.json, the CLI.

Most tests use a hand-made run whose model is a fixed linear rule on the mean colour
(p(red) = sigmoid(0.05 * (R - B))), so every prediction, and every mistake, is known in
advance. The images are scanned in folder order and predicted in batches of 5; a shuffled
or misaligned evaluation would name the wrong files.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.evaluate import (
    GALLERY_SIZE,
    THUMBNAIL_PX,
    EvaluationError,
    draw_overlays,
    evaluate_run,
    load_evaluation,
    main,
)
from core.predict import RunNotReadyError
from core.runs import RunDir, write_json_atomic
from core.tf_setup import keras
from tests.helpers import run_cli, write_image

RED, BLUE, GREEN = (220, 40, 40), (40, 40, 220), (40, 220, 40)
PURPLE = (140, 40, 120)  # a "blue" image the rule calls red, but not by much (p(red) ~ 0.73)
DEEP_BLUE = (10, 10, 245)  # a "red" image the rule is sure is blue (p(red) ~ 1e-5)


def _linear_colour_model(kernel: np.ndarray, size: int):
    """Raw pixels -> mean colour -> Dense: a model whose every answer is known."""
    units = kernel.shape[1]
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax")(x)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([kernel.astype(np.float32), np.zeros(units, np.float32)])
    return model


def _make_run(run_dir: Path, data: Path, class_names: list[str], model, size: int) -> Path:
    (run_dir / "checkpoints").mkdir(parents=True)
    model.save(run_dir / "checkpoints" / "best.keras")
    write_json_atomic(run_dir / "config.json", {"data": str(data), "image_size": size, "batch_size": 5})
    write_json_atomic(run_dir / "labels.json", class_names)
    return run_dir


def _write_split(root: Path, images: dict[str, list[tuple[str, tuple]]]) -> None:
    for class_name, files in images.items():
        for i, (name, color) in enumerate(files):
            write_image(root / class_name / name, color, size=16, seed=i)


@pytest.fixture
def known_run(tmp_path) -> Path:
    """A pre-split blue/red dataset and a run whose linear rule errs on exactly two files."""
    data = tmp_path / "data"
    _write_split(data / "train", {"blue": [("b0.png", BLUE)], "red": [("r0.png", RED)]})
    _write_split(
        data / "validation",
        {
            "blue": [(f"b{i}.png", BLUE) for i in range(5)] + [("purple.png", PURPLE)],
            "red": [("deep_blue.png", DEEP_BLUE)] + [(f"r{i}.png", RED) for i in range(5)],
        },
    )
    model = _linear_colour_model(np.array([[0.05], [0.0], [-0.05]]), 16)
    return _make_run(tmp_path / "run", data, ["blue", "red"], model, 16)


def test_metrics_match_the_known_predictions(known_run):
    result = evaluate_run(known_run)
    assert result["num_images"] == 12
    assert result["confusion_matrix"] == [[5, 1], [1, 5]]  # rows true, columns predicted
    assert result["accuracy"] == pytest.approx(10 / 12)
    assert result["num_misclassified"] == 2
    assert result["per_class"]["blue"] == pytest.approx(
        {"precision": 5 / 6, "recall": 5 / 6, "f1": 5 / 6, "support": 6}
    )
    assert result["macro"]["f1"] == pytest.approx(5 / 6)
    # p(red) ranks all 5 reds above all 6 blues, and deep_blue below every one of them: 30/36.
    assert result["roc"]["auc"] == pytest.approx(30 / 36)
    assert result["roc"]["fpr"][0] == 0 and result["roc"]["tpr"][-1] == 1
    assert 0 < result["pr"]["average_precision"] <= 1
    assert result["pr"]["positive_rate"] == pytest.approx(0.5)


def test_misclassified_gallery_names_the_right_files_worst_first(known_run):
    result = evaluate_run(known_run)
    wrong = result["misclassified"]
    assert [(Path(e["file"]).name, e["true"], e["predicted"]) for e in wrong] == [
        ("deep_blue.png", "red", "blue"),  # the most confident mistake has the highest loss
        ("purple.png", "blue", "red"),
    ]
    assert wrong[0]["loss"] > 5 > wrong[1]["loss"] > 0.5
    assert wrong[0]["probabilities"]["red"] < 0.01
    assert wrong[1]["probabilities"]["red"] == pytest.approx(0.73, abs=0.05)
    assert sum(wrong[1]["probabilities"].values()) == pytest.approx(1.0)
    top = result["top_losses"]
    assert len(top) == 12  # fewer images than GALLERY_SIZE: all of them, by decreasing loss
    assert [Path(e["file"]).name for e in top[:2]] == ["deep_blue.png", "purple.png"]
    assert [e["loss"] for e in top] == sorted((e["loss"] for e in top), reverse=True)
    for entry in top:  # every file's label is its own folder's: predictions line up with files
        assert entry["true"] == Path(entry["file"]).parent.name


def test_thumbnails_are_small_jpegs_inside_the_run(known_run):
    stale = known_run / "evaluation" / "validation" / "99999.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    result = evaluate_run(known_run)
    assert not stale.exists()  # an earlier evaluation's thumbnails are replaced
    for entry in result["top_losses"]:
        path = known_run / entry["thumbnail"]
        assert entry["thumbnail"].startswith("evaluation/validation/")
        with Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= THUMBNAIL_PX
    deep_blue = known_run / result["misclassified"][0]["thumbnail"]
    assert np.asarray(Image.open(deep_blue)).mean(axis=(0, 1))[2] > 200  # it shows that image


def test_evaluation_json_is_keyed_by_split_and_merged(known_run):
    assert load_evaluation(known_run) == {}
    evaluate_run(known_run, "validation")
    evaluate_run(known_run, "train")
    saved = json.loads(RunDir(known_run).evaluation_file.read_text())
    assert set(saved) == {"validation", "train"}
    assert saved["train"]["num_images"] == 2 and saved["validation"]["num_images"] == 12
    assert load_evaluation(known_run)["validation"]["confusion_matrix"] == [[5, 1], [1, 5]]
    RunDir(known_run).evaluation_file.write_text("{half")
    assert load_evaluation(known_run) == {}


def test_three_classes_have_no_binary_curves(tmp_path):
    data = tmp_path / "data"
    colours = {"blue": BLUE, "green": GREEN, "red": RED}
    _write_split(data / "train", {name: [("0.png", c)] for name, c in colours.items()})
    _write_split(
        data / "validation", {name: [(f"{i}.png", c) for i in range(3)] for name, c in colours.items()}
    )
    kernel = np.array([[0.0, 0.0, 0.05], [0.0, 0.05, 0.0], [0.05, 0.0, 0.0]])  # R->red, G->green, B->blue
    run = _make_run(tmp_path / "run", data, list(colours), _linear_colour_model(kernel, 16), 16)
    result = evaluate_run(run)
    assert result["confusion_matrix"] == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    assert result["accuracy"] == 1.0 and result["misclassified"] == []
    assert result["roc"] is None and result["pr"] is None


def test_unreadable_image_is_skipped_not_fatal(known_run):
    broken = (
        Path(json.loads((known_run / "config.json").read_text())["data"]) / "validation" / "red" / "zz.png"
    )
    broken.write_bytes(b"not a png")
    result = evaluate_run(known_run)
    assert result["num_images"] == 12
    assert [Path(s["path"]).name for s in result["skipped"]] == ["zz.png"]


def test_a_split_the_dataset_lacks_is_refused(known_run):
    with pytest.raises(EvaluationError, match="no test split; available: train, validation"):
        evaluate_run(known_run, "test")


def test_classes_the_model_does_not_know_are_refused(known_run):
    write_json_atomic(known_run / "labels.json", ["cat", "dog"])
    with pytest.raises(EvaluationError, match="classes the model does not know: blue, red"):
        evaluate_run(known_run)


def test_missing_checkpoint_is_named(known_run):
    with pytest.raises(RunNotReadyError, match="no last checkpoint"):
        evaluate_run(known_run, checkpoint="last")


def _copy_of(trained_run: Path, tmp_path: Path) -> Path:
    """The session's trained run is shared: tests that evaluate it again take a copy."""
    return Path(shutil.copytree(trained_run, tmp_path / trained_run.name, symlinks=True))


def test_a_trainer_split_run_is_evaluated_on_its_split_folder(trained_run, tmp_path):
    """The trainer split an unsplit dataset into run/split (symlinks): that is what is evaluated."""
    trained_run = _copy_of(trained_run, tmp_path)
    result = evaluate_run(trained_run)
    validation = sorted((trained_run / "split" / "validation").rglob("*.png"))
    assert result["num_images"] == len(validation) > 0
    assert sum(map(sum, result["confusion_matrix"])) == len(validation)
    assert len(result["top_losses"]) == min(GALLERY_SIZE, len(validation))
    originals = {os.path.realpath(p) for p in validation}
    assert {e["file"] for e in result["top_losses"]} <= originals  # the original files, not the links
    assert RunDir(trained_run).evaluation_file.is_file()


def _gallery(result: dict) -> list[dict]:
    return result["misclassified"] + result["top_losses"]


def test_a_training_leaves_grad_cam_for_later_and_draw_overlays_adds_it(trained_run, tmp_path):
    run = _copy_of(trained_run, tmp_path)
    left = load_evaluation(run)["validation"]  # the training's own evaluation
    assert left["overlays_pending"] is True and _gallery(left)
    assert all(e["gradcam_thumbnail"] is None for e in _gallery(left))
    assert not list((run / "evaluation" / "validation").glob("*-gradcam.jpg"))

    drawn = draw_overlays(run, "validation")
    result = load_evaluation(run)["validation"]
    assert drawn == len({e["file"] for e in _gallery(result)}) > 0
    assert result["overlays_pending"] is False
    for entry in _gallery(result):
        overlay = run / entry["gradcam_thumbnail"]
        assert overlay.name == Path(entry["thumbnail"]).stem + "-gradcam.jpg" and overlay.is_file()
        with Image.open(overlay) as image:
            assert 0 < max(image.size) <= THUMBNAIL_PX
    unchanged = ("evaluated_at", "accuracy", "confusion_matrix", "predictions")
    assert {k: result[k] for k in unchanged} == {k: left[k] for k in unchanged}
    assert draw_overlays(run, "validation") == 0  # nothing left to draw


def test_overlays_drawn_for_an_evaluation_replaced_meanwhile_are_not_written(
    trained_run, tmp_path, monkeypatch
):
    import core.evaluate

    run = _copy_of(trained_run, tmp_path)
    add_overlays = core.evaluate._add_overlays

    def evaluated_again_meanwhile(*args):
        drawn = add_overlays(*args)
        evaluation = load_evaluation(run)
        evaluation["validation"]["evaluated_at"] += 1  # another evaluation of the split landed
        write_json_atomic(RunDir(run).evaluation_file, evaluation)
        return drawn

    monkeypatch.setattr(core.evaluate, "_add_overlays", evaluated_again_meanwhile)
    assert draw_overlays(run, "validation") == 0
    result = load_evaluation(run)["validation"]
    assert result["overlays_pending"] is True and all(
        e["gradcam_thumbnail"] is None for e in _gallery(result)
    )


def test_cli_overlays_draws_them_and_refuses_a_split_not_evaluated(trained_run, tmp_path):
    run = _copy_of(trained_run, tmp_path)
    result = run_cli("core.evaluate", "--run", str(run), "--overlays")
    assert result.returncode == 0, result.stderr[-2000:]
    drawn = len({e["file"] for e in _gallery(load_evaluation(run)["validation"])})
    assert result.stdout.strip() == f"validation: {drawn} Grad-CAM overlays drawn"
    refused = run_cli("core.evaluate", "--run", str(run), "--split", "train", "--overlays")
    assert refused.returncode == 2
    assert refused.stderr.strip() == "error: the train split has not been evaluated: evaluate it first"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--split", "test"], "error: the dataset has no test split"),
        (["--checkpoint", "last"], "error: run has no last checkpoint yet"),
        (["--split", "bogus"], "error: argument --split: invalid choice"),
    ],
)
def test_cli_bad_input_is_one_line_with_status_2(known_run, capsys, args, message):
    code = _exit_code(["--run", str(known_run), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [err.strip()] and err.startswith(message)


def test_cli_missing_run_dir(tmp_path, capsys):
    assert main(["--run", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"error: run directory not found: {tmp_path / 'nope'}"


def test_cli_prints_a_summary_and_writes_the_file(known_run):
    result = run_cli("core.evaluate", "--run", str(known_run))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("validation: accuracy 0.833 (10/12), macro F1 0.833")
    assert "AUC 0.833" in lines[0] and "2 misclassified" in lines[0]
    assert lines[-1] == str(RunDir(known_run).evaluation_file)
    assert "validation" in json.loads(RunDir(known_run).evaluation_file.read_text())


def _exit_code(argv: list[str]) -> int:
    """main()'s status, also when argparse exits on its own."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_class_columns_turns_a_sigmoid_into_two_columns():
    import numpy as np

    from core.predict import class_columns

    assert class_columns(np.array([[0.25]])).tolist() == [[0.75, 0.25]]
    softmax = np.array([[0.2, 0.3, 0.5]])
    assert class_columns(softmax) is softmax


def test_a_hand_edited_thumbnail_outside_the_run_gets_no_overlay_written_beside_it(trained_run, tmp_path):
    run = _copy_of(trained_run, tmp_path / "runs")
    outside = tmp_path / "outside.jpg"
    outside.write_bytes((run / _gallery(load_evaluation(run)["validation"])[0]["thumbnail"]).read_bytes())
    evaluation = load_evaluation(run)
    entry = _gallery(evaluation["validation"])[0]
    for listed in _gallery(evaluation["validation"]):
        if listed["file"] == entry["file"]:
            listed["thumbnail"] = "../../outside.jpg"
    write_json_atomic(RunDir(run).evaluation_file, evaluation)
    draw_overlays(run, "validation")
    assert not (tmp_path / "outside-gradcam.jpg").exists()
    drawn = {e["file"]: e["gradcam_thumbnail"] for e in _gallery(load_evaluation(run)["validation"])}
    assert drawn[entry["file"]] is None and sum(map(bool, drawn.values())) == len(drawn) - 1
