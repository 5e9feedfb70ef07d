"""Charts are inline SVG carrying ``data-chart``; pages carry the data attributes a browser
test finds (one row per run, the approval link, the three charts) and ship no network asset."""

from __future__ import annotations

from collections.abc import Callable

import lxml.etree
import lxml.html
import pytest

from canary.plan import RolloutPlan
from canary_airflow.dashboard import charts, page
from canary_airflow.dashboard.shaping import Links, RunRecords, rollout_detail, rollout_summary

LINKS = Links()
SVG = "{http://www.w3.org/2000/svg}svg"


def _svg(markup: str) -> lxml.etree._Element:
    root = lxml.etree.fromstring(markup.encode())
    assert root.tag == SVG
    return root


@pytest.mark.parametrize("chart", charts.CHARTS)
def test_each_chart_is_svg_with_its_data_attribute(
    chart: str, finished_run: RunRecords, plan: RolloutPlan
) -> None:
    draw = getattr(charts, f"{chart}_chart")
    root = _svg(draw(rollout_detail(finished_run, LINKS)))
    assert root.get("data-chart") == chart
    texts = set(root.itertext())
    if chart != "gate":  # the gate chart is per stage, not per variant
        assert set(plan.variants) <= texts  # legend entries, kept as text


def test_gate_chart_has_one_panel_per_stage(finished_run: RunRecords) -> None:
    root = _svg(charts.gate_chart(rollout_detail(finished_run, LINKS)))
    titles = [t for t in root.itertext() if t.startswith("Stage ")]
    assert titles == ["Stage 1: z vs boundaries", "Stage 2: z vs boundaries"]


@pytest.mark.parametrize("chart", charts.CHARTS)
def test_charts_of_a_run_with_nothing_yet_still_render(chart: str) -> None:
    empty = rollout_detail(RunRecords(dag_id="d", run_id="r", state="queued"), LINKS)
    assert _svg(getattr(charts, f"{chart}_chart")(empty)).get("data-chart") == chart


def test_rollouts_page_has_a_row_per_run_and_the_approval_link(
    finished_run: RunRecords, make_awaiting: Callable[..., RunRecords]
) -> None:
    rows = [rollout_summary(run, LINKS) for run in (make_awaiting(), finished_run)]
    doc = lxml.html.fromstring(page.rollouts_page(rows, LINKS))
    assert doc.xpath("//tr/@data-run-id") == [row["run_id"] for row in rows]
    approval = doc.xpath("//a[@class='approval']")[0]
    assert approval.get("href") == rows[0]["pending_approval"]["link"]
    assert approval.get("target") == "_top"  # leaves Airflow's iframe for the Required Actions
    assert doc.xpath("//body/@data-refresh-seconds") == [str(page.REFRESH_SECONDS)]


def test_run_page_has_the_three_charts_and_only_local_assets(finished_run: RunRecords) -> None:
    doc = lxml.html.fromstring(page.run_page(rollout_detail(finished_run, LINKS), LINKS))
    assert sorted(doc.xpath("//svg/@data-chart")) == sorted(charts.CHARTS)
    assets = doc.xpath("//link/@href | //script/@src | //img/@src")
    assert assets and all(url.startswith("/canary/static/") for url in assets)
    assert doc.xpath("//body/@data-refresh-seconds") == ["0"]  # finished: no reload


def test_page_text_is_escaped(finished_run: RunRecords) -> None:
    row = rollout_summary(finished_run, LINKS) | {"endpoint": "<script>alert(1)</script>"}
    doc = lxml.html.fromstring(page.rollouts_page([row], LINKS))
    assert not doc.xpath("//td//script")
    assert "<script>alert(1)</script>" in doc.text_content()


def test_the_shadow_stage_shows_as_such_not_as_no_stage(shadow_run: RunRecords) -> None:
    """Its number is 0: a page that tested it for truth showed "–", as before any stage."""
    detail = rollout_detail(shadow_run, LINKS)
    doc = lxml.html.fromstring(page.run_page(detail, LINKS))
    assert doc.xpath("string(//dt[.='Stage']/following-sibling::dd[1])") == "shadow"
    rows = lxml.html.fromstring(page.rollouts_page([rollout_summary(shadow_run, LINKS)], LINKS))
    assert "shadow" in [cell.text_content().strip() for cell in rows.xpath("//tr/td")]
