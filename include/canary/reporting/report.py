"""The rollout report: a self-contained HTML page with charts, and a one-screen text summary.

Why: a person must be able to answer "what happened, and why did it promote (or roll back)?"
without reading logs. So the report leads with the outcome, shows every decision record with its
verdict and reason first and all of its numbers after, and puts the per-variant evidence next to
the traffic that produced it. Decision records are rendered generically (any JSON-able nesting),
so the gate can add fields without this module changing.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from canary.experiment.gates.decision import Verdict
from canary.plan import (
    SHADOW_NUMBER,
    SHADOW_STAGE,
    stage_label,
    stage_sequence,
    stage_split,
    stage_title,
)
from canary.reporting import charts
from canary.rollout.outcome import RunOutcome

INVOCATION_COLUMNS: Final[tuple[str, ...]] = ("timestamp", "variant", "invocations")
#: Per-variant columns shown in tables, in this order, when present.
TABLE_COLUMNS: Final[tuple[str, ...]] = (
    "requests",
    "ok",
    "rate_4xx",
    "rate_5xx",
    "latency_p50_ms",
    "latency_p99_ms",
    "labelled",
    "unusable",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "mean_reward",
    "note",
)
_OUTCOME_COLORS: Final[dict[RunOutcome, str]] = {
    RunOutcome.PROMOTED: "#1b873f",
    RunOutcome.ROLLED_BACK: "#c62828",
    RunOutcome.HALTED: "#b26a00",
    RunOutcome.FAILED: "#6d1b7b",
}
DATA_FILE: Final = "report.json"
PAGE_FILE: Final = "report.html"
CHART_FILES: Final[dict[str, str]] = {
    "invocations": "invocations.png",
    "weights": "weights.png",
    "metrics": "metrics.png",
    "confusion": "confusion.png",
}
SHADOW_CHART: Final = "shadow.png"  # drawn only when the rollout had a shadow stage


@dataclass
class RolloutSummary:
    """Everything the report shows about one rollout run.

    ``stages`` are the planned ``(champion_weight, challenger_weight)`` pairs;
    ``variant_results`` is a per-variant table indexed by variant name (as
    ``canary.models.evaluation.VariantReport.table()`` returns); ``invocations`` has columns
    ``timestamp``, ``variant``, ``invocations``; ``decisions`` are the gate's JSON-able records
    (at least ``stage``, ``weights``, ``verdict``, ``reason``, ``timestamp``), in time order.
    """

    run_id: str
    endpoint_name: str
    champion_variant: str
    challenger_variant: str
    champion_model: str
    challenger_model: str
    stages: list[tuple[float, float]]
    outcome: RunOutcome
    variant_results: pd.DataFrame = field(default_factory=pd.DataFrame)
    invocations: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(INVOCATION_COLUMNS))
    )
    decisions: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    shadow: bool = False  # a shadow stage ran before the canary ``stages``
    # why a person stopped the rollout (Reject, or no answer in time): every gate may have
    # promoted, and without it the page would show a rollback no decision explains
    rejected: str | None = None

    @property
    def stage_indices(self) -> tuple[int, ...]:
        """Every planned stage in order: the shadow stage first when there is one."""
        return stage_sequence(len(self.stages), self.shadow)

    def weights_of(self, index: int) -> tuple[float, float]:
        """What (champion, challenger) served in stage ``index``: the shadow serves no one."""
        return stage_split(self.stages, index)

    def __post_init__(self) -> None:
        if self.outcome not in set(RunOutcome):
            choices = ", ".join(RunOutcome)
            raise ValueError(f"outcome must be one of {choices}, got {self.outcome!r}")
        self.outcome = RunOutcome(self.outcome)
        for name in ("run_id", "endpoint_name", "champion_variant", "challenger_variant"):
            if not str(getattr(self, name) or "").strip():
                raise ValueError(f"{name} must not be empty")
        if self.champion_variant == self.challenger_variant:
            raise ValueError("champion_variant and challenger_variant must differ")
        self.stages = [_weight_pair(i, s) for i, s in enumerate(self.stages)]
        if not isinstance(self.variant_results, pd.DataFrame):
            raise TypeError("variant_results must be a pandas DataFrame")
        self.variant_results = _champion_first(self.variant_results, self)
        missing = [c for c in INVOCATION_COLUMNS if c not in self.invocations.columns]
        if missing:
            raise ValueError(f"invocations is missing columns: {', '.join(missing)}")
        for i, record in enumerate(self.decisions):
            if not isinstance(record, Mapping) or "verdict" not in record:
                raise ValueError(f"decisions[{i}] must be a dict with a 'verdict'")


def _champion_first(results: pd.DataFrame, summary: RolloutSummary) -> pd.DataFrame:
    """Champion, then challenger, then anything else (e.g. unrouted requests), in every table."""
    first = [summary.champion_variant, summary.challenger_variant]
    order = [v for v in first if v in results.index]
    order += [v for v in results.index if v not in first]
    return results.loc[order]


def _weight_pair(index: int, stage: Sequence[float]) -> tuple[float, float]:
    if len(stage) != 2 or any(float(w) < 0 for w in stage) or sum(map(float, stage)) <= 0:
        raise ValueError(f"stages[{index}] must be two non-negative weights, got {stage!r}")
    return float(stage[0]), float(stage[1])


def invocations_from_results(results: pd.DataFrame, freq: str = "1min") -> pd.DataFrame:
    """Count routed requests per variant per ``freq`` bucket, like CloudWatch ``Invocations``."""
    missing = [c for c in ("timestamp", "variant") if c not in results.columns]
    if missing:
        raise ValueError(f"replay results are missing columns: {', '.join(missing)}")
    routed = results.dropna(subset=["variant"])
    if routed.empty:
        return pd.DataFrame(columns=list(INVOCATION_COLUMNS))
    bucket = pd.to_datetime(routed["timestamp"], utc=True).dt.floor(freq)
    counts = routed.groupby([bucket, routed["variant"]]).size()
    return counts.rename("invocations").reset_index()


# ---------------------------------------------------------------- stages and verdicts


def _stage_index(record: Mapping[str, Any]) -> int | None:
    """Stage of a record: 0-based int, or a ``stage-N`` name (1-based)."""
    stage = record.get("stage")
    if isinstance(stage, int | np.integer) and not isinstance(stage, bool):
        return int(stage)
    match = re.fullmatch(r"stage-(\d+)", str(stage))
    return int(match.group(1)) - 1 if match else None


def stage_verdicts(summary: RolloutSummary) -> list[tuple[str | None, str | None]]:
    """Per planned stage (shadow first): the last decision's ``(verdict, reason)``, or
    ``(None, None)``."""
    last = _last_records(summary)
    return [
        (str(last[i]["verdict"]), str(last[i].get("reason", ""))) if i in last else (None, None)
        for i in summary.stage_indices
    ]


def _last_records(summary: RolloutSummary) -> dict[int, Mapping[str, Any]]:
    found: dict[int, Mapping[str, Any]] = {}
    for record in summary.decisions:
        index = _stage_index(record)
        if index in summary.stage_indices:
            found[index] = record
    return found


def _decided_on(record: Mapping[str, Any] | None) -> int | None:
    """How many requests the stage's gate had judged at its last look: pairs in the shadow
    stage (both models answered each), requests of both variants in a canary stage."""
    look = (record or {}).get("look") or ((record or {}).get("looks") or [None])[-1]
    if not look:
        return None
    if "n_pairs" in look:
        return int(look["n_pairs"])
    if "n_champion" not in look:
        return None
    return int(look["n_champion"]) + int(look["n_challenger"])


def stage_rows(summary: RolloutSummary) -> list[dict[str, Any]]:
    """Per planned stage, what the report shows of it: number (0: the shadow stage), name,
    weights served, verdict, reason; the page, the text summary and ``report.json`` read these."""
    last = _last_records(summary)
    return [
        {
            "number": index + 1,
            "name": stage_title(index),
            "weights": list(summary.weights_of(index)),
            "verdict": verdict,
            "reason": reason,
            "decided_on_requests": _decided_on(last.get(index)),
        }
        for index, (verdict, reason) in zip(
            summary.stage_indices, stage_verdicts(summary), strict=True
        )
    ]


def _row_label(row: Mapping[str, Any]) -> str:
    return "shadow" if row["number"] == SHADOW_NUMBER else stage_label(row["weights"])


def _weight_steps(summary: RolloutSummary) -> tuple[list[tuple[str, float, float]], list]:
    """Steps for the weights chart; a rollback replaces the stages it cut short."""
    steps = [(_row_label(row), *row["weights"]) for row in stage_rows(summary)]
    verdicts = [v for v, _ in stage_verdicts(summary)]
    if summary.outcome is RunOutcome.ROLLED_BACK:
        reached = [i for i, v in enumerate(verdicts) if v is not None]
        last = reached[-1] + 1 if reached else 0
        steps = [*steps[:last], ("rollback", 1.0, 0.0)]
        verdicts = [*verdicts[:last], Verdict.ROLLBACK.value]
    return steps, verdicts


# ---------------------------------------------------------------- formatting


def format_value(value: Any) -> str:
    """Readable text for any JSON-able scalar: 4 significant digits, ``n/a`` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    return str(value)


