"""Model formats (XGBoost and scikit-learn layouts) and picking up a new endpoint config."""

from __future__ import annotations

import pickle

import numpy as np
import xgboost as xgb

from canary.models.training import sklearn_tarball, xgboost_tarball
from tests.integration.deployed import IMAGE


def _scores(body: bytes) -> np.ndarray:
    return np.array([float(line) for line in body.decode().splitlines()])


def test_sklearn_joblib_model_serves_predict_proba(deployer, sklearn_model):
    from local_sagemaker.loader import framework_from_image

    url = deployer.upload(sklearn_tarball(sklearn_model))
    assert framework_from_image(IMAGE) == "sklearn"
    endpoint = deployer.endpoint(deployer.config({"V": (deployer.model(url, image=IMAGE), 1)}))
    x, _ = deployer.synthetic(seed=11, n=6)
    _, body = deployer.invoke(endpoint, deployer.csv(x))
    np.testing.assert_allclose(_scores(body), sklearn_model.predict_proba(x)[:, 1], rtol=1e-9)


def test_framework_inferred_from_tarball_and_pickled_booster(deployer, boosters):
    booster = boosters["challenger"]
    url = deployer.upload(deployer.tarball({"xgboost-model": pickle.dumps(booster)}))
    model = deployer.model(url, image="my-registry/custom-inference:latest")
    endpoint = deployer.endpoint(deployer.config({"V": (model, 1)}))
    x, _ = deployer.synthetic(seed=12, n=4)
    _, body = deployer.invoke(
        endpoint, '{"instances": ' + str(x.tolist()) + "}", ContentType="application/json"
    )
    np.testing.assert_allclose(_scores(body), booster.predict(xgb.DMatrix(x)), rtol=1e-6)


def test_update_endpoint_to_new_config_is_picked_up(deployer, boosters):
    first = deployer.model(deployer.upload(xgboost_tarball(boosters["champion"])))
    second = deployer.model(deployer.upload(xgboost_tarball(boosters["challenger"])))
    endpoint = deployer.endpoint(deployer.config({"A": (first, 1.0)}))
    x, _ = deployer.synthetic(seed=13, n=3)
    assert deployer.invoke(endpoint, deployer.csv(x))[0] == "A"
    new_config = deployer.config({"B": (second, 1.0)})
    deployer.sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=new_config)
    described = deployer.sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointConfigName"] == new_config
    assert described["EndpointStatus"] == "InService"
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["B"]
    variant, body = deployer.invoke(endpoint, deployer.csv(x))
    assert variant == "B"
    expected = boosters["challenger"].predict(xgb.DMatrix(x))
    np.testing.assert_allclose(_scores(body), expected, rtol=1e-6)
    # SageMaker keeps serving after the config is deleted; so do we.
    deployer.sm.delete_endpoint_config(EndpointConfigName=new_config)
    assert deployer.invoke(endpoint, deployer.csv(x))[0] == "B"


def test_reuploaded_artifact_is_reloaded_on_next_routing_change(deployer, boosters):
    url = deployer.upload(xgboost_tarball(boosters["champion"]), key="models/same/m.tar.gz")
    model = deployer.model(url)
    endpoint = deployer.endpoint(deployer.config({"V": (model, 1.0), "W": (model, 0.0)}))
    x, _ = deployer.synthetic(seed=14, n=2)
    deployer.invoke(endpoint, deployer.csv(x))
    deployer.upload(xgboost_tarball(boosters["challenger"]), key="models/same/m.tar.gz")
    deployer.sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "W", "DesiredWeight": 1}],
    )
    _, body = deployer.invoke(endpoint, deployer.csv(x), TargetVariant="W")
    expected = boosters["challenger"].predict(xgb.DMatrix(x))
    np.testing.assert_allclose(_scores(body), expected, rtol=1e-6)
