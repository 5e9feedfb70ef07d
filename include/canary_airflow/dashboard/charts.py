"""The run page's charts as inline SVG, drawn with matplotlib's object API on the Agg canvas.

Why inline SVG: the page must show without any network (no CDN, no chart library in the
browser), inside Airflow's iframe, and a browser test can find each chart by its
``data-chart`` attribute. Each function takes the run's detail (``shaping.rollout_detail``).
Colours are the report's: the champion blue, the challenger orange.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from canary.plan import stage_title
from canary.reporting.charts import VERDICT_COLORS, variant_colors

CHARTS: Final = ("weights", "gate", "variants")
_MUTED: Final = "#6b6b6b"
_SVG_RC: Final = {"svg.fonttype": "none", "svg.hashsalt": "canary-dashboard"}  # text stays text


def to_svg(fig: Figure, chart: str) -> str:
    """The figure as an ``<svg>`` element (no XML prolog) carrying ``data-chart``."""
    buffer = io.StringIO()
    with rc_context(_SVG_RC):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return f'<svg data-chart="{chart}" role="img"' + text[text.index("<svg") + len("<svg") :]


def colors(detail: Mapping[str, Any]) -> dict[str, str]:
    names = [(detail.get(role) or {}).get("variant", role) for role in ("champion", "challenger")]
    return variant_colors(*names)


def weights_chart(detail: Mapping[str, Any]) -> str:
    """Each variant's share of traffic over time, as steps (weights hold until changed)."""
    fig = Figure(figsize=(9.0, 3.0))
    ax = _axes(fig, "Traffic share per variant (%)")
    points = detail.get("weights_timeline") or []
    if not points:
        return _empty(fig, ax, "weights", "no weights set yet")
    times = [datetime.fromisoformat(point["at"]) for point in points]
    for variant, color in colors(detail).items():
        values = [100 * point["weights"].get(variant, 0.0) for point in points]
        ax.step(times, values, where="post", color=color, label=variant, marker="o", ms=3)
    ax.set_ylim(-5, 105)
    ax.legend(loc="center left", frameon=False)
    fig.autofmt_xdate()
    return to_svg(fig, "weights")


def gate_chart(detail: Mapping[str, Any]) -> str:
    """Per stage, the gate statistic z at each look against its efficacy (promote above) and
    futility (roll back below) boundaries, over the information fraction."""
    stages = detail.get("gate") or []
    fig = Figure(figsize=(9.0, 2.8 * max(len(stages), 1)))
    if not stages:
        return _empty(fig, _axes(fig, "Gate statistic"), "gate", "no stage planned")
    for row, stage in enumerate(stages, start=1):
        ax = fig.add_subplot(len(stages), 1, row)
        title = stage_title(stage["stage"] - 1).capitalize()
        ax.set_title(f"{title}: z vs boundaries", loc="left", fontweight="bold")
        _gate_panel(ax, stage["looks"])
    fig.tight_layout()
    return to_svg(fig, "gate")


def _gate_panel(ax: Axes, looks: Sequence[Mapping[str, Any]]) -> None:
    if not looks:
        ax.text(0.5, 0.5, "no look taken yet", ha="center", va="center", color=_MUTED)
        ax.set_axis_off()
        return
    x = [look["fraction"] for look in looks]
    ax.plot(x, [look["efficacy"] for look in looks], "--", color="#1b873f", label="efficacy")
    ax.plot(x, [look["futility"] for look in looks], "--", color="#c62828", label="futility")
    for look in looks:
        if look.get("z") is not None:
            ax.plot(look["fraction"], look["z"], "o", color=VERDICT_COLORS[look["verdict"]])
    measured = [(lk["fraction"], lk["z"]) for lk in looks if lk.get("z") is not None]
    if measured:
        ax.plot(*zip(*measured, strict=True), color="black", lw=1, label="z")
    ax.set_xlabel("information fraction")
    ax.set_xlim(0, 1.05)
    ax.legend(loc="upper left", frameon=False, fontsize=8)


def variants_chart(detail: Mapping[str, Any]) -> str:
    """Per variant, error rate (4XX + 5XX) and p99 latency at each look, stage by stage."""
    rows = detail.get("variant_metrics") or []
    fig = Figure(figsize=(9.0, 5.2))
    if not rows:
        return _empty(fig, _axes(fig, "Per-variant metrics"), "variants", "no evidence yet")
    labels = _look_labels(rows)
    for panel, (key, title, scale) in enumerate(_VARIANT_PANELS, start=1):
        ax = fig.add_subplot(2, 1, panel)
        ax.set_title(title, loc="left", fontweight="bold")
        for variant, color in colors(detail).items():
            mine = [r for r in rows if r["variant"] == variant and r[key] is not None]
            xs = [labels.index(_look_label(r)) for r in mine]
            ax.plot(xs, [scale * r[key] for r in mine], marker="o", color=color, label=variant)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.legend(loc="upper left", frameon=False, fontsize=8)
    fig.tight_layout()
    return to_svg(fig, "variants")


_VARIANT_PANELS: Final = (
    ("error_rate", "Error rate (4XX + 5XX, %)", 100.0),
    ("latency_p99_ms", "Latency p99 (ms)", 1.0),
)


def _look_labels(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    ordered = sorted(rows, key=lambda row: (row["stage"], str(row["at"])))
    return list(dict.fromkeys(_look_label(row) for row in ordered))


def _look_label(row: Mapping[str, Any]) -> str:
    """``s1·l2``: stage 1, look 2 (``s1·now`` for a record taken between looks)."""
    suffix = f"l{row['look']}" if row["look"] is not None else "now"
    return f"s{row['stage']}·{suffix}"


def _axes(fig: Figure, title: str) -> Axes:
    ax = fig.add_subplot()
    ax.set_title(title, loc="left", fontweight="bold")
    return ax


def _empty(fig: Figure, ax: Axes, chart: str, message: str) -> str:
    ax.text(0.5, 0.5, message, ha="center", va="center", color=_MUTED, fontsize=11)
    ax.set_axis_off()
    return to_svg(fig, chart)