def flatten(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts to ``(dotted.key, value)`` pairs; lists of scalars stay one value."""
    pairs: list[tuple[str, Any]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            pairs.extend(flatten(value, f"{name}.") if value else [(name, "{}")])
        elif (
            isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value)
        ):
            for i, item in enumerate(value):
                pairs.extend(flatten(item, f"{name}[{i}]."))
        elif isinstance(value, list | tuple):
            pairs.append((name, ", ".join(format_value(v) for v in value) or "[]"))
        else:
            pairs.append((name, value))
    return pairs


def _table_frame(results: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in TABLE_COLUMNS if c in results.columns]
    return results[cols] if cols else results


def _confusions(results: pd.DataFrame) -> dict[str, np.ndarray]:
    if not {"tn", "fp", "fn", "tp"} <= set(results.columns):
        return {}
    out = {}
    for variant, row in results.iterrows():
        cells = pd.to_numeric(row[["tn", "fp", "fn", "tp"]], errors="coerce")
        if not cells.isna().any():
            out[str(variant)] = cells.to_numpy(dtype=float).reshape(2, 2)
    return out


# ---------------------------------------------------------------- text summary


def summary_text(summary: RolloutSummary) -> str:
    """One screen of plain text for the terminal: outcome, stage verdicts, per-variant table."""
    lines = [
        f"Rollout {summary.run_id} on {summary.endpoint_name}: "
        f"{summary.outcome.upper().replace('_', ' ')}",
        *([f"  rejected: {summary.rejected}"] if summary.rejected else []),
        f"  champion   {summary.champion_variant} (model {summary.champion_model})",
        f"  challenger {summary.challenger_variant} (model {summary.challenger_model})",
        f"  {_period(summary)}",
        "",
        "Stages (champion/challenger):",
    ]
    for row in stage_rows(summary):
        verdict_text = (row["verdict"] or "not reached").upper()
        label = _row_label(row)
        judged = row["decided_on_requests"]
        unit = "pairs" if row["number"] == SHADOW_NUMBER else "requests"
        on = f" [on {judged} {unit}]" if judged is not None else ""
        lines.append(f"  {row['number']}. {label:>7}  {verdict_text:<11} {row['reason'] or ''}{on}")
    lines += ["", "Per variant:", _text_table(summary.variant_results)]
    return "\n".join(lines).rstrip() + "\n"


def _period(summary: RolloutSummary) -> str:
    start = format_value(summary.started_at) if summary.started_at else "?"
    end = format_value(summary.ended_at) if summary.ended_at else "still running"
    text = f"from {start} to {end}"
    if summary.started_at and summary.ended_at:
        text += f" ({(summary.ended_at - summary.started_at).total_seconds() / 60:.1f} min)"
    return text


def _text_table(results: pd.DataFrame) -> str:
    if results.empty:
        return "  (no per-variant results)"
    table = _table_frame(results).drop(columns=["note"], errors="ignore")
    shown = table.map(format_value).T  # metrics down, variants across: fits a terminal
    shown.columns.name = None
    notes = results["note"].dropna() if "note" in results.columns else pd.Series(dtype=str)
    text = "\n".join("  " + line for line in shown.to_string().splitlines())
    return text + "".join(f"\n  note ({v}): {n}" for v, n in notes.items())


# ---------------------------------------------------------------- HTML


_CSS: Final[str] = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d1d1d;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.meta{color:#555}.badge{display:inline-block;padding:.15rem .6rem;border-radius:.3rem;color:#fff;
font-weight:600;letter-spacing:.03em}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
td table{margin:0;font-size:.85rem}
img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
.decision{border:1px solid #ddd;border-left:6px solid var(--c);border-radius:.3rem;
padding:.6rem 1rem;margin:1rem 0}
.reason{font-size:1.05rem;margin:.4rem 0}details summary{cursor:pointer;color:#333}
"""


def _esc(value: Any) -> str:
    return html.escape(format_value(value))


def _cell(value: Any) -> str:
    numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool
    )
    return f'<td class="num">{_esc(value)}</td>' if numeric else f"<td>{_esc(value)}</td>"


