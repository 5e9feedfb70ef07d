"""The dashboard's HTML: Jinja templates shipped in this package, charts inlined as SVG.

Autoescaped throughout: a decision's reason or an approval's subject is text, never markup.
Pages served while a run is going on ask the shipped script to reload them every few seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from canary.plan import stage_index, stage_title
from canary_airflow import ids
from canary_airflow.dashboard import TITLE
from canary_airflow.dashboard.shaping import Links

REFRESH_SECONDS: Final = 10
STATIC_FILES: Final = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}

_ENV = Environment(
    loader=PackageLoader("canary_airflow.dashboard", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
)


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.0f} %"


def _weights(weights: Mapping[str, float] | None) -> str:
    """``Champion 25 % · Challenger 75 %``"""
    if not weights:
        return "–"
    return " · ".join(f"{variant} {_percent(share)}" for variant, share in weights.items())


def _stage_title(number: int) -> str:
    """A dashboard stage number (its index + 1; 0 is the shadow stage) as people read it."""
    return stage_title(stage_index(number))


_ENV.filters["percent"] = _percent
_ENV.filters["weights"] = _weights
_ENV.filters["stage_title"] = _stage_title
_ENV.globals["SHADOW_NUMBER"] = ids.SHADOW_NUMBER


def rollouts_page(rows: Sequence[Mapping[str, Any]], links: Links) -> str:
    """The table of rollouts, one row per run."""
    refresh = any(row["running"] for row in rows)
    return _render("rollouts.html", links, refresh, rows=rows)


def run_page(detail: Mapping[str, Any], links: Links) -> str:
    """One run: its summary, stages and the three charts."""
    from canary_airflow.dashboard import charts  # matplotlib: loaded on the first chart only

    svgs = {
        "weights": charts.weights_chart(detail),
        "gate": charts.gate_chart(detail),
        "variants": charts.variants_chart(detail),
    }
    charted = {name: Markup(svg) for name, svg in svgs.items()}  # our own SVG, not user text
    return _render("run.html", links, detail["running"], run=detail, charts=charted)


def message_page(heading: str, message: str, links: Links) -> str:
    """A page that only says something: not a rollout run, no such run."""
    return _render("message.html", links, False, heading=heading, message=message)


def _render(template: str, links: Links, refresh: bool, **context: Any) -> str:
    return _ENV.get_template(template).render(
        title=TITLE, links=links, refresh_seconds=REFRESH_SECONDS if refresh else 0, **context
    )
