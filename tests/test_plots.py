"""The dashboard's Plotly builders: pure functions, inspected through fig.data and fig.layout."""

from core.plots import (
    accuracy_figure,
    compare_runs_figure,
    loss_figure,
    metric_figure,
    probability_figure,
    split_counts_figure,
)

EPOCHS = [
    {"epoch": 1, "accuracy": 0.6, "loss": 0.9, "val_accuracy": 0.55, "val_loss": 1.0, "seconds": 3.0},
    {"epoch": 2, "accuracy": 0.8, "loss": 0.5, "val_accuracy": 0.75, "val_loss": 0.6, "seconds": 3.1},
    {"epoch": 3, "accuracy": 0.9, "loss": 0.3, "val_accuracy": 0.85, "val_loss": 0.4, "seconds": 2.9},
]


def test_split_counts_groups_one_trace_per_split():
    counts = {
        "train": {"cat": 80, "dog": 75},
        "validation": {"cat": 20, "dog": 19},
        "test": {"cat": 5, "dog": 4},
    }
    fig = split_counts_figure(counts)
    assert [t.name for t in fig.data] == ["train", "validation", "test"]
    assert all(t.type == "bar" for t in fig.data)
    assert list(fig.data[0].x) == ["cat", "dog"]
    assert list(fig.data[0].y) == [80, 75]
    assert list(fig.data[1].y) == [20, 19]
    assert fig.layout.barmode == "group"


def test_accuracy_figure_has_train_and_validation_curves_per_epoch():
    fig = accuracy_figure(EPOCHS)
    assert [t.name for t in fig.data] == ["train", "validation"]
    assert list(fig.data[0].x) == [1, 2, 3]
    assert list(fig.data[0].y) == [0.6, 0.8, 0.9]
    assert list(fig.data[1].y) == [0.55, 0.75, 0.85]
    assert fig.layout.title.text == "Accuracy"
    assert (fig.layout.xaxis.tick0, fig.layout.xaxis.dtick) == (1, 1)  # whole epochs only


def test_loss_figure_reads_loss_keys():
    fig = loss_figure(EPOCHS)
    assert list(fig.data[0].y) == [0.9, 0.5, 0.3]
    assert list(fig.data[1].y) == [1.0, 0.6, 0.4]
    assert fig.layout.yaxis.title.text == "loss"


def test_metric_figure_skips_missing_values_and_absent_series():
    epochs = [
        {"epoch": 1, "loss": 0.9},
        {"epoch": 2, "loss": 0.7, "val_loss": None},
        {"epoch": 3, "loss": 0.5},
    ]
    fig = metric_figure(epochs, "loss")
    assert [t.name for t in fig.data] == ["train"]  # no validation values at all: no empty trace
    assert list(fig.data[0].x) == [1, 2, 3]


def test_metric_figure_without_epochs_says_it_waits():
    fig = accuracy_figure([])
    assert len(fig.data) == 0
    assert "waiting" in fig.layout.annotations[0].text


def test_compare_runs_one_line_per_run():
    other = [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.6}]
    fig = compare_runs_figure({"run-a": EPOCHS, "run-b": other}, "val_accuracy")
    assert [t.name for t in fig.data] == ["run-a", "run-b"]
    assert list(fig.data[0].y) == [0.55, 0.75, 0.85]
    assert list(fig.data[1].x) == [1, 2]
    assert list(fig.data[1].y) == [0.5, 0.6]
    assert "val_accuracy" in fig.layout.title.text


def test_compare_runs_other_metric():
    fig = compare_runs_figure({"run-a": EPOCHS}, "loss")
    assert list(fig.data[0].y) == [0.9, 0.5, 0.3]


def test_probability_figure_is_horizontal_with_the_winner_on_top():
    fig = probability_figure({"horses": 0.2, "humans": 0.7, "zebras": 0.1})
    (bar,) = fig.data
    assert bar.orientation == "h"
    assert list(bar.y) == ["zebras", "horses", "humans"]  # plotly draws the last category on top
    assert list(bar.x) == [0.1, 0.2, 0.7]
    assert list(bar.text) == ["10.0%", "20.0%", "70.0%"]
    assert list(bar.textposition) == ["outside", "inside", "inside"]  # a short bar: label beside it
    assert bar.textangle == 0  # never rotated to squeeze into a bar
    assert tuple(fig.layout.xaxis.range) == (0, 1.05) and fig.layout.xaxis.tickformat == ".0%"


def test_stage2_start_draws_a_dashed_line_at_the_boundary():
    fig = accuracy_figure(EPOCHS, stage2_start=3)
    (line,) = fig.layout.shapes
    assert (line.x0, line.x1, line.line.dash) == (2.5, 2.5, "dash")  # between epochs 2 and 3
    assert (line.yref, line.y0, line.y1) == ("y domain", 0, 1)  # the full height
    assert fig.layout.annotations[0].text == "fine-tuning"
    assert [t.name for t in fig.data] == ["train", "validation"]  # the curves are unchanged
    assert loss_figure(EPOCHS, stage2_start=2).layout.shapes[0].x0 == 1.5


def test_no_stage2_no_line():
    assert not accuracy_figure(EPOCHS).layout.shapes
    assert not accuracy_figure([], stage2_start=3).layout.shapes  # nothing to mark yet


def test_stage2_not_begun_still_shows_where_it_will():
    fig = metric_figure(EPOCHS[:2], "accuracy", stage2_start=3)
    assert fig.layout.shapes[0].x0 == 2.5 and fig.layout.xaxis.range is None


def test_a_single_epoch_is_a_labelled_marker_in_the_middle():
    fig = accuracy_figure([{"epoch": 1, "accuracy": 1.0, "val_accuracy": 0.875}])
    train, validation = fig.data
    assert (train.mode, train.marker.size, list(train.text)) == ("markers+text", 14, ["1.000"])
    assert list(validation.text) == ["0.875"]
    assert (train.textposition, validation.textposition) == ("middle right", "middle left")
    assert tuple(fig.layout.xaxis.range) == (0.5, 1.5)
    assert accuracy_figure(EPOCHS).data[0].mode == "lines+markers"