def _html_table(frame: pd.DataFrame, index_name: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [index_name, *frame.columns])
    rows = "".join(
        f"<tr><th>{html.escape(str(idx))}</th>{''.join(_cell(v) for v in row)}</tr>"
        for idx, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _badge(text: str, color: str) -> str:
    return f'<span class="badge" style="background:{color}">{html.escape(text)}</span>'


def _stage_name(summary: RolloutSummary, record: Mapping[str, Any]) -> str:
    index = _stage_index(record)
    if index == SHADOW_STAGE:
        return "Shadow stage (champion serves, challenger mirrored)"
    if index is not None and 0 <= index < len(summary.stages):
        return f"Stage {index + 1} ({stage_label(summary.stages[index])})"
    return f"Stage {format_value(record.get('stage'))}"


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple)


def _grid_html(rows: Mapping[str, Mapping[str, Any]], corner: str) -> str:
    """Records with similar keys (per-variant numbers, looks) as one grid: a row per record."""
    flat = {name: dict(flatten(row)) for name, row in rows.items()}
    columns = list(dict.fromkeys(k for row in flat.values() for k in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [corner, *columns])
    body = "".join(
        f"<tr><th>{html.escape(str(name))}</th>{''.join(_cell(row.get(c)) for c in columns)}</tr>"
        for name, row in flat.items()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def value_html(value: Any) -> str:
    """Any JSON-able value as readable HTML: scalars as text, mappings as key/value tables,
    mappings of mappings and lists of mappings as grids (one row per item)."""
    if isinstance(value, Mapping):
        if value and all(isinstance(v, Mapping) for v in value.values()):
            return _grid_html({str(k): v for k, v in value.items()}, "")
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th>"
            + (_cell(v) if _is_scalar(v) else f"<td>{value_html(v)}</td>")
            + "</tr>"
            for k, v in value.items()
        )
        return f"<table><tbody>{rows}</tbody></table>" if rows else "{}"
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, Mapping) for v in value):
            return _grid_html({str(i): v for i, v in enumerate(value)}, "#")
        return html.escape(", ".join(format_value(v) for v in value) or "[]")
    return _esc(value)


