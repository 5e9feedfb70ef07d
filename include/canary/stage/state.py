"""A stage gate's memory in S3: its looks, the champion's measured quality, every decision record.

Why S3 and not the task: the gate sensor reschedules between pokes and may run each poke in
another process (or after a worker dies); everything it must carry on with lives here.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from canary.aws_errors import is_missing
from canary.experiment.gates.decision import Decision, Verdict
from canary.plan import RolloutPlan
from canary.rollout.layout import stage_state_key
from canary.stage.window import StageWindow

LOOKS = "looks.json"
SETTLING = "settling.json"  # the spent stage's counts and since when they have not moved
CHAMPION = "champion.json"
DECIDED = "decided.json"  # the stage's final decision, once it has one
DECISIONS = "decisions/"  # every evaluation's record: decision_name
_STAMP = "%Y%m%dT%H%M%S%fZ"


def decision_name(at: datetime, verdict: Verdict) -> str:
    """A decision record's name in its stage's folder: ``decisions/<stamp>-<verdict>.json``,
    stamped to the microsecond so that a listing returns the records in the order written."""
    return f"{DECISIONS}{at.strftime(_STAMP)}-{verdict.value}.json"


def decision_of(key: str) -> tuple[datetime, Verdict] | None:
    """When a decision record was written and its verdict, from its key; None for any other."""
    stamp, _, verdict = key.rsplit("/", 1)[-1].removesuffix(".json").partition("-")
    try:
        return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC), Verdict(verdict)
    except ValueError:
        return None


class StageState:
    """The S3 folder of one stage of one run (and read access to the stages before it), seen
    from one window of the stage. A cleared stage opens a new window, which starts afresh:
    the looks, the decision and the settle clock of an earlier window are not its own."""

    def __init__(self, s3: Any, plan: RolloutPlan, run_key: str, window: StageWindow) -> None:
        self.s3, self.plan, self.run_key, self.window = s3, plan, run_key, window

    @property
    def stage(self) -> int:
        return self.window.index

    @property
    def opened_at(self) -> datetime:
        return self.window.opened_at

    def save(self, name: str, value: Any) -> None:
        self._put(name, json.dumps(value).encode())

    def load(self, name: str, default: Any, stage: int | None = None) -> Any:
        """A stored JSON value of this stage (or of an earlier ``stage``), ``default`` if none."""
        key = stage_state_key(self.plan, self.run_key, self._index(stage), name)
        try:
            body = self.s3.get_object(Bucket=self.plan.bucket, Key=key)["Body"]
        except ClientError as error:
            if is_missing(error):
                return default
            raise
        return json.loads(body.read())

    def record(self, decision: Decision, looks: list[dict[str, Any]]) -> None:
        """Every evaluation leaves its decision record, then the looks it is based on. A final
        one is kept as the stage's decision before its looks: if a write fails between them,
        the retry finds the decision, not a final look it would take as one still to come
        (and test on past a crossed boundary)."""
        self._put(decision_name(datetime.now(UTC), decision.verdict), decision.to_json().encode())
        if decision.verdict is not Verdict.CONTINUE:
            self._put(DECIDED, decision.to_json().encode())
        self.save(LOOKS, looks)

    def looks(self) -> list[dict[str, Any]]:
        """The looks taken in this window: its sequential test does not go on from an earlier
        window's looks."""
        looks = self.load(LOOKS, default=[])
        return [look for look in looks if datetime.fromisoformat(look["at"]) >= self.opened_at]

    def decided(self) -> Decision | None:
        """This window's final decision, if a poke already made it. A retried gate task returns
        it instead of looking again: a sequential test that crossed a boundary has ended, and
        testing on could flip a verdict that was already recorded (and acted on)."""
        record = self.load(DECIDED, default=None)
        if record is None or record.get("stage_started_at") != self.opened_at.isoformat():
            return None
        return Decision(Verdict(record["verdict"]), record["reason"], record)

    def unchanged_for(self, name: str, value: Any, seconds: float) -> bool:
        """Whether ``value`` (JSON) has been this window's ``name`` for at least ``seconds``,
        across pokes: it is stored with the time whenever it differs from the stored one."""
        now, value = time.time(), json.loads(json.dumps(value))  # compared as stored
        seen = self.load(name, default=None)
        window = self.opened_at.isoformat()
        if seen is None or (seen.get("window"), seen["value"]) != (window, value):
            self.save(name, {"window": window, "value": value, "since": now})
            return False
        return now - seen["since"] >= seconds

    def _put(self, name: str, body: bytes) -> None:
        key = stage_state_key(self.plan, self.run_key, self.stage, name)
        self.s3.put_object(Bucket=self.plan.bucket, Key=key, Body=body)

    def _index(self, stage: int | None) -> int:
        return self.stage if stage is None else stage
