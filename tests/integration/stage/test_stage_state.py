"""A stage's memory on the local stack's S3: once its gate has decided, the stage stays decided."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace

import pytest

from canary.experiment.gates.decision import Decision, Verdict
from canary.plan import parse_plan
from canary.stage.gate import StageGate
from canary.stage.state import LOOKS, SETTLING, StageState, decision_of
from canary.stage.window import StageWindow


@pytest.fixture
def aws(local_stack) -> SimpleNamespace:
    return SimpleNamespace(s3=local_stack.client("s3"), cloudwatch=local_stack.client("cloudwatch"))


def _decisions(aws: SimpleNamespace, bucket: str) -> list[str]:
    listed = aws.s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed if decision_of(item["Key"]) is not None)


def test_a_retried_gate_gets_the_recorded_decision_back_and_takes_no_new_look(aws) -> None:
    """A poke that recorded a promotion and then died must not make its retry test on: the
    sequential test ended when it crossed the boundary. A cleared stage opens a new window,
    which decides anew."""
    bucket = f"decided-{uuid.uuid4().hex[:8]}"
    aws.s3.create_bucket(Bucket=bucket)
    plan = parse_plan({"bucket": bucket})
    window = StageWindow(0, plan.stage_weights(0), started_at=time.time())
    state = StageState(aws.s3, plan, "run", window)
    opened = window.opened_at.isoformat()
    look = {"look": 1, "verdict": Verdict.CONTINUE.value, "at": opened}
    going = {"verdict": "continue", "stage_started_at": opened}
    state.record(Decision(Verdict.CONTINUE, "next look at 0.08", going), [look])
    assert state.decided() is None
    second = {"look": 2, "verdict": "promote", "at": opened}
    promoted = {"verdict": "promote", "reason": "non-inferior at look 2", "look": second,
                "stage_started_at": opened}  # fmt: skip
    state.record(Decision(Verdict.PROMOTE, promoted["reason"], promoted), [look, promoted["look"]])
    before = _decisions(aws, bucket)

    decision = StageGate(aws, plan, window, "run").hold(budget_seconds=60)

    assert decision.verdict is Verdict.PROMOTE
    assert decision.reason == promoted["reason"] and decision.record["look"] == second
    assert _decisions(aws, bucket) == before  # no look was taken, so no traffic was sent
    cleared = StageWindow(0, plan.stage_weights(0), started_at=window.started_at + 60)
    anew = StageState(aws.s3, plan, "run", cleared)
    assert anew.decided() is None
    assert state.looks() == [look, second] and anew.looks() == []


def test_a_value_is_unchanged_only_after_it_stayed_put_for_the_time_asked(aws) -> None:
    """How a spent stage knows its counts have settled, poke after poke (no clock waited on:
    an hour is never reached, no time always is)."""
    bucket = f"settle-{uuid.uuid4().hex[:8]}"
    aws.s3.create_bucket(Bucket=bucket)
    plan = parse_plan({"bucket": bucket})
    window = StageWindow(0, plan.stage_weights(0), started_at=time.time())
    state = StageState(aws.s3, plan, "run", window)
    hour = 3600.0
    assert state.unchanged_for(SETTLING, [1, 2], 0.0) is False  # first seen now
    first = state.load(SETTLING, None)["since"]
    assert state.unchanged_for(SETTLING, [1, 2], hour) is False  # not long enough yet
    assert state.unchanged_for(SETTLING, [1, 2], 0.0) is True  # the same value, kept
    assert state.load(SETTLING, None)["since"] == first
    assert state.unchanged_for(SETTLING, [1, 3], 0.0) is False  # moved: the clock restarts
    assert state.load(SETTLING, None)["since"] > first
    assert state.unchanged_for(SETTLING, (1, 3), 0.0) is True  # compared as stored (JSON)
    cleared = StageWindow(0, plan.stage_weights(0), started_at=window.started_at + 60)
    anew = StageState(aws.s3, plan, "run", cleared)
    assert anew.unchanged_for(SETTLING, [1, 3], 0.0) is False  # a new window: its own clock


class _LooksWriteFails:
    """The stack's S3, except that saving the looks fails (a worker that dies there)."""

    def __init__(self, s3) -> None:
        self._s3 = s3

    def put_object(self, **kwargs):
        if kwargs["Key"].endswith(LOOKS):
            raise ConnectionError("the worker died while saving the looks")
        return self._s3.put_object(**kwargs)

    def __getattr__(self, name: str):
        return getattr(self._s3, name)


def test_a_decision_is_kept_before_its_looks_so_a_failed_save_loses_nothing(aws) -> None:
    """A final decision whose looks could not be saved: the retry must find the decision, not
    a look history without its final look, from which it would go on testing."""
    bucket = f"torn-{uuid.uuid4().hex[:8]}"
    aws.s3.create_bucket(Bucket=bucket)
    plan = parse_plan({"bucket": bucket})
    window = StageWindow(0, plan.stage_weights(0), started_at=time.time())
    opened = window.opened_at.isoformat()
    final = {"look": 1, "verdict": Verdict.ROLLBACK.value, "at": opened}
    record = {"verdict": "rollback", "reason": "futility at look 1", "stage_started_at": opened}
    torn = StageState(_LooksWriteFails(aws.s3), plan, "run", window)

    with pytest.raises(ConnectionError):
        torn.record(Decision(Verdict.ROLLBACK, record["reason"], record), [final])

    retried = StageState(aws.s3, plan, "run", window)
    assert retried.looks() == []  # the final look was never saved
    decided = retried.decided()
    assert decided is not None and decided.verdict is Verdict.ROLLBACK
    assert decided.reason == record["reason"]
