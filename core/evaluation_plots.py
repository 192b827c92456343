"""Plotly figures of an evaluation: pure functions of `core.evaluate`'s results, tested via `fig.data`."""

from __future__ import annotations

import plotly.graph_objects as go

METRIC_COLORS = {"precision": "#2f6fde", "recall": "#f28e2b", "f1": "#59a14f"}
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=40, b=10), height=360)
_CHANCE_LINE = dict(dash="dash", color="#999999")


def confusion_matrix_figure(
    matrix: list[list[int]], class_names: list[str], title: str = "Confusion matrix"
) -> go.Figure:
    """A heatmap of counts: true class on y (first class on top), predicted class on x.

    Each cell is annotated with its count; colour follows the count.
    """
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=list(class_names),
            y=list(class_names),
            text=matrix,
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
            hovertemplate="true %{y}<br>predicted %{x}<br>%{z} images<extra></extra>",
        )
    )
    side = max(300, 60 * len(class_names) + 120)
    fig.update_layout(**{**_LAYOUT, "height": side}, title=title)
    fig.update_xaxes(title_text="predicted", type="category", side="bottom")
    fig.update_yaxes(title_text="true", type="category", autorange="reversed")
    return fig


def per_class_metrics_figure(
    per_class: dict[str, dict[str, float]], title: str = "Per-class scores"
) -> go.Figure:
    """Grouped bars: one trace each for precision, recall and F1; x = class names.

    Args:
        per_class: `evaluate_run(...)["per_class"]`, e.g. {"cat": {"precision": 0.9, ...}}.
    """
    names = list(per_class)
    fig = go.Figure()
    for metric, color in METRIC_COLORS.items():
        values = [float(per_class[name][metric]) for name in names]
        fig.add_trace(
            go.Bar(
                name=metric,
                x=names,
                y=values,
                text=[f"{v:.2f}" for v in values],
                marker_color=color,
            )
        )
    fig.update_layout(**_LAYOUT, barmode="group", title=title, xaxis_title="class", legend_title="score")
    fig.update_yaxes(range=[0, 1.05], title_text="score")
    return fig


def roc_figure(roc: dict, title: str = "ROC curve") -> go.Figure:
    """The ROC curve (named with its AUC) over a dashed chance diagonal.

    Args:
        roc: `evaluate_run(...)["roc"]`: {"fpr": [...], "tpr": [...], "auc": float}.
    """
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(name="chance", x=[0, 1], y=[0, 1], mode="lines", line=_CHANCE_LINE, hoverinfo="skip")
    )
    fig.add_trace(
        go.Scatter(name=f"ROC (AUC = {roc['auc']:.3f})", x=list(roc["fpr"]), y=list(roc["tpr"]), mode="lines")
    )
    fig.update_layout(
        **_LAYOUT, title=title, xaxis_title="false positive rate", yaxis_title="true positive rate"
    )
    _unit_square(fig)
    return fig


def pr_figure(pr: dict, title: str = "Precision-recall curve") -> go.Figure:
    """The precision-recall curve (named with its average precision), and the chance level.

    Args:
        pr: `evaluate_run(...)["pr"]`: {"precision", "recall", "average_precision"} and
            optionally "positive_rate" (the precision of guessing; drawn dashed).
    """
    fig = go.Figure()
    if pr.get("positive_rate") is not None:
        rate = float(pr["positive_rate"])
        fig.add_trace(
            go.Scatter(
                name="chance", x=[0, 1], y=[rate, rate], mode="lines", line=_CHANCE_LINE, hoverinfo="skip"
            )
        )
    fig.add_trace(
        go.Scatter(
            name=f"PR (AP = {pr['average_precision']:.3f})",
            x=list(pr["recall"]),
            y=list(pr["precision"]),
            mode="lines",
            line_shape="hv",
        )
    )
    fig.update_layout(**_LAYOUT, title=title, xaxis_title="recall", yaxis_title="precision")
    _unit_square(fig)
    return fig


def _unit_square(fig: go.Figure) -> None:
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(legend=dict(x=0.98, y=0.02, xanchor="right", yanchor="bottom"))


def reliability_figure(calibration: dict, title: str = "Reliability diagram") -> go.Figure:
    """Accuracy against mean confidence per confidence bin, before and after temperature
    scaling, over the dashed diagonal of perfect calibration. Marker size follows the count.

    Args:
        calibration: `evaluate_run(...)["calibration"]`: "reliability_before"/"_after" lists
            of {"confidence", "accuracy", "count"}, "ece_before", "ece_after", "temperature".
    """
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(name="perfect", x=[0, 1], y=[0, 1], mode="lines", line=_CHANCE_LINE, hoverinfo="skip")
    )
    for when, color in (("before", "#f28e2b"), ("after", "#2f6fde")):
        rows = calibration[f"reliability_{when}"]
        fig.add_trace(
            go.Scatter(
                name=f"{when} (ECE {calibration[f'ece_{when}']:.3f})",
                x=[r["confidence"] for r in rows],
                y=[r["accuracy"] for r in rows],
                mode="lines+markers",
                marker=dict(
                    color=color, size=[6 + 14 * (r["count"] / max(r["count"] for r in rows)) for r in rows]
                ),
                line=dict(color=color),
                customdata=[r["count"] for r in rows],
                hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>"
                "%{customdata} images<extra></extra>",
            )
        )
    fig.update_layout(**_LAYOUT, title=title, xaxis_title="confidence (mean per bin)", yaxis_title="accuracy")
    _unit_square(fig)
    return fig


def with_clickable_cells(fig: go.Figure, class_names: list[str]) -> go.Figure:
    """Add an invisible marker on each confusion-matrix cell: a heatmap cannot be selected, a
    marker can, so clicking a cell selects (x = predicted, y = true) for the drill-down."""
    names = list(class_names)
    fig.add_trace(
        go.Scatter(
            name="cells",
            x=[p for _ in names for p in names],
            y=[t for t in names for _ in names],
            mode="markers",
            marker=dict(size=max(12, 240 // max(len(names), 1)), opacity=0, symbol="square"),
            hovertemplate="click to see these photos<extra></extra>",
            showlegend=False,
        )
    )
    n = len(names)  # markers would widen the autoranged axes: pin them to the cells
    fig.update_xaxes(range=[-0.5, n - 0.5], autorange=False)
    fig.update_yaxes(range=[n - 0.5, -0.5], autorange=False)  # first class on top, as before
    return fig
