"""The rollout report: HTML + PNG charts that carry the decision records and per-variant table."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lxml.html
import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from canary.experiment.gates.decision import Verdict
from canary.models import churn, evaluation, training
from canary.plan import Framework, stage_label
from canary.reporting import report
from canary.rollout.outcome import RunOutcome

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


def page_of(written: Path) -> lxml.html.HtmlElement:
    return lxml.html.fromstring(written.read_text())


def text(element: lxml.html.HtmlElement) -> str:
    return element.text_content().strip()


def table_after(page: lxml.html.HtmlElement, heading: str) -> list[list[str]]:
    """The cells (header and data) of the first table after an ``<h2>`` heading, row by row."""
    (table,) = page.xpath(f"//h2[starts-with(., '{heading}')]/following-sibling::table[1]")
    return [[text(cell) for cell in row.xpath("./th|./td")] for row in table.iter("tr")]


def test_html_references_charts_relatively(written: Path) -> None:
    sources = page_of(written).xpath("//img/@src")
    assert sorted(sources) == sorted(report.CHART_FILES.values())


def test_report_data_holds_every_stage_decision_and_variant(
    written: Path, summary: report.RolloutSummary
) -> None:
    data = json.loads((written.parent / report.DATA_FILE).read_text())
    assert (data["run_id"], data["outcome"]) == ("run-42", RunOutcome.ROLLED_BACK)
    assert [(stage["weights"], stage["verdict"]) for stage in data["stages"]] == [
        ([0.5, 0.5], Verdict.PROMOTE),
        ([0.25, 0.75], Verdict.ROLLBACK),
        ([0.0, 1.0], None),
    ]
    assert data["stages"][1]["reason"] == _decisions()[1]["reason"]
    assert data["decisions"] == _decisions()
    for variant, row in summary.variant_results.iterrows():
        assert data["variants"][variant]["accuracy"] == pytest.approx(row["accuracy"])
        assert data["variants"][variant]["latency_p99_ms"] == pytest.approx(row["latency_p99_ms"])


def test_html_stage_table_matches_the_data(written: Path) -> None:
    data = json.loads((written.parent / report.DATA_FILE).read_text())
    rows = table_after(page_of(written), "Stages")[1:]
    expected = [
        [
            str(stage["number"]),
            stage_label(stage["weights"]),
            (stage["verdict"] or "not reached").upper(),
            stage["reason"] or "",
        ]
        for stage in data["stages"]
    ]
    assert rows == expected


def test_html_shows_every_decision_with_its_numbers(written: Path) -> None:
    page = page_of(written)
    decisions = page.xpath("//div[@class='decision']")
    assert len(decisions) == len(_decisions())
    for element, record in zip(decisions, _decisions(), strict=True):
        assert text(element.xpath(".//p[@class='reason']")[0]) == record["reason"]
        assert text(element.xpath(".//span[@class='badge']")[0]) == record["verdict"].upper()
    assert not page.xpath("//b")  # the reason's markup is escaped, never injected
    cells = {text(cell) for cell in page.xpath("//div[@class='decision']//td")}
    assert {"2.346", "0.8123", "4242", "0.000731", "0.9187"} <= cells
    headings = [text(e) for e in page.xpath("//div[@class='decision']//strong")]
    assert headings == ["Stage 1 (50/50)", "Stage 2 (25/75)"]


def test_html_has_the_per_variant_table(written: Path, summary: report.RolloutSummary) -> None:
    header, *rows = table_after(page_of(written), "Per-variant results")
    by_variant = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    for variant, row in summary.variant_results.iterrows():
        assert by_variant[variant]["accuracy"] == report.format_value(row["accuracy"])
        assert by_variant[variant]["latency_p99_ms"] == report.format_value(row["latency_p99_ms"])
    badge = page_of(written).xpath("//h1/span[@class='badge']")[0]
    assert text(badge) == "ROLLED BACK"


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
    written = report.write_report(empty, tmp_path)
    assert not page_of(written).xpath("//div[@class='decision']")
    assert table_after(page_of(written), "Stages")[1][2] == "NOT REACHED"
    data = json.loads((tmp_path / report.DATA_FILE).read_text())
    assert data["decisions"] == [] and data["variants"] == {}
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


def test_the_shadow_chart_draws_looks_with_missing_bounds(tmp_path: Path) -> None:
    """A record stores an infinite bound as null (JSON has no infinity): a look the design
    gave no futility bound, or no statistic yet, is drawn without that point."""
    from canary.reporting.charts import _plottable, paired_chart

    assert np.isnan([_plottable(v) for v in (None, np.inf, -np.inf)]).all()
    assert _plottable(2.4) == 2.4

    looks = [
        {"n_pairs": 200, "z": 0.4, "efficacy": 3.1, "futility": -1.2,
         "champion_only": 9, "challenger_only": 11},
        {"n_pairs": 400, "z": None, "efficacy": 2.4, "futility": None,
         "champion_only": 17, "challenger_only": 22},
    ]  # fmt: skip
    colors = {"champion": "#1f77b4", "challenger": "#ff7f0e"}
    path = paired_chart(looks, colors, tmp_path / "paired.png")
    assert imread(path).shape[0] > 100


def test_a_persons_rejection_is_said_in_the_report(
    summary: report.RolloutSummary, tmp_path: Path
) -> None:
    """Every gate may have promoted: a rollback a person decided must say so, on the page,
    in report.json and in summary.txt, not look like a gate's decision."""
    why = "stage 2: alice rejected the promotion"
    rejected = dataclasses.replace(summary, rejected=why)
    page = report.write_report(rejected, tmp_path)
    assert lxml.html.parse(str(page)).xpath("string(//p[@class='rejected'])") == f"Rejected: {why}"
    assert json.loads((tmp_path / report.DATA_FILE).read_text())["rejected"] == why
    assert f"rejected: {why}" in report.summary_text(rejected)
    assert json.loads((report.write_report(summary, tmp_path / "plain").parent
                       / report.DATA_FILE).read_text())["rejected"] is None  # fmt: skip
