"""SageMaker's A/B-testing flow (two variants, TargetVariant, weight shifts) end to end against the
real local stack subprocess.

Two XGBoost models, one endpoint with Variant1/Variant2, weighted and targeted invocations,
weights 25/75 then 0/100, CloudWatch counts, deletes. Splits are checked with exact/χ² tests
at α = 1e-4 (false-failure rate of each check ≤ 1e-4), each paired with a power check that
the wrong split *is* rejected, so the checks cannot pass by accident.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import xgboost as xgb
from botocore.exceptions import ClientError
from scipy.stats import binomtest, chisquare

from canary.models.training import xgboost_tarball

ALPHA = 1e-4
N = 200


def _spread(deployer, endpoint: str, n: int) -> Counter:
    return Counter(deployer.invoke(endpoint, "0.1,0.2,0.3,0.4")[0] for _ in range(n))


def _set_weights(sm, endpoint: str, w1: float, w2: float) -> None:
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "Variant1", "DesiredWeight": w1},
            {"VariantName": "Variant2", "DesiredWeight": w2},
        ],
    )
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"


@pytest.fixture
def ab_endpoint(deployer, boosters):
    champion = deployer.model(deployer.upload(xgboost_tarball(boosters["champion"])))
    challenger = deployer.model(deployer.upload(xgboost_tarball(boosters["challenger"])))
    config = deployer.config({"Variant1": (champion, 1.0), "Variant2": (challenger, 1.0)})
    return deployer.endpoint(config), config, (champion, challenger)


def test_predictions_are_the_real_models(deployer, boosters, ab_endpoint):
    endpoint = ab_endpoint[0]
    x, _ = deployer.synthetic(seed=7, n=5)
    for variant, name in (("Variant1", "champion"), ("Variant2", "challenger")):
        invoked, body = deployer.invoke(endpoint, deployer.csv(x), TargetVariant=variant)
        assert invoked == variant
        served = np.array([float(line) for line in body.decode().splitlines()])
        expected = boosters[name].predict(xgb.DMatrix(x))
        np.testing.assert_allclose(served, expected, rtol=1e-6)
    champion_scores = boosters["champion"].predict(xgb.DMatrix(x))
    challenger_scores = boosters["challenger"].predict(xgb.DMatrix(x))
    assert not np.allclose(champion_scores, challenger_scores)  # variants are distinguishable


def test_weighted_split_weight_shifts_and_metrics(deployer, ab_endpoint):
    endpoint = ab_endpoint[0]
    sm = deployer.sm
    described = sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    assert {(v["VariantName"], v["CurrentWeight"]) for v in described} == {
        ("Variant1", 1.0),
        ("Variant2", 1.0),
    }
    served: Counter = Counter()

    even = _spread(deployer, endpoint, N)
    served.update(even)
    assert chisquare([even["Variant1"], even["Variant2"]]).pvalue > ALPHA

    targeted = Counter(
        deployer.invoke(endpoint, "1,2,3,4", TargetVariant="Variant1")[0] for _ in range(30)
    )
    served.update(targeted)
    assert targeted == Counter({"Variant1": 30})

    _set_weights(sm, endpoint, 0.25, 0.75)
    weights = {
        v["VariantName"]: (v["CurrentWeight"], v["DesiredWeight"])
        for v in sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    }
    assert weights == {"Variant1": (0.25, 0.25), "Variant2": (0.75, 0.75)}
    quarter = _spread(deployer, endpoint, N)
    served.update(quarter)
    assert binomtest(quarter["Variant1"], N, 0.25).pvalue > ALPHA
    assert binomtest(quarter["Variant1"], N, 0.5).pvalue < ALPHA  # power: 50/50 is rejected

    _set_weights(sm, endpoint, 0.0, 1.0)
    final = _spread(deployer, endpoint, 200)
    served.update(final)
    assert final == Counter({"Variant2": 200})  # weight 0 gets nothing
    # TargetVariant still reaches a weight-0 variant, as on SageMaker.
    assert deployer.invoke(endpoint, "1,2,3,4", TargetVariant="Variant1")[0] == "Variant1"
    served["Variant1"] += 1

    for variant in ("Variant1", "Variant2"):
        assert deployer.metric(endpoint, variant, "Invocations") == served[variant]
        assert deployer.metric(endpoint, variant, "Invocation4XXErrors") == 0
        assert deployer.metric(endpoint, variant, "Invocation5XXErrors") == 0
        samples = deployer.metric(endpoint, variant, "ModelLatency", "SampleCount")
        assert samples == served[variant]
        assert deployer.metric(endpoint, variant, "OverheadLatency", "Minimum") > 0


def test_deletes_remove_everything(deployer, ab_endpoint):
    endpoint, config, models = ab_endpoint
    sm = deployer.sm
    sm.delete_endpoint(EndpointName=endpoint)
    sm.delete_endpoint_config(EndpointConfigName=config)
    for model in models:
        sm.delete_model(ModelName=model)
    with pytest.raises(ClientError) as described:
        sm.describe_endpoint(EndpointName=endpoint)
    assert described.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as invoked:
        deployer.invoke(endpoint, "1,2,3,4")
    assert invoked.value.response["Error"]["Code"] == "ValidationError"
    assert endpoint in invoked.value.response["Error"]["Message"]
    names = {m["ModelName"] for m in sm.list_models()["Models"]}
    assert not names & set(models)