def _decision_html(summary: RolloutSummary, number: int, record: Mapping[str, Any]) -> str:
    verdict = str(record.get("verdict"))
    color = charts.VERDICT_COLORS.get(verdict, "#555")
    headline = {"verdict", "reason", "stage", "timestamp"}
    details = {k: v for k, v in record.items() if k not in headline}
    opened = " open" if verdict != Verdict.CONTINUE else ""
    return (
        f'<div class="decision" style="--c:{color}">'
        f"<div>{_badge(verdict.upper(), color)} <strong>{html.escape(_stage_name(summary, record))}"
        f"</strong> · decision {number} · {_esc(record.get('timestamp'))}</div>"
        f'<p class="reason">{_esc(record.get("reason", ""))}</p>'
        f"<details{opened}><summary>all numbers</summary>{value_html(details)}</details></div>"
    )


def _stages_html(summary: RolloutSummary) -> str:
    rows = []
    for row in stage_rows(summary):
        label = row["verdict"] or "not reached"
        badge = _badge(label.upper(), charts.VERDICT_COLORS.get(label, "#9e9e9e"))
        rows.append(
            f"<tr><th>{row['number']}</th><td>{html.escape(_row_label(row))}</td>"
            f"<td>{badge}</td><td>{_esc(row['reason'] or '')}</td></tr>"
        )
    head = "<tr><th>#</th><th>weights (champion/challenger)</th><th>verdict</th><th>reason</th>"
    return f"<table><thead>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def shadow_record(summary: RolloutSummary) -> Mapping[str, Any] | None:
    """The shadow stage's last decision record (its looks are all the looks taken), if any."""
    records = [r for r in summary.decisions if _stage_index(r) == SHADOW_STAGE]
    return records[-1] if records else None


