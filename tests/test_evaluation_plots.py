"""The evaluation figures: pure functions of evaluate_run's results, inspected through fig.data."""

import pytest

from core.evaluation_plots import confusion_matrix_figure, per_class_metrics_figure, pr_figure, roc_figure

CLASSES = ["cat", "dog", "fox"]
MATRIX = [[8, 1, 1], [2, 7, 0], [0, 3, 9]]


def test_confusion_matrix_puts_true_on_y_and_predicted_on_x_with_counts():
    fig = confusion_matrix_figure(MATRIX, CLASSES)
    (heat,) = fig.data
    assert heat.type == "heatmap"
    assert [list(row) for row in heat.z] == MATRIX
    assert list(heat.x) == CLASSES and list(heat.y) == CLASSES
    assert [list(row) for row in heat.text] == MATRIX and heat.texttemplate == "%{text}"  # counts shown
    assert fig.layout.xaxis.title.text == "predicted"
    assert fig.layout.yaxis.title.text == "true"
    assert fig.layout.yaxis.autorange == "reversed"  # the first class on top, like the matrix reads


def test_per_class_metrics_are_grouped_bars_per_score():
    per_class = {
        "cat": {"precision": 0.8, "recall": 0.8, "f1": 0.8, "support": 10},
        "dog": {"precision": 0.64, "recall": 0.78, "f1": 0.7, "support": 9},
    }
    fig = per_class_metrics_figure(per_class)
    assert [t.name for t in fig.data] == ["precision", "recall", "f1"]
    assert all(t.type == "bar" and list(t.x) == ["cat", "dog"] for t in fig.data)
    assert list(fig.data[0].y) == [0.8, 0.64]
    assert list(fig.data[1].y) == [0.8, 0.78]
    assert list(fig.data[2].text) == ["0.80", "0.70"]
    assert fig.layout.barmode == "group"


def test_roc_curve_names_its_auc_over_the_chance_line():
    fig = roc_figure({"fpr": [0.0, 0.1, 1.0], "tpr": [0.0, 0.9, 1.0], "auc": 0.9123})
    chance, curve = fig.data
    assert list(chance.x) == [0, 1] and list(chance.y) == [0, 1] and chance.line.dash == "dash"
    assert curve.name == "ROC (AUC = 0.912)"
    assert list(curve.x) == [0.0, 0.1, 1.0] and list(curve.y) == [0.0, 0.9, 1.0]
    assert fig.layout.xaxis.title.text == "false positive rate"
    assert fig.layout.yaxis.title.text == "true positive rate"


@pytest.mark.parametrize("positive_rate", [0.25, None])
def test_pr_curve_names_its_average_precision(positive_rate):
    pr = {"precision": [0.5, 0.8, 1.0], "recall": [1.0, 0.5, 0.0], "average_precision": 0.8456}
    if positive_rate is not None:
        pr["positive_rate"] = positive_rate
    fig = pr_figure(pr)
    curve = fig.data[-1]
    assert curve.name == "PR (AP = 0.846)"
    assert list(curve.x) == [1.0, 0.5, 0.0] and list(curve.y) == [0.5, 0.8, 1.0]  # x = recall
    assert fig.layout.xaxis.title.text == "recall" and fig.layout.yaxis.title.text == "precision"
    if positive_rate is None:
        assert len(fig.data) == 1
    else:
        assert list(fig.data[0].y) == [0.25, 0.25] and fig.data[0].name == "chance"


def test_reliability_diagram_draws_before_and_after_over_the_diagonal():
    from core.evaluation_plots import reliability_figure

    rows = [
        {"confidence": 0.6, "accuracy": 0.5, "count": 10},
        {"confidence": 0.95, "accuracy": 0.7, "count": 30},
    ]
    calibration = {"reliability_before": rows, "reliability_after": rows[:1], "ece_before": 0.2,
                   "ece_after": 0.05, "temperature": 2.0}  # fmt: skip
    fig = reliability_figure(calibration)
    assert [t.name for t in fig.data] == ["perfect", "before (ECE 0.200)", "after (ECE 0.050)"]
    assert list(fig.data[1].x) == [0.6, 0.95] and list(fig.data[1].y) == [0.5, 0.7]
    assert list(fig.data[2].customdata) == [10]


def test_clickable_cells_put_one_invisible_marker_on_each_cell():
    from core.evaluation_plots import with_clickable_cells

    fig = with_clickable_cells(confusion_matrix_figure(MATRIX, CLASSES), CLASSES)
    heat, cells = fig.data
    assert heat.type == "heatmap" and cells.type == "scatter" and cells.marker.opacity == 0
    assert list(zip(cells.y, cells.x))[1] == ("cat", "dog")  # row by row: (true, predicted)
    assert len(cells.x) == len(CLASSES) ** 2
