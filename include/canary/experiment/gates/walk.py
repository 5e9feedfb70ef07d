"""A stage's counts walked over the exact test's lattice (:mod:`.lattice`), a decision at a time.

Why a walk with a drawn arrangement: the exact test decides every ``step`` pairs, the i-th pair
being each variant's i-th answer, but a poke sees only each variant's counts, and pokes land
where the traffic puts them. Under the test's model each variant's outcomes are independent and
alike, so given how many of a batch are errors, every order of them is equally likely: drawing
one (a hypergeometric draw of the errors among the next pairs, per decision) makes a sequence
with exactly the law the test was planned on, and its error rates hold however the pokes fall.
Only answers no decision has used are drawn from, so what a decision saw never changes. The
draw is seeded by the stage (its number and start time), never by outcomes, and by the pairs
walked so far, so a retried poke decides as the first try did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np

from canary.experiment.gates.lattice import CONTINUE, ExactTest


@dataclass(frozen=True)
class Walk:
    """Where a stage stands on the lattice: pairs used by decisions so far, and the errors of
    each variant among them."""

    pairs: int = 0
    champion_errors: int = 0
    challenger_errors: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

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
    """The stage's own seed: fixed before any outcome, the same at every poke."""
    return stage, int(started_at.timestamp() * 1_000_000)


def advance(
    test: ExactTest, walk: Walk, champion: Answers, challenger: Answers, stage_seed: tuple[int, int]
) -> tuple[Walk, int | None]:
    """Walk on over the decisions the counts now reach: the new position and the action of the
    last decision visited (the first that is not CONTINUE ends the walk), or None when no
    decision is reached yet."""
    pools = [_pool(champion, walk.pairs, walk.champion_errors, "champion"),
             _pool(challenger, walk.pairs, walk.challenger_errors, "challenger")]  # fmt: skip
    reach = min(champion.n, challenger.n)
    rng = np.random.default_rng([*stage_seed, walk.pairs])
    action = None
    for n in test.problem.decisions:
        if n <= walk.pairs:
            continue
        if n > reach:
            break
        draws = n - walk.pairs
        errors = [int(rng.hypergeometric(bad, good, draws)) for good, bad in pools]
        pools = [(good - draws + e, bad - e) for (good, bad), e in zip(pools, errors, strict=True)]
        walk = Walk(n, walk.champion_errors + errors[0], walk.challenger_errors + errors[1])
        action = test.action(n, walk.champion_errors, walk.challenger_errors)
        if action != CONTINUE:
            break
    return walk, action


def _pool(answers: Answers, pairs: int, errors: int, name: str) -> tuple[int, int]:
    """The (right, wrong) answers of a variant that no decision has used yet."""
    good, bad = answers.n - answers.errors - (pairs - errors), answers.errors - errors
    if good < 0 or bad < 0:
        raise ValueError(
            f"{name}: {answers.errors} errors of {answers.n} answers, fewer than the "
            f"{errors} of {pairs} an earlier look walked: the evidence went back"
        )
    return good, bad
