"""PNG charts of a rollout, drawn with matplotlib's object API on the Agg canvas.

Why the object API (``Figure`` instead of ``pyplot``): no global state and no GUI backend, so
charts can be drawn from Airflow workers and threads without touching the process-wide backend.
Each function draws one chart from plain data and returns the written path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from canary.experiment.gates.decision import Verdict

CHAMPION_COLOR: Final[str] = "#1f6fb4"
CHALLENGER_COLOR: Final[str] = "#e8710a"
_OTHER_COLORS: Final[tuple[str, ...]] = ("#6b6b6b", "#2ca02c", "#9467bd", "#8c564b")
VERDICT_COLORS: Final[dict[str, str]] = {
    Verdict.PROMOTE: "#1b873f",
    Verdict.CONTINUE: "#6b6b6b",
    Verdict.ROLLBACK: "#c62828",
    Verdict.HALT: "#b26a00",
}
_DPI: Final[int] = 110


def variant_colors(champion: str, challenger: str, others: Sequence[str] = ()) -> dict[str, str]:
    """Stable colours: the champion is always blue and the challenger orange, in every chart."""
    colors = {champion: CHAMPION_COLOR, challenger: CHALLENGER_COLOR}
    extra = [v for v in others if v not in colors]
    for i, name in enumerate(extra):
        colors[name] = _OTHER_COLORS[i % len(_OTHER_COLORS)]
    return colors


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path


def _empty(fig: Figure, title: str, message: str) -> None:
    ax = fig.add_subplot()
    ax.set_title(title, loc="left", fontweight="bold")
    ax.text(0.5, 0.5, message, ha="center", va="center", color="#6b6b6b", fontsize=11)
    ax.set_axis_off()


def invocations_chart(
    invocations: pd.DataFrame,
    colors: Mapping[str, str],
    path: Path,
    markers: Sequence[tuple[pd.Timestamp, str, str]] = (),
) -> Path:
    """Invocations per variant over time, like CloudWatch's ``Invocations`` graph.

    ``invocations`` has columns ``timestamp``, ``variant``, ``invocations``; ``markers`` are
    ``(time, label, verdict)`` vertical lines (weight changes, decisions).
    """
    fig = Figure(figsize=(9.0, 3.6))
    title = "Invocations per variant"
    if invocations.empty:
        _empty(fig, title, "no invocations recorded")
        return _save(fig, path)
    ax = fig.add_subplot()
    wide = invocations.pivot_table(
        index="timestamp", columns="variant", values="invocations", aggfunc="sum"
    ).sort_index()
    for variant in wide.columns:
        series = wide[variant].fillna(0)
        ax.plot(
            series.index,
            series.to_numpy(),
            marker="o",
            markersize=3,
            linewidth=1.6,
            color=colors.get(variant, "#6b6b6b"),
            label=str(variant),
        )
    top = float(np.nanmax(wide.to_numpy())) if wide.size else 1.0
    for number, (when, label, verdict) in enumerate(markers):
        color = VERDICT_COLORS.get(verdict, "#6b6b6b")
        ax.axvline(when, color=color, linestyle="--", linewidth=1)
        height = top * (1.04 + 0.09 * (number % 2))  # staggered: short stages' labels don't collide
        ax.text(when, height, f"{label} ", color=color, fontsize=8, ha="right", va="bottom")
    ax.set_title(title, loc="left", fontweight="bold", pad=16)
    ax.set_ylabel("requests per interval")
    ax.set_ylim(bottom=0, top=top * 1.25 + 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.autofmt_xdate()
    return _save(fig, path)


def weights_chart(
    steps: Sequence[tuple[str, float, float]],
    verdicts: Sequence[str | None],
    names: tuple[str, str],
    colors: Mapping[str, str],
    path: Path,
) -> Path:
    """Traffic share per rollout step as a step chart; each step labelled with its verdict.

    ``steps`` are ``(label, champion_weight, challenger_weight)``; weights are normalised so a
    configuration of (1, 3) shows as 25 % / 75 %. ``verdicts[i]`` is ``None`` for a step that was
    never reached (drawn faded).
    """
    fig = Figure(figsize=(9.0, 3.4))
    if not steps:
        _empty(fig, "Traffic weights per stage", "no stages")
        return _save(fig, path)
    ax = fig.add_subplot()
    shares = np.array([_share(c, h) for _, c, h in steps])
    x = np.arange(len(steps) + 1)
    reached = max((i + 1 for i, v in enumerate(verdicts) if v is not None), default=0)
    for col, name in enumerate(names):
        y = np.append(shares[:, col], shares[-1, col]) * 100
        color = colors.get(name)
        solid = np.append(y[:reached], y[reached - 1]) if reached else y[:1]
        ax.step(x[: reached + 1], solid, where="post", linewidth=2.2, color=color, label=name)
        if reached < len(steps):  # planned but never reached: dashed, faded
            xs = np.insert(x[reached:], 0, reached)
            ys = np.insert(y[reached:], 0, solid[-1])
            ax.step(xs, ys, where="post", linewidth=1.6, color=color, linestyle="--", alpha=0.45)
    for i, verdict in enumerate(verdicts):
        if verdict is None:
            ax.axvspan(i, i + 1, color="#f2f2f2", zorder=0)
        text = verdict or "not reached"
        ax.text(
            i + 0.5,
            104,
            text,
            ha="center",
            fontsize=9,
            fontweight="bold",
            color=VERDICT_COLORS.get(text, "#9e9e9e"),
        )
    ax.set_xticks(x[:-1] + 0.5, [f"step {i + 1}\n{label}" for i, (label, _, _) in enumerate(steps)])
    ax.set_xlim(0, len(steps))
    ax.set_ylim(0, 112)
    ax.set_ylabel("share of traffic (%)")
    ax.set_title("Traffic weights per stage", loc="left", fontweight="bold", pad=14)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _save(fig, path)


def _share(champion: float, challenger: float) -> tuple[float, float]:
    total = champion + challenger
    return (0.0, 0.0) if total <= 0 else (champion / total, challenger / total)


QUALITY_METRICS: Final[tuple[str, ...]] = ("accuracy", "precision", "recall", "f1", "roc_auc")


def metrics_chart(results: pd.DataFrame, colors: Mapping[str, str], path: Path) -> Path:
    """Grouped bars of the quality metrics per variant (missing metrics are left out)."""
    fig = Figure(figsize=(9.0, 3.4))
    cols = [c for c in QUALITY_METRICS if c in results.columns]
    data = results[cols].apply(pd.to_numeric, errors="coerce") if cols else pd.DataFrame()
    if data.empty or data.isna().all().all():
        _empty(fig, "Prediction quality per variant", "no labelled predictions")
        return _save(fig, path)
    ax = fig.add_subplot()
    width = 0.8 / len(data.index)
    x = np.arange(len(cols))
    for i, variant in enumerate(data.index):
        values = data.loc[variant].to_numpy(dtype=float)
        bars = ax.bar(
            x + i * width - 0.4 + width / 2,
            np.nan_to_num(values),
            width,
            color=colors.get(variant, "#6b6b6b"),
            label=str(variant),
        )
        for bar, value in zip(bars, values, strict=True):
            label = "n/a" if np.isnan(value) else f"{value:.3f}"
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height() + 0.01,
                label,
                ha="center",
                va="bottom",
                fontsize=7.5,
            )
    ax.set_xticks(x, [c.replace("_", " ").upper() if c == "roc_auc" else c for c in cols])
    ax.set_ylim(0, 1.12)
    ax.set_title("Prediction quality per variant", loc="left", fontweight="bold")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _save(fig, path)


def confusion_chart(
    matrices: Mapping[str, np.ndarray], colors: Mapping[str, str], path: Path
) -> Path:
    """One 2x2 confusion matrix per variant (rows: actual, columns: predicted), with counts."""
    fig = Figure(figsize=(3.4 * max(1, len(matrices)), 3.2), layout="constrained")
    if not matrices:
        _empty(fig, "Confusion matrices", "no labelled predictions")
        return _save(fig, path)
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    for i, (ax, (variant, matrix)) in enumerate(zip(axes, matrices.items(), strict=True)):
        m = np.asarray(matrix, dtype=float)
        shares = m / m.sum() if m.sum() else m
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for (r, c), count in np.ndenumerate(m):
            ax.text(
                c,
                r,
                f"{int(count)}\n{shares[r, c]:.1%}",
                ha="center",
                va="center",
                color="white" if shares[r, c] > 0.5 else "black",
                fontsize=9,
            )
        ax.set_xticks([0, 1], ["stay", "churn"])
        ax.set_yticks([0, 1], ["stay", "churn"])
        ax.set_xlabel("predicted")
        if i == 0:
            ax.set_ylabel("actual")
        ax.set_title(str(variant), color=colors.get(variant, "black"), fontweight="bold")
    return _save(fig, path)


def paired_chart(
    looks: Sequence[Mapping[str, float]], colors: Mapping[str, str], path: Path
) -> Path:
    """The shadow stage's gate, look by look: the paired statistic z against its efficacy and
    futility boundaries (left), and the discordant pairs each model alone got right (right).

    Each look is a mapping with ``n_pairs``, ``z``, ``efficacy``, ``futility``,
    ``champion_only`` and ``challenger_only``; ``colors`` has ``champion`` and ``challenger``."""
    fig = Figure(figsize=(9.0, 3.2))
    if not looks:
        _empty(fig, "Shadow stage: paired test", "no look taken")
        return _save(fig, path)
    left, right = fig.subplots(1, 2)
    n = [look["n_pairs"] for look in looks]
    z = [_plottable(look["z"]) for look in looks]
    left.plot(n, z, "o-", color="#1d1d1d", label="z (paired)")
    for key, color in (
        ("efficacy", VERDICT_COLORS[Verdict.PROMOTE]),
        ("futility", VERDICT_COLORS[Verdict.ROLLBACK]),
    ):
        left.plot(n, [_plottable(look[key]) for look in looks], "--", color=color, label=key)
    left.set_xlabel("pairs")
    left.set_title("Statistic vs boundaries", loc="left", fontweight="bold")
    left.legend(frameon=False, fontsize=8)
    left.grid(alpha=0.3)
    x = np.arange(len(looks))
    for offset, (key, role) in zip(
        (-0.2, 0.2), (("champion_only", "champion"), ("challenger_only", "challenger")), strict=True
    ):
        right.bar(
            x + offset,
            [look[key] for look in looks],
            0.4,
            color=colors[role],
            label=f"only the {role} right",
        )
    right.set_xticks(x, [str(i + 1) for i in x])
    right.set_xlabel("look")
    right.set_title("Discordant pairs", loc="left", fontweight="bold")
    right.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _plottable(value: float | None) -> float:
    """A statistic or bound as a point to draw: none where it is infinite, or missing (records
    store an infinite bound as null: JSON has no infinity)."""
    return float(value) if value is not None and np.isfinite(value) else np.nan
