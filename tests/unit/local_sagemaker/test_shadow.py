"""Shadow variants without a stack: the config rules, the sampling share, the table's draw and
the pool's drain."""

from __future__ import annotations

import threading

import pytest

from local_sagemaker.routing import EndpointTable, Variant
from local_sagemaker.shadow import ShadowConfigError, ShadowPool, check_variants, sampling_share


def _specs(*names: str) -> list[dict[str, str]]:
    return [{"VariantName": name} for name in names]


def test_one_production_variant_and_one_shadow_pass() -> None:
    check_variants(_specs("Prod"), _specs("Shadow"))
    check_variants(_specs("A", "B"), [])


@pytest.mark.parametrize(
    ("production", "shadows", "says"),
    [
        (("Prod",), ("S1", "S2"), "at most 1"),
        (("A", "B"), ("Shadow",), "exactly 1 ProductionVariant, got 2"),
        (("Prod",), ("Prod",), '"Prod" is not unique'),
        (("A", "A"), (), '"A" is not unique'),
    ],
)
def test_what_sagemaker_refuses_is_refused_naming_why(production, shadows, says) -> None:
    with pytest.raises(ShadowConfigError, match=says):
        check_variants(_specs(*production), _specs(*shadows))


@pytest.mark.parametrize(
    ("production", "shadow", "share"),
    [(1.0, 1.0, 1.0), (1.0, 0.5, 0.5), (2.0, 0.5, 0.25), (1.0, 3.0, 1.0), (0.0, 1.0, 0.0)],
)
def test_the_share_is_the_shadows_weight_relative_to_production(production, shadow, share) -> None:
    assert sampling_share(production, shadow) == share
    table = EndpointTable(
        "e", "c", {"Prod": Variant("Prod", production)}, None, Variant("Shadow", shadow)
    )
    assert table.shadow_share == share


def test_a_table_mirrors_all_none_or_a_share() -> None:
    def mirrored(weight: float, n: int = 2000) -> int:
        table = EndpointTable("e", "c", {"P": Variant("P", 1.0)}, None, Variant("S", weight))
        return sum(table.mirrored() is not None for _ in range(n))

    assert mirrored(1.0) == 2000
    assert mirrored(0.0) == 0
    assert 800 < mirrored(0.5) < 1200  # 2000 draws at 0.5: sd 22, so this is ~9 sd wide
    assert EndpointTable("e", "c", {"P": Variant("P", 1.0)}, None).mirrored() is None


def test_drain_waits_for_every_call_and_a_failing_one_does_not_stop_the_pool() -> None:
    pool, release, done = ShadowPool(workers=2), threading.Event(), []

    def slow() -> None:
        release.wait(5)
        done.append(1)

    def broken() -> None:
        raise RuntimeError("shadow container crashed")

    for call in (slow, broken, slow, slow):
        pool.submit(call)
    assert pool.drain(timeout=0.05) > 0  # still waiting on ``release``
    release.set()
    assert pool.drain(timeout=5) == 0
    assert len(done) == 3


def test_a_full_backlog_drops_replicated_calls_and_counts_them() -> None:
    pool, release, done = ShadowPool(workers=1, backlog=2), threading.Event(), []

    def slow() -> None:
        release.wait(5)
        done.append(1)

    accepted = [pool.submit(slow) for _ in range(5)]
    assert accepted == [True, True, True, False, False]  # one running, two waiting
    assert (pool.pending, pool.dropped) == (3, 2)
    release.set()
    assert pool.drain(timeout=5) == 0
    assert pool.submit(slow)  # room again once the backlog has drained
    assert pool.drain(timeout=5) == 0
    assert len(done) == 4
