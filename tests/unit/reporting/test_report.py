"""The rollout report: HTML + PNG charts that carry the decision records and per-variant table."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from canary.models import churn, evaluation, training
from canary.plan import Framework
from canary.reporting import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def replay() -> pd.DataFrame:
    """A replay of real model scores: champion (stumps) and challenger on the same customers."""
    train = churn.generate(1500, seed=21, day=5)
    data = churn.generate(600, seed=22, day=5)
    models = {
        "Variant1": training.train_xgboost(train, {"max_depth": 1}, num_round=5, seed=1),
        "Variant2": training.train_xgboost(train, {"max_depth": 4}, num_round=40, seed=1),
    }
    scores = {
        v: training.ChurnScorer(Framework.XGBOOST, m).predict(data) for v, m in models.items()
    }
    rng = np.random.default_rng(3)
    rows = []
    for i, (_, customer) in enumerate(data.iterrows()):
        stage = 0 if i < 300 else 1
        variant = "Variant1" if rng.random() < (0.5 if stage == 0 else 0.25) else "Variant2"
        score = float(scores[variant][i])
        status = 500 if i % 97 == 0 else 200
        rows.append(
            {
                "stage": stage,
                "user_id": f"user-{i}",
                "inference_id": f"inf-{i}",
                "variant": variant,
                "target_variant": None,
                "propensity": None,
                "score": score if status == 200 else None,
                "label": int(customer[churn.LABEL]),
                "reward": None,
                "latency_ms": float(rng.gamma(3.0, 2.0)),
                "status": status,
                "error_code": None if status == 200 else "ModelError",
                "timestamp": pd.Timestamp(START) + pd.Timedelta(seconds=4 * i),
            }
        )
    return pd.DataFrame(rows)


def _decisions() -> list[dict]:
    looks = [
        {"look": 1, "fraction": 0.5, "z": 0.8123, "verdict": "continue"},
        {"look": 2, "fraction": 1.0, "z": 2.3456, "verdict": "promote"},
    ]
    return [
        {
            "stage": 0,
            "weights": {"Variant1": 0.5, "Variant2": 0.5},
            "verdict": "promote",
            "reason": "challenger non-inferior: z=2.346 > 2.011 <b>bold?</b>",
            "timestamp": (START + timedelta(minutes=19)).isoformat(),
            "variants": {
                "Variant1": {"requests": 150, "errors_5xx": 2, "quality_mean": 0.8711},
                "Variant2": {"requests": 150, "errors_5xx": 1, "quality_mean": 0.9187},
            },
            "design": {"alpha": 0.05, "margin": 0.03, "max_requests": {"total": 4242}},
            "looks": looks,
        },
        {
            "stage": 1,
            "weights": {"Variant1": 0.25, "Variant2": 0.75},
            "verdict": "rollback",
            "reason": "challenger 5XX rate 3.1% exceeds the 1% guardrail",
            "timestamp": (START + timedelta(minutes=39)).isoformat(),
            "guardrails": {"rate_5xx": 0.031, "limit": 0.01, "p_value": 0.000731},
        },
    ]


@pytest.fixture(scope="module")
def summary(replay: pd.DataFrame) -> report.RolloutSummary:
    return report.RolloutSummary(
        run_id="run-42",
        endpoint_name="churn-endpoint",
        champion_variant="Variant1",
        challenger_variant="Variant2",
        champion_model="churn-v1",
        challenger_model="churn-v2",
        stages=[(0.5, 0.5), (0.25, 0.75), (0.0, 1.0)],
        outcome="rolled_back",
        variant_results=evaluation.evaluate_variants(replay).table(),
        invocations=report.invocations_from_results(replay),
        decisions=_decisions(),
        started_at=START,
        ended_at=START + timedelta(minutes=40),
    )


@pytest.fixture(scope="module")
def written(summary: report.RolloutSummary, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return report.write_report(summary, tmp_path_factory.mktemp("report"))


def test_writes_html_and_every_chart_as_a_real_png(written: Path) -> None:
    assert written.name == "report.html"
    for name in report.CHART_FILES.values():
        png = written.parent / name
        assert png.read_bytes()[:8] == PNG_MAGIC
        height, width, _ = imread(png).shape
        assert width > 300 and height > 200


def test_html_references_charts_relatively(written: Path) -> None:
    page = written.read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(sources) == sorted(report.CHART_FILES.values())
    assert str(written.parent) not in page


def test_html_shows_every_decision_with_its_numbers(written: Path) -> None:
    page = written.read_text()
    for record in _decisions():
        assert html.escape(record["reason"]) in page
        assert record["verdict"].upper() in page
    assert "<b>bold?</b>" not in page  # escaped, never injected
    for number in ("2.346", "0.8123", "4242", "0.000731", "0.9187"):
        assert f">{number}<" in page
    assert "Stage 2 (25/75)" in page


def test_html_has_the_per_variant_table(written: Path, summary: report.RolloutSummary) -> None:
    page = written.read_text()
    for variant, row in summary.variant_results.iterrows():
        assert f"<th>{variant}</th>" in page
        assert f">{report.format_value(row['accuracy'])}<" in page
        assert f">{report.format_value(row['latency_p99_ms'])}<" in page
    assert "ROLLED BACK" in page


def test_text_summary_fits_a_screen_and_says_why(summary: report.RolloutSummary) -> None:
    text = report.summary_text(summary)
    assert text.startswith("Rollout run-42 on churn-endpoint: ROLLED BACK")
    assert "50/50  PROMOTE" in text
    assert "25/75  ROLLBACK    challenger 5XX rate 3.1% exceeds the 1% guardrail" in text
    assert "0/100  NOT REACHED" in text
    acc = summary.variant_results["accuracy"]
    assert report.format_value(acc["Variant1"]) in text
    assert report.format_value(acc["Variant2"]) in text
    assert len(text.splitlines()) <= 40


def test_champion_is_listed_first(summary: report.RolloutSummary) -> None:
    assert list(summary.variant_results.index[:2]) == ["Variant1", "Variant2"]


def test_invocations_count_every_routed_request(replay: pd.DataFrame) -> None:
    counts = report.invocations_from_results(replay, freq="1min")
    assert list(counts.columns) == ["timestamp", "variant", "invocations"]
    assert counts["invocations"].sum() == replay["variant"].notna().sum()
    by_variant = counts.groupby("variant")["invocations"].sum()
    assert by_variant.to_dict() == replay["variant"].value_counts().to_dict()


def test_report_without_any_evidence_still_renders(tmp_path: Path) -> None:
    empty = report.RolloutSummary(
        run_id="run-0",
        endpoint_name="ep",
        champion_variant="A",
        challenger_variant="B",
        champion_model="m-a",
        challenger_model="m-b",
        stages=[(1, 1)],
        outcome="failed",
    )
    page = report.write_report(empty, tmp_path).read_text()
    assert "No decision was recorded." in page
    assert "NOT REACHED" in page
    assert all((tmp_path / name).is_file() for name in report.CHART_FILES.values())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"outcome": "won"}, "outcome"),
        ({"stages": [(0.5, 0.5), (-1, 2)]}, r"stages\[1\]"),
        ({"challenger_variant": "A"}, "challenger_variant"),
        ({"run_id": " "}, "run_id"),
        ({"decisions": [{"stage": 0}]}, r"decisions\[0\]"),
        ({"invocations": pd.DataFrame({"timestamp": []})}, "variant"),
    ],
)
def test_bad_summary_fields_are_named(change: dict, field: str) -> None:
    base = {
        "run_id": "r",
        "endpoint_name": "ep",
        "champion_variant": "A",
        "challenger_variant": "B",
        "champion_model": "m-a",
        "challenger_model": "m-b",
        "stages": [(0.5, 0.5)],
        "outcome": "promoted",
    }
    with pytest.raises(ValueError, match=field):
        report.RolloutSummary(**{**base, **change})
