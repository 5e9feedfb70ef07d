"""A stage's counts walked over the exact test's lattice (:mod:`.lattice`), a decision at a time.

Why a walk with a drawn arrangement: the exact test decides every ``step`` pairs, the i-th pair
being each variant's i-th answer, but a poke sees only each variant's counts, and pokes land
where the traffic puts them. Under the test's model each variant's outcomes are independent and
alike, so given how many of a batch are errors, every order of them is equally likely: drawing
one (a hypergeometric draw of the errors among the next pairs, per decision) makes a sequence
with exactly the law the test was planned on, and its error rates hold however the pokes fall.
Only answers no decision has used are drawn from, so what a decision saw never changes. The
draw is seeded by the stage (its number and start time), never by outcomes, and by the pairs
walked so far, so a retried poke that reads the same counts decides as the first try did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from canary.experiment.gates.lattice import CONTINUE, ExactTest

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Walk:
    """Where a stage stands on the lattice: pairs used by decisions so far, and the errors of
    each variant among them."""

    pairs: int = 0
    champion_errors: int = 0
    challenger_errors: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def behind(self, champion: Answers, challenger: Answers) -> str | None:
        """Why the answers counted now are fewer than this walk used (a read that lags), or
        None when they hold it."""
        for name, answers, errors in (
            ("champion", champion, self.champion_errors),
            ("challenger", challenger, self.challenger_errors),
        ):
            if answers.errors < errors or answers.n - answers.errors < self.pairs - errors:
                return (
                    f"{name}: {answers.errors} errors of {answers.n} answers, fewer than the "
                    f"{errors} of {self.pairs} an earlier look walked"
                )
        return None

    @classmethod
    def of(cls, record: dict[str, Any] | None) -> Walk:
        """The walk kept in a look record (None: the stage's start)."""
        if not record:
            return cls()
        return cls(**{key: int(record[key]) for key in asdict(cls())})


@dataclass(frozen=True)
class Answers:
    """One variant's labelled answers so far: how many, and how many were wrong."""

    n: int
    errors: int

    def __post_init__(self) -> None:
        if not 0 <= self.errors <= self.n:
            raise ValueError(f"answers: need 0 <= errors <= n, got {self.errors} of {self.n}")


def seed(stage: int, started_at: datetime) -> tuple[int, int]:
    """The stage's own seed: fixed before any outcome, the same at every poke (its start in
    whole microseconds, read as UTC when it carries no zone)."""
    start = started_at if started_at.tzinfo else started_at.replace(tzinfo=UTC)
    return stage, (start - EPOCH) // timedelta(microseconds=1)


def advance(
    test: ExactTest, walk: Walk, champion: Answers, challenger: Answers, stage_seed: tuple[int, int]
) -> tuple[Walk, int | None]:
    """Walk on over the decisions the counts now reach: the new position and the action of the
    last decision visited (the first that is not CONTINUE ends the walk), or None when no
    decision is reached yet."""
    behind = walk.behind(champion, challenger)
    if behind is not None:
        raise ValueError(f"{behind}: the evidence went back")
    pools = [
        (a.n - a.errors - (walk.pairs - e), a.errors - e)
        for a, e in ((champion, walk.champion_errors), (challenger, walk.challenger_errors))
    ]
    reach = min(champion.n, challenger.n)
    rng = np.random.default_rng([*stage_seed, walk.pairs])
    action = None
    step, last = test.problem.step, min(reach, test.problem.max_pairs)
    for n in range(walk.pairs + step, last + 1, step):
        draws = n - walk.pairs
        errors = [int(rng.hypergeometric(bad, good, draws)) for good, bad in pools]
        pools = [(good - draws + e, bad - e) for (good, bad), e in zip(pools, errors, strict=True)]
        walk = Walk(n, walk.champion_errors + errors[0], walk.challenger_errors + errors[1])
        action = test.action(n, walk.champion_errors, walk.challenger_errors)
        if action != CONTINUE:
            break
    return walk, action
