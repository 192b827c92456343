"""Plotly figures for the dashboard: pure functions of plain data, tested via `fig.data`."""

from __future__ import annotations

import plotly.graph_objects as go

SPLIT_COLORS = {"train": "#2f6fde", "validation": "#f28e2b", "test": "#59a14f", "all": "#76b7b2"}
COMPARE_AXIS_TITLE_PX, COMPARE_LEGEND_ROW_PX = 50, 22
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=40, b=10), height=320)


def split_counts_figure(counts: dict[str, dict[str, int]], title: str = "Images per class") -> go.Figure:
    """Grouped bars: one trace per split, x = class names, y = image counts.

    Args:
        counts: `DatasetReport.counts()`, e.g. {"train": {"cat": 80, "dog": 75}, "validation": {...}}.
    """
    fig = go.Figure()
    for split, per_class in counts.items():
        fig.add_trace(
            go.Bar(
                name=split,
                x=list(per_class),
                y=list(per_class.values()),
                text=list(per_class.values()),
                marker_color=SPLIT_COLORS.get(split),
            )
        )
    fig.update_layout(
        **_LAYOUT,
        barmode="group",
        title=title,
        xaxis_title="class",
        yaxis_title="images",
        legend_title="split",
    )
    return fig


def metric_figure(
    epochs: list[dict], metric: str, title: str | None = None, stage2_start: int | None = None
) -> go.Figure:
    """Train and validation curves of `metric` per epoch, from `RunDir.metrics`'s epoch records.

    Traces are named "train" (`metric`) and "validation" (`val_<metric>`); a trace is left
    out when no record has its key. Missing values in some epochs are skipped. A trace of
    one point (a features-mode run fits once) is drawn as a large labelled marker.

    Args:
        stage2_start: the first epoch of stage 2 (fine-tuning the backbone's top layers),
            as status.json's `stage2_start_epoch`; a dashed vertical line is drawn at the
            boundary, half an epoch before it, labelled "fine-tuning".
    """
    fig = go.Figure()
    for name, key, side in (("train", metric, "right"), ("validation", f"val_{metric}", "left")):
        points = [(r["epoch"], r[key]) for r in epochs if r.get(key) is not None and "epoch" in r]
        if not points:
            continue
        x, y = zip(*points)
        trace = go.Scatter(name=name, x=list(x), y=list(y), mode="lines+markers")
        if len(points) == 1:
            trace.update(
                mode="markers+text",
                marker_size=14,
                text=[f"{y[0]:.3f}"],
                textposition=f"middle {side}",
            )
        fig.add_trace(trace)
    fig.update_layout(**_LAYOUT, title=title or metric, xaxis_title="epoch", yaxis_title=metric)
    _epoch_ticks(fig, epochs)
    if metric == "accuracy":
        fig.update_yaxes(range=[0, 1.02])
    if not fig.data:
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.add_annotation(
            text="waiting for the first epoch", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
        return fig
    xs = [x for trace in fig.data for x in trace.x]
    if stage2_start:
        fig.add_vline(
            x=stage2_start - 0.5,
            line_dash="dash",
            line_color="#888888",
            annotation_text="fine-tuning",
            annotation_position="top right",
        )
        xs.append(stage2_start)
    if max(xs) == min(xs):  # one epoch: keep it in the middle, not at an axis edge
        fig.update_xaxes(range=[min(xs) - 0.5, max(xs) + 0.5])
    return fig


def _epoch_ticks(fig: go.Figure, epochs: list[dict]) -> None:
    """Whole epochs only: a tick per epoch for short runs (never "1, 1.5, 2" shown as "1 2 2")."""
    last = max((r.get("epoch", 0) for r in epochs), default=0)
    if last <= 15:
        fig.update_xaxes(tick0=1, dtick=1)
    else:
        fig.update_xaxes(tickformat="d")


def accuracy_figure(epochs: list[dict], stage2_start: int | None = None) -> go.Figure:
    return metric_figure(epochs, "accuracy", "Accuracy", stage2_start)


def loss_figure(epochs: list[dict], stage2_start: int | None = None) -> go.Figure:
    return metric_figure(epochs, "loss", "Loss", stage2_start)


def compare_runs_figure(runs: dict[str, list[dict]], metric: str = "val_accuracy") -> go.Figure:
    """One line per run: `metric` per epoch, for runs {name: epoch records}."""
    fig = go.Figure()
    for name, epochs in runs.items():
        points = [(r["epoch"], r[metric]) for r in epochs if r.get(metric) is not None and "epoch" in r]
        x, y = zip(*points) if points else ((), ())
        fig.add_trace(go.Scatter(name=name, x=list(x), y=list(y), mode="lines+markers"))
    fig.update_layout(**_LAYOUT, title=f"{metric} per epoch", xaxis_title="epoch", yaxis_title=metric)
    # The legend sits at the bottom of the whole figure, below the axis title, one row per run
    # (run names are long): the margin grows with the runs so it never covers the title.
    legend_px = COMPARE_LEGEND_ROW_PX * max(len(runs), 1)
    fig.update_layout(
        legend=dict(orientation="v", yref="container", yanchor="bottom", y=0, x=0),
        margin=dict(_LAYOUT["margin"], b=COMPARE_AXIS_TITLE_PX + legend_px),
        height=_LAYOUT["height"] + legend_px,
    )
    _epoch_ticks(fig, [r for epochs in runs.values() for r in epochs])
    return fig


def probability_figure(probabilities: dict[str, float]) -> go.Figure:
    """Horizontal bars of class probabilities, the most likely class on top.

    Each bar is labelled with its percentage, inside a long bar and just outside a short one
    (never rotated to fit)."""
    ranked = sorted(probabilities.items(), key=lambda item: item[1])
    labels = [name for name, _ in ranked]
    values = [float(p) for _, p in ranked]
    colors = ["#2f6fde" if i == len(ranked) - 1 else "#a9bfe8" for i in range(len(ranked))]
    fig = go.Figure(
        go.Bar(
            name="probability",
            x=values,
            y=labels,
            orientation="h",
            marker_color=colors,
            text=[f"{v:.1%}" for v in values],
            textposition=["inside" if v >= 0.15 else "outside" for v in values],
            textangle=0,
            cliponaxis=False,
        )
    )
    fig.update_layout(**{**_LAYOUT, "height": 60 + 40 * len(ranked), "margin": dict(l=10, r=10, t=10, b=10)})
    fig.update_xaxes(range=[0, 1.05], tick0=0, dtick=0.2, tickformat=".0%")
    return fig


def leaderboard_figure(candidates: list[dict], winner: str | None = None) -> go.Figure:
    """Auto mode's candidates as horizontal bars of cross-validated macro-F1 (mean, with the
    standard deviation over folds as error bars), the best on top; the winner in full colour.

    Args:
        candidates: auto.json's "candidates" (each with "name", "cv_mean", "cv_std"), best first.
    """
    ranked = list(reversed(candidates))  # Plotly draws the first bar at the bottom
    names = [c["name"] for c in ranked]
    fig = go.Figure(
        go.Bar(
            name="CV macro-F1",
            x=[c["cv_mean"] for c in ranked],
            y=names,
            orientation="h",
            error_x=dict(type="data", array=[c["cv_std"] for c in ranked], visible=True),
            marker_color=["#2f6fde" if n == winner else "#a9bfe8" for n in names],
            text=[f"{c['cv_mean']:.3f} ± {c['cv_std']:.3f}" for c in ranked],
            textposition="inside",
            insidetextanchor="start",  # at the bar's start, clear of the error bar at its end
            textangle=0,
        )
    )
    low = min((c["cv_mean"] - c["cv_std"] for c in candidates), default=0.0)
    fig.update_layout(
        **{**_LAYOUT, "height": 120 + 32 * len(ranked)},
        title="Candidates (cross-validated on the training split)",
        xaxis_title="macro-F1, mean ± std over folds",
    )
    fig.update_xaxes(range=[max(0.0, min(low, 0.9) - 0.05), 1.0])
    return fig


def learning_curve_figure(curve: dict) -> go.Figure:
    """What more data would buy: the winner's cross-validated macro-F1 against the training
    images per fold (25/50/75/100% of them), with the spread over folds as error bars.

    Args:
        curve: auto.json's "learning_curve": {"fractions", "images", "mean", "std", "reading"}.
    """
    points = [
        (n, m, s, f) for n, m, s, f in zip(curve["images"], curve["mean"], curve["std"], curve["fractions"])
        if m is not None
    ]  # fmt: skip
    x, y, err, fractions = zip(*points) if points else ((), (), (), ())
    fig = go.Figure(
        go.Scatter(
            name="CV macro-F1",
            x=list(x),
            y=list(y),
            mode="lines+markers",
            error_y=dict(type="data", array=list(err), visible=True),
            customdata=[f"{f:.0%}" for f in fractions],
            hovertemplate="%{customdata} of the images (%{x:.0f} per fold): %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        **_LAYOUT,
        title="What more data would buy",
        xaxis_title="training images per fold",
        yaxis_title="macro-F1",
    )
    return fig
