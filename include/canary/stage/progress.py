"""One line per gate look, for people watching a rollout rather than reading its records.

Why a logger of its own (``canary.progress``): under the scheduler the lines land in the gate
task's log like any other; a local runner (``make demo``) can send just this logger to the
terminal and everything else to a file. Why only looks: most pokes take no look (the evidence
has not reached the next planned information fraction) and have nothing new to say.
"""

from __future__ import annotations

import logging

from canary.experiment.gates.decision import Decision, Verdict
from canary.plan import SHADOW_STAGE, stage_label, stage_title

LOGGER = logging.getLogger("canary.progress")


def look_line(decision: Decision) -> str | None:
    """The decision's new look as one line, or None when it took no look and decided nothing.

    ``stage 1 [50/50]  look 3/10  requests 1200/1187  z=1.84 vs promote >= 2.10 / rollback <=
    -0.40  -> continue``. The verdict is the decision's, not the look's: a passed stage deadline
    overrules the look, and can end a stage on a poke that took none.
    """
    record = decision.record
    look = record.get("look")
    if look is None and decision.verdict is Verdict.CONTINUE:
        return None
    weights = stage_label(list(record["weights"].values()))
    shadow = record["stage"] == SHADOW_STAGE
    head = f"  {stage_title(record['stage'])}{'' if shadow else f' [{weights}]'}  "
    if look is None:
        return f"{head}no new look  -> {decision.verdict}"
    counts = f"requests {look['n_champion']}/{look['n_challenger']}"
    if shadow:
        counts = (
            f"pairs {look['n_pairs']} (only champion right {look['champion_only']}, "
            f"only challenger {look['challenger_only']})"
        )
    elif "exact" in look:  # the exact test decides on the pairs walked (engine.exact_test)
        walk = look["exact"]
        counts += (
            f", exact test at {walk['pairs']} pairs (errors {walk['champion_errors']}/"
            f"{walk['challenger_errors']})"
        )
    early = look.get("early_last", False)
    of = " (last: traffic spent)" if early else f"/{record['design']['planned_looks']}"
    return (
        f"{head}look {look['look']}{of}  {counts}  "
        f"z={_number(look['z'])} vs promote >= {_number(look['efficacy'])} "
        f"/ rollback <= {_number(look['futility'])}  -> {decision.verdict}"
    )


def announce(decision: Decision) -> None:
    """Log the decision's line on :data:`LOGGER`, if it has one."""
    line = look_line(decision)
    if line is not None:
        LOGGER.info(line)


def _number(value: float | None) -> str:
    """Statistics are None when not computable yet (too few outcomes) or not finite."""
    return "n/a" if value is None else f"{value:.2f}"