def shadow_looks(record: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The paired test's looks: pairs, discordant counts, statistic and boundaries."""
    keys = ("look", "n_pairs", "champion_only", "challenger_only", "z", "efficacy", "futility")
    looks = (record or {}).get("looks") or []
    return [{key: look.get(key) for key in keys} for look in looks if "n_pairs" in look]


def _shadow_html(summary: RolloutSummary, chart_paths: Mapping[str, Path]) -> str:
    record = shadow_record(summary)
    if record is None:
        return ""
    paired = record.get("paired") or {}
    looks = shadow_looks(record)
    grid = _grid_html({str(look["look"]): look for look in looks}, "look") if looks else ""
    return (
        "<h2>Shadow stage: the same requests, both models</h2>"
        "<p>The champion served every request; the challenger answered a mirrored copy that "
        "no caller received. Each labelled request is one pair.</p>"
        f"{value_html(paired.get('table') or {})}"
        f"{_img(chart_paths, 'shadow', 'paired statistic and discordant pairs per look')}"
        f"{grid}"
    )


def _variants_html(summary: RolloutSummary) -> str:
    if summary.variant_results.empty:
        return "<p>No per-variant results.</p>"
    roles = {summary.champion_variant: "champion", summary.challenger_variant: "challenger"}
    table = _table_frame(summary.variant_results).copy()
    table.insert(0, "role", [roles.get(str(v), "") for v in table.index])
    return _html_table(table, "variant")


def _charts(summary: RolloutSummary, out_dir: Path) -> dict[str, Path]:
    names = (summary.champion_variant, summary.challenger_variant)
    others = [str(v) for v in summary.variant_results.index] + [
        str(v) for v in summary.invocations["variant"].unique()
    ]
    colors = charts.variant_colors(*names, others=others)
    markers = [
        (pd.Timestamp(r["timestamp"]), f"{_stage_name(summary, r)}: {r['verdict']}", r["verdict"])
        for r in summary.decisions
        if r.get("verdict") != Verdict.CONTINUE and r.get("timestamp")
    ]
    steps, verdicts = _weight_steps(summary)
    results = summary.variant_results
    inv = summary.invocations.assign(timestamp=pd.to_datetime(summary.invocations["timestamp"]))
    return {
        "invocations": charts.invocations_chart(
            inv, colors, out_dir / CHART_FILES["invocations"], markers
        ),
        "weights": charts.weights_chart(
            steps, verdicts, names, colors, out_dir / CHART_FILES["weights"]
        ),
        "metrics": charts.metrics_chart(results, colors, out_dir / CHART_FILES["metrics"]),
        "confusion": charts.confusion_chart(
            _confusions(results), colors, out_dir / CHART_FILES["confusion"]
        ),
        **_shadow_chart(summary, colors, out_dir),
    }


def _shadow_chart(summary: RolloutSummary, colors: Mapping[str, str], out_dir: Path) -> dict:
    record = shadow_record(summary)
    if record is None:
        return {}
    roles = {"champion": colors[summary.champion_variant]}
    roles["challenger"] = colors[summary.challenger_variant]
    path = out_dir / SHADOW_CHART
    return {"shadow": charts.paired_chart(shadow_looks(record), roles, path)}


def _img(paths: Mapping[str, Path], key: str, alt: str) -> str:
    return f'<img src="{html.escape(paths[key].name)}" alt="{html.escape(alt)}">'


def render_html(summary: RolloutSummary, chart_paths: Mapping[str, Path]) -> str:
    """The report page; images are referenced by relative file name (same directory)."""
    s = summary
    outcome_color = _OUTCOME_COLORS[s.outcome]
    decisions = "".join(_decision_html(s, i + 1, r) for i, r in enumerate(s.decisions))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Rollout {html.escape(s.run_id)}: {html.escape(s.outcome)}</title>
<style>{_CSS}</style></head><body>
<h1>Canary rollout {_badge(s.outcome.upper().replace("_", " "), outcome_color)}</h1>
{_rejected_html(s)}
<p class="meta">run <code>{html.escape(s.run_id)}</code> · endpoint
<code>{html.escape(s.endpoint_name)}</code> · {html.escape(_period(s))}</p>
<table><tbody>
<tr><th>champion</th><td>{html.escape(s.champion_variant)}</td>
<td>model <code>{html.escape(s.champion_model)}</code></td></tr>
<tr><th>challenger</th><td>{html.escape(s.challenger_variant)}</td>
<td>model <code>{html.escape(s.challenger_model)}</code></td></tr>
</tbody></table>
<h2>Stages</h2>{_stages_html(s)}
{_img(chart_paths, "weights", "traffic weights per stage")}
{_shadow_html(s, chart_paths)}
<h2>Traffic</h2>{_img(chart_paths, "invocations", "invocations per variant over time")}
<h2>Per-variant results</h2>{_variants_html(s)}
{_img(chart_paths, "metrics", "prediction quality per variant")}
{_img(chart_paths, "confusion", "confusion matrices per variant")}
<h2>Decision records ({len(s.decisions)})</h2>
{decisions or "<p>No decision was recorded.</p>"}
</body></html>
"""


def _rejected_html(s: RolloutSummary) -> str:
    if not s.rejected:
        return ""
    return f'<p class="rejected"><strong>Rejected:</strong> {html.escape(s.rejected)}</p>'


def report_data(summary: RolloutSummary) -> dict[str, Any]:
    """The report as data (``report.json``): what the page shows, for programs to read."""
    variants = summary.variant_results.astype(object)
    variants = variants.where(pd.notna(variants), None)
    return {
        "run_id": summary.run_id,
        "endpoint_name": summary.endpoint_name,
        "outcome": summary.outcome.value,
        "rejected": summary.rejected,
        "champion": {"variant": summary.champion_variant, "model": summary.champion_model},
        "challenger": {"variant": summary.challenger_variant, "model": summary.challenger_model},
        "started_at": summary.started_at.isoformat() if summary.started_at else None,
        "ended_at": summary.ended_at.isoformat() if summary.ended_at else None,
        "stages": stage_rows(summary),
        "shadow": _shadow_data(summary),
        "variants": {str(name): row for name, row in variants.to_dict(orient="index").items()},
        "decisions": summary.decisions,
    }


def _shadow_data(summary: RolloutSummary) -> dict[str, Any] | None:
    record = shadow_record(summary)
    if record is None:
        return None
    paired = record.get("paired") or {}
    return {"agreement": paired.get("table"), "looks": shadow_looks(record)}


def write_report(summary: RolloutSummary, out_dir: Path | str) -> Path:
    """Write ``report.html``, ``report.json`` and the PNG charts into ``out_dir``; return the
    HTML's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = _charts(summary, out)
    (out / DATA_FILE).write_text(json.dumps(report_data(summary), default=str), encoding="utf-8")
    target = out / PAGE_FILE
    target.write_text(render_html(summary, paths), encoding="utf-8")
    return target
